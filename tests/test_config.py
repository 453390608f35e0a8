"""The config schema: every key documented and defaulted; the shipped configs validate."""

import jsonschema
import pytest
import yaml
from conftest import ROOT, SCHEMA


def keys(node, path=()):
    for k, v in node.get("properties", {}).items():
        yield (*path, k), v
        if v.get("type") == "object":
            yield from keys(v, (*path, k))


def test_every_key_has_description_and_default():
    missing = [".".join(p) for p, v in keys(SCHEMA) if "description" not in v or "default" not in v]
    assert not missing


@pytest.mark.parametrize("name", ["config.yaml", "config/casme2.yaml", "config/demo-null.yaml"])
def test_shipped_configs_validate(name):
    jsonschema.validate(yaml.safe_load((ROOT / name).read_text()), SCHEMA)


def test_unknown_nested_key_is_rejected_with_its_name():
    with pytest.raises(jsonschema.ValidationError, match="'epcohs' was unexpected"):
        jsonschema.validate({"train": {"epcohs": 3}}, SCHEMA)


@pytest.mark.parametrize("value, ok", [(1, True), (4, True), ("all", True), ("auto", True), (0, False),
                                       ("some", False), (2.5, False)])
def test_fold_group_values(value, ok):
    cfg = {"train": {"fold_group": value}, "experiments": [{"name": "x", "fold_group": value}]}
    if ok:
        jsonschema.validate(cfg, SCHEMA)
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(cfg, SCHEMA)
