"""The config schema (every key documented and defaulted; the shipped configs validate) and mer.config:
its defaults, experiments, runs, folds and fused groups."""

import jsonschema
import pandas as pd
import pytest
import yaml
from conftest import ROOT, SCHEMA

from mer.config import Plan, alternatives, check_dataset_paths, experiment_of, fold_paths, make_experiments
from mer.datasets.catalog import entry
from mer.schema import defaults, schema, train_defaults
from mer.train.groups import FOLD_FILES, group_of, member_fold, member_name, partition, split_member


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


# --- mer.config: the schema's defaults and what a config asks to train ---------------------------------------

DATASETS = {n: entry(n) for n in ("casme2", "samm", "smic_hs")}


def make_config(**overrides):
    """A validated config as Snakemake's validate fills it: the schema's defaults, then `overrides`."""
    return {**defaults(schema()), **overrides}


def table(rows):
    """A samples table (read_sheet's columns that folds read): (subject, included, 3class label) rows."""
    return pd.DataFrame([{"subject": s, "included": inc, "label_3class": label} for s, inc, label in rows])


SAMPLES = {
    "casme2": table([("01", True, "positive"), ("02", True, "negative"), ("03", False, "surprise"),
                     ("04", True, "")]),
    "samm": table([("006", True, "surprise"), ("007", True, "negative")]),
    "smic_hs": table([("1", True, "positive")]),
}


def plan(*experiments, **overrides):
    cfg = make_config(train={**train_defaults(), "task": "3class"}, experiments=list(experiments), **overrides)
    return Plan(cfg, DATASETS, SAMPLES.__getitem__)


def test_train_defaults_are_the_schema_paper_settings():
    train = train_defaults()
    assert train["checkpoint_every"] == 1 and train["fold_group"] == 1 and train["epochs"] == 100
    assert train["augment"] == {"grayscale": True, "hflip": True, "rotate": 15}  # an object's own defaults
    assert set(defaults(schema())) == set(SCHEMA["properties"])
    assert schema() is not schema()  # a fresh copy: a caller's change never reaches the next


def test_the_training_library_takes_its_defaults_from_the_schema():
    from mer.train.settings import DEFAULTS, REQUIRED, resolve

    schema_train = train_defaults()
    assert DEFAULTS == {k: v for k, v in schema_train.items() if k in DEFAULTS}
    assert not set(DEFAULTS) & set(REQUIRED)
    c = resolve({"name": "x", "backbone": "b", "task": "5class", "classes": ["a"], "frame": "apex", "size": 8})
    assert c["checkpoint_every"] == schema_train["checkpoint_every"] and c["lr"] == schema_train["lr"]


def test_experiments_take_train_then_overrides_then_the_grid():
    cfg = make_config(
        train={**train_defaults(), "task": "3class", "lr": 1e-3},
        experiments=[{"name": "a", "lr": 5e-4, "augment": {"rotate": 5}},
                     {"name": "resnet18_flow", "backbone": "resnet18", "input": "flow", "epochs": 7}],
        grid={**defaults(schema())["grid"], "backbone": ["resnet18", "resnet10t"], "input": ["frame", "flow"]})
    out = make_experiments(cfg, DATASETS)
    assert list(out) == ["a", "resnet18_flow", "resnet18_frame", "resnet10t_frame", "resnet10t_flow"]
    assert out["a"]["lr"] == 5e-4 and out["a"]["augment"] == {"grayscale": True, "hflip": True, "rotate": 5}
    assert out["resnet10t_frame"]["lr"] == 1e-3 and out["resnet10t_frame"]["name"] == "resnet10t_frame"
    assert out["resnet18_flow"]["epochs"] == 7  # a listed experiment wins over the grid point of its name
    assert out["a"]["datasets"] == ["casme2", "samm", "smic_hs"]  # every dataset with the task
    assert out["a"]["classes"] == ["negative", "positive", "surprise"]
    assert list(out["a"]["preprocess"]) == ["landmarks", "apex", "crop"]
    assert list(out["resnet10t_flow"]["preprocess"]) == ["landmarks", "apex", "crop", "flow"]
    assert out["a"]["preprocess"]["crop"] == cfg["crop"]


@pytest.mark.parametrize("override, named", [({"epcohs": 3}, "'epcohs' was unexpected"),
                                             ({"lr": "fast"}, "'fast' is not of type 'number'"),
                                             ({"fold_group": 0}, "0 is less than the minimum of 1")])
def test_a_wrong_override_is_named_with_its_experiment(override, named):
    with pytest.raises(ValueError, match=rf"experiments\['bad'\]: .*({named})"):
        plan({"name": "ok"}, {"name": "bad", **override})


@pytest.mark.parametrize("experiment, message", [
    ({"task": "megc2019", "datasets": ["casme2", "nope"]}, r"datasets \['nope'\] are not configured"),
    ({"task": "7class"}, "task '7class' is a task of no dataset"),
    ({"datasets": ["samm"], "test_datasets": ["samm"]}, "must be apart from the datasets"),
    ({"input": "flow", "frame": "onset"}, "frame must be 'apex'"),
])
def test_an_experiment_that_cannot_train_stops_the_config(experiment, message):
    with pytest.raises(ValueError, match=message):
        plan({"name": "e", **experiment})


def test_compare_names_experiments():
    with pytest.raises(ValueError, match=r"report.compare: \['a', 'b'\] names no experiment \['b'\]"):
        plan({"name": "a"}, report={"task": "3class", "compare": [["a", "b"]]})


def test_an_experiment_with_seeds_runs_once_per_seed():
    p = plan({"name": "one"}, {"name": "s", "seeds": [0, 2]})
    assert list(p.runs) == ["one", "s/seed0", "s/seed2"] and p.seeded == ["s"]
    assert p.runs["s/seed2"]["seed"] == 2 and "seeds" not in p.runs["s/seed0"]
    assert p.runs["one"] == {k: v for k, v in p.experiments["one"].items() if k != "seeds"}
    assert [experiment_of(r) for r in p.runs] == ["one", "s", "s"] and p.runs_of("s") == ["s/seed0", "s/seed2"]
    assert p.final_config("s") == p.runs["s/seed0"]


def test_folds_are_subjects_with_samples_of_the_task_or_the_test_datasets():
    p = plan({"name": "loso"}, {"name": "cross", "datasets": ["casme2", "samm"], "test_datasets": ["smic_hs"]},
             {"name": "one", "datasets": ["samm"], "seeds": [1]})
    # casme2-03 is excluded and casme2-04 has no 3class label: no fold; subjects keep the unlabelled one
    assert p.fold_ids("loso") == ["casme2-01", "casme2-02", "samm-006", "samm-007", "smic_hs-1"]
    assert p.subjects("casme2") == ["01", "02", "04"]
    assert p.fold_ids("cross") == ["smic_hs"]
    assert p.fold_ids("one/seed1") == ["samm-006", "samm-007"]
    assert p.training_caches("cross") == [f"results/crops/{d}/sub{s}.h5" for d, s in
                                          [("casme2", "01"), ("casme2", "02"), ("casme2", "04"),
                                           ("samm", "006"), ("samm", "007"), ("smic_hs", "1")]]


def test_fold_outputs_are_named_once():
    assert FOLD_FILES == ("model.pt", "metrics.csv", "predictions.tsv", "held_out_by_epoch.tsv", "fold.json")
    assert fold_paths("r/x/folds/{fold}") == {"model": "r/x/folds/{fold}/model.pt",
                                              "metrics": "r/x/folds/{fold}/metrics.csv",
                                              "predictions": "r/x/folds/{fold}/predictions.tsv",
                                              "audit": "r/x/folds/{fold}/held_out_by_epoch.tsv",
                                              "info": "r/x/folds/{fold}/fold.json"}
    p = plan({"name": "e", "datasets": ["samm"], "seeds": [4]})
    assert p.fold_files("e/seed4", "audit") == [f"results/e/seed4/folds/samm-00{s}/held_out_by_epoch.tsv"
                                                for s in (6, 7)]
    assert p.fold_targets("e/seed4") == [f"results/e/seed4/folds/samm-00{s}/{f}" for s in (6, 7) for f in FOLD_FILES]


def test_groups_of_one_are_each_fold_alone():
    p = plan({"name": "e", "datasets": ["samm"]})
    assert not p.fused("e")
    assert p.group_members("e", "samm-007") == ["samm-007"] and p.group_first_fold("e", "samm-007") is None


@pytest.mark.parametrize("fold_group", ["all", "auto"])
def test_all_or_auto_fuses_every_fold_of_every_seed(fold_group):
    p = plan({"name": "e", "datasets": ["samm"], "seeds": [0, 1], "fold_group": fold_group})
    everyone = ["seed0/samm-006", "seed0/samm-007", "seed1/samm-006", "seed1/samm-007"]
    assert p.fused("e/seed1") and p.members("e/seed1") == everyone[2:]
    assert p.member_of("e/seed1", "samm-007") == "seed1/samm-007"
    assert p.group_members("e/seed1", "samm-007") == everyone
    assert p.group_store("e/seed1", "samm-007") == "results/e/groups/seed0/samm-006"
    assert p.group_first_fold("e/seed1", "samm-007") == "results/e/seed0/folds/samm-006/fold.json"
    assert p.group_first_fold("e/seed0", "samm-006") is None
    assert p.group_config("e/seed1") == {k: v for k, v in p.experiments["e"].items() if k != "seeds"}


def test_groups_of_k_are_consecutive_folds_across_seeds():
    p = plan({"name": "e", "datasets": ["samm", "smic_hs"], "seeds": [0, 1], "fold_group": 2},
             {"name": "plain", "datasets": ["casme2"], "fold_group": 2})
    assert p.group_members("e/seed0", "smic_hs-1") == ["seed0/smic_hs-1", "seed1/samm-006"]
    assert p.group_members("e/seed1", "smic_hs-1") == ["seed1/samm-007", "seed1/smic_hs-1"]
    assert p.member_dir("e", "seed1/samm-007") == "results/e/seed1/folds/samm-007"
    assert p.group_members("plain", "casme2-02") == ["casme2-01", "casme2-02"]
    assert p.member_dir("plain", "casme2-01") == "results/plain/folds/casme2-01"
    assert p.group_store("plain", "casme2-02") == "results/plain/groups/casme2-01"
    assert p.group_config("plain") == p.runs["plain"]


def test_partition():
    subjects = ["01", "02", "03", "04", "05"]
    assert partition(subjects, 1) == [["01"], ["02"], ["03"], ["04"], ["05"]]
    assert partition(subjects, 2) == [["01", "02"], ["03", "04"], ["05"]]
    assert partition(subjects, "all") == partition(subjects, "auto") == [subjects]
    assert group_of(subjects, 2, "04") == ["03", "04"]
    with pytest.raises(ValueError, match="fold_group"):
        partition(subjects, 0)
    with pytest.raises(ValueError, match="'09'"):
        group_of(subjects, 2, "09")


@pytest.mark.parametrize("prefix", ["", "seed3", "seed-1"])
def test_member_names_round_trip(prefix):
    member = member_name("casme2-07", prefix)
    assert member == (f"{prefix}/casme2-07" if prefix else "casme2-07")
    assert split_member(member) == (prefix, "casme2-07")


def test_members_carry_their_seed():
    cfg = {"name": "e", "seed": 0}
    assert member_fold("07", cfg) == ("07", cfg)
    held, c = member_fold("seed3/07", cfg)
    assert held == "07" and c == {**cfg, "seed": 3} and cfg["seed"] == 0
    with pytest.raises(ValueError, match="seedS/SUBJECT"):
        member_fold("s3/07", cfg)


def test_a_missing_dataset_path_names_its_key(tmp_path):
    cfg = make_config(datasets={"samm": {"root": str(tmp_path)}})
    check_dataset_paths(cfg, {"samm": {"root": str(tmp_path), "sheet": None}})
    with pytest.raises(ValueError, match="config key datasets.samm.sheet = .*nope.xlsx' does not exist"):
        check_dataset_paths(cfg, {"samm": {"root": str(tmp_path), "sheet": str(tmp_path / "nope.xlsx")}})
    with pytest.raises(ValueError, match="config key data.root = '' does not exist"):
        check_dataset_paths(make_config(), {"casme2": {"root": "", "sheet": None}})


def test_alternatives_match_exactly_the_names():
    import re

    pattern = alternatives(["a.b", "s/seed1"])
    assert re.fullmatch(pattern, "a.b") and re.fullmatch(pattern, "s/seed1") and not re.fullmatch(pattern, "axb")
    assert not re.fullmatch(alternatives([]), "")
