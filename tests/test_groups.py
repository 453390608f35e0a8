"""Fold groups in the workflow (mer.train.groups): the group's store, placing a fold's files."""

import json
import os

import pytest
import torch
from conftest import write_crop_cache
from test_loop import config

import mer.train.loop
from mer.train.groups import cpu_group_size, input_key, run_member
from mer.train.loop import train_fold
from mer.train.models import build_model, count_params

HELD = ["01", "02", "03"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return write_crop_cache(tmp_path_factory.mktemp("crops"), n=4)


def test_key_follows_inputs(tmp_path, cache):
    cfg = config(fold_group="all")
    key = input_key(cfg, HELD, cache)
    assert key == input_key(cfg, HELD, cache)
    assert key != input_key({**cfg, "lr": 5e-4}, HELD, cache) != input_key(cfg, HELD[:2], cache)
    changed = write_crop_cache(tmp_path, n=5)
    assert key != input_key(cfg, HELD, changed)


def test_first_fold_trains_the_group_and_the_others_are_placed(tmp_path, cache):
    cfg, store = config(fold_group="all", epochs=2), tmp_path / "groups" / "01"
    key = input_key(cfg, HELD, cache)
    out = {h: tmp_path / "folds" / h for h in HELD}
    assert run_member(cache, "01", HELD, cfg, store, out["01"], key) == "trained"
    assert run_member(cache, "02", HELD, cfg, store, out["02"], key) == "placed"
    assert run_member(cache, "03", HELD, cfg, store, out["03"], key) == "placed"
    for h in HELD:
        assert sorted(p.name for p in out[h].iterdir()) == ["fold.json", "held_out_by_epoch.tsv", "metrics.csv",
                                                             "model.pt", "predictions.tsv"]
        assert os.path.samefile(out[h] / "model.pt", store / h / "model.pt")  # a hard link, not a copy
        record = json.loads((out[h] / "fold.json").read_text())["fold_group"]
        assert record["group"] == HELD and record["mode"] == "fused" and record["size"] == 3
    # a deleted fold output comes back from the store without training
    (out["02"] / "model.pt").unlink()
    assert run_member(cache, "02", HELD, cfg, store, out["02"], key) == "placed"
    assert (out["02"] / "model.pt").exists()
    # another config: the store is out of date, the group trains again
    cfg2 = {**cfg, "lr": 5e-4}
    assert run_member(cache, "02", HELD, cfg2, store, out["02"], input_key(cfg2, HELD, cache)) == "trained"


def test_auto_on_cpu_fuses_small_steps_within_memory():
    small = config(fold_group="auto", size=64, batch_size=8)  # the demo's step: 32,768 px
    assert cpu_group_size(6, small, memory=64e9) == 6
    # the paper's step (224 px, batch 2: 100,352 px) measured slower fused on the CPU
    assert cpu_group_size(26, config(fold_group="auto", size=224, batch_size=2), memory=64e9) == 1
    # memory caps the chunk: a fold is estimated at 20 B a parameter + 8 kB a pixel of its step
    per_fold = 20 * count_params(build_model(small["backbone"], 5)) + 8_000 * 64 * 64 * 8
    assert cpu_group_size(6, small, memory=2 * 2.5 * per_fold) == 2
    assert cpu_group_size(6, small, memory=per_fold) == 1


def test_auto_on_cpu_fused_equals_a_fused_group(tmp_path, cache):
    cfg = config(fold_group="auto", epochs=2)
    key = input_key(cfg, HELD, cache)
    run_member(cache, "02", HELD, cfg, tmp_path / "store", tmp_path / "fold02", key)
    record = json.loads((tmp_path / "fold02" / "fold.json").read_text())["fold_group"]
    assert record["setting"] == "auto" and record["size"] == 3 and record["mode"] == "fused"
    cfg_all = {**cfg, "fold_group": "all"}
    run_member(cache, "02", HELD, cfg_all, tmp_path / "all", tmp_path / "all02", input_key(cfg_all, HELD, cache))
    a = torch.load(tmp_path / "all02" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "fold02" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_auto_on_cpu_trains_large_steps_one_fold_after_another(tmp_path, cache, monkeypatch):
    monkeypatch.setattr("mer.train.groups.CPU_FUSE_MAX_PIXELS", 0)  # as if this step were too large to fuse
    cfg = config(fold_group="auto", epochs=2)
    key = input_key(cfg, HELD, cache)
    run_member(cache, "02", HELD, cfg, tmp_path / "store", tmp_path / "fold02", key)
    record = json.loads((tmp_path / "fold02" / "fold.json").read_text())["fold_group"]
    assert record["setting"] == "auto" and record["size"] == 1 and record["mode"] == "sequential"
    train_fold(cache, "02", cfg, tmp_path / "alone", threads=2, progress=False)
    a = torch.load(tmp_path / "alone" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "fold02" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the one-fold code path, bit for bit


def test_auto_halves_the_group_on_out_of_memory(tmp_path, cache, monkeypatch):
    tried = []
    real = mer.train.loop.train_fused

    def short_of_memory(cache_paths, held_outs, *args, **kwargs):
        tried.append(len(held_outs))
        if len(held_outs) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(cache_paths, held_outs, *args, **kwargs)

    monkeypatch.setattr(mer.train.loop, "train_fused", short_of_memory)
    monkeypatch.setattr("mer.train.groups.group_size", lambda *a: 3)  # as if 3 folds fitted the free memory
    cfg = config(fold_group="auto", epochs=1)
    run_member(cache, "03", HELD, cfg, tmp_path / "store", tmp_path / "fold03", input_key(cfg, HELD, cache))
    assert tried[0] == 3 and set(tried[1:]) <= {1, 2}
    meta = json.loads((tmp_path / "store" / "group.json").read_text())
    assert meta["size"] == 1 and meta["complete"] is True
    assert json.loads((tmp_path / "fold03" / "fold.json").read_text())["fold_group"]["size"] == 1
