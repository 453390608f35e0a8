"""It learns, and it does not cheat: the whole workflow on tiny demos with and without a signal."""

import copy
import json

import pytest
import yaml
from conftest import job_counts, run_snakemake, tiny_config

pytestmark = pytest.mark.slow
TRAIN = {"size": 64, "epochs": 20, "batch_size": 4, "lr": 1e-3, "checkpoint_every": 20, "deterministic": True}


# The motion inputs, on the demo's small backbone for 10 epochs (what they feed the network is the point here,
# not its size); flow over two seeds in one group, as an experiment's `seeds` train under fold_group (auto: one
# process, one fold after another on the CPU)
SMALL = {"backbone": "resnet10t", "size": 32, "epochs": 10}
MOTION = [{"name": "diff", "input": "difference", "seeds": [0], **SMALL},
          {"name": "flow", "input": "flow", "seeds": [0, 1], "fold_group": "auto", **SMALL}]


def run_demo(work, experiments=({"name": "se"},), **demo):
    tiny_config(work, demo={"enabled": True, "subjects": 4, "clips_per_subject": 10, "seed": 3, **demo}, train=TRAIN,
                experiments=list(experiments))
    run_snakemake(work, "--cores", "2", "--resources", "gpu=1")
    return {e["name"]: json.loads((work / "results" / e["name"] / "metrics.json").read_text()) for e in experiments}


@pytest.fixture(scope="module")
def null_run(tmp_path_factory):
    # SE-ResNeXt-50's 4 folds as one fused group: the mode a GPU run of config/casme2.yaml uses, and on the
    # CPU at 64 px the faster one (tests/test_fused.py shows a fused fold equal to that fold trained alone)
    work = tmp_path_factory.mktemp("null")
    return work, run_demo(work, [{"name": "se", "fold_group": "all"}, *MOTION], amplitude=0)


def test_learns_the_demo_signal(tmp_path):
    # fused, as the null run: 129 s against 206 for one fold per job (a fused fold equals that fold trained
    # alone, tests/test_fused.py; one fold per job trains in tiny_run)
    m = run_demo(tmp_path, [{"name": "se", "fold_group": "all"}], amplitude=20, subjects=3)["se"]
    assert m["n_folds"] == 3 and m["n_samples"] == 30
    assert m["uf1"] >= 0.5, m  # 5 classes: chance is about 0.2


def test_null_demo_stays_at_chance(null_run):
    """No motion in the data: every input (frame, difference, flow) stays at chance."""
    _, m = null_run
    assert all(r["n_samples"] == 40 for r in m.values())
    assert m["flow"]["seeds"] == [0, 1] and len(m["flow"]["per_seed"]) == 2
    for name, r in m.items():
        assert r["uf1"] <= 0.3, (name, r)
        if "per_seed" in r:
            assert all(s["uf1"] <= 0.3 for s in r["per_seed"].values()), (name, r)


def test_flow_settings_and_seeds_rerun_only_what_follows(null_run):
    work, _ = null_run
    cfg = yaml.safe_load((work / "config.yaml").read_text())

    def dry(change):
        variant = copy.deepcopy(cfg)
        change(variant)
        (work / "variant.yaml").write_text(yaml.safe_dump(variant))
        return job_counts(run_snakemake(work, "-n", "--cores", "2", configfile="variant.yaml"))

    # a flow setting: the flow caches and the flow experiment's two fused seeds, not the crops or the others
    assert dry(lambda c: c.update(flow={"lambda": 0.3})) == {
        "compute_flow": 4, "train_fold_group": 8, "aggregate_loso": 2, "aggregate_seeds": 1,
        "summarize_experiments": 1, "all": 1}
    # a seed added to an experiment trained fold by fold: that seed's folds alone
    assert dry(lambda c: c["experiments"][1].update(seeds=[0, 1])) == {
        "train_fold": 4, "aggregate_loso": 1, "aggregate_seeds": 1, "summarize_experiments": 1, "all": 1}
    summary = (work / "results" / "summary.md").read_text()
    assert "| flow | apex |" in summary and "| difference | apex |" in summary and "| 0, 1 |" in summary
