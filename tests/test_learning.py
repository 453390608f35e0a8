"""It learns, and it does not cheat: the whole workflow on tiny demos with and without a signal."""

import json

import pytest
from conftest import run_snakemake, tiny_config

pytestmark = pytest.mark.slow
TRAIN = {"size": 64, "epochs": 20, "batch_size": 4, "lr": 1e-3, "checkpoint_every": 20, "deterministic": True}


def pooled_metrics(tmp_path, **demo):
    work = tiny_config(tmp_path, demo={"enabled": True, "subjects": 4, "clips_per_subject": 10, "seed": 3, **demo},
                       train=TRAIN, experiments=[{"name": "se"}])
    run_snakemake(work, "--cores", "2", "--resources", "gpu=1")
    return json.loads((work / "results" / "se" / "metrics.json").read_text())


def test_learns_the_demo_signal(tmp_path):
    m = pooled_metrics(tmp_path, amplitude=20)
    assert m["n_folds"] == 4 and m["n_samples"] == 40
    assert m["uf1"] >= 0.5, m  # 5 classes: chance is about 0.2


def test_null_demo_stays_at_chance(tmp_path):
    m = pooled_metrics(tmp_path, amplitude=0)
    assert m["n_samples"] == 40
    assert m["uf1"] <= 0.3, m
