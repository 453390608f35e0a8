"""The workflow's config schema (workflow/schemas/config.schema.yaml) and the defaults it gives: the one place
where every setting's default is written."""

import copy
from pathlib import Path

import yaml

# The schema of the checkout this package lies in (src/mer/schema.py -> workflow/schemas/).
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def schema(path=SCHEMA_PATH):
    """The workflow's config schema (this checkout's, or the one at `path`), a fresh copy each call."""
    # libyaml's loader where PyYAML has it: every training job and `mer predict` read the schema at start-up
    return yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def defaults(node):
    """The config a schema object gives when nothing is set: each property's default, an object's default
    completed by its own properties' defaults (as Snakemake's validate fills a config)."""
    out = {}
    for key, prop in node.get("properties", {}).items():
        if "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
            if "properties" in prop:
                out[key] = {**defaults(prop), **out[key]}
    return out


def train_defaults():
    """The schema's `train` defaults: the paper's training settings."""
    return defaults(schema()["properties"]["train"])
