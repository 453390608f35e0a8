import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_crop_cache as write_cache

from mer.train.folds import fold_seed
from mer.train.loop import train_fold
from mer.train.outputs import reproducibility

CLASSES = ["happiness", "surprise", "others"]


def config(**kw):
    cfg = dict(name="tiny", backbone="test_resnet", pretrained="none", task="5class", classes=CLASSES,
               frame="apex", size=32, loss="focal", gamma=2.0, alpha=None, optimizer="adam", lr=1e-3,
               weight_decay=0.0, batch_size=4, epochs=2, seed=7, deterministic=True, checkpoint_every=1,
               augment=dict(grayscale=True, hflip=True, rotate=15), amp="auto",
               channels_last="auto", compile=False, inner_val=0)
    return {**cfg, **kw}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return write_cache(tmp_path_factory.mktemp("crops"))


def test_train_fold_writes_outputs(cache, tmp_path):
    info = train_fold(cache, "02", config(), tmp_path, threads=2, progress=False)
    assert {p.name for p in tmp_path.iterdir()} == {"model.pt", "metrics.csv", "predictions.tsv", "fold.json",
                                                    "held_out_by_epoch.tsv"}

    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["config"]["name"] == "tiny"
    assert set(ckpt) >= {"model", "optimizer", "epoch", "config"}
    assert ckpt["model"]["fc.weight"].shape[0] == 3

    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "loss", "train_acc", "images_per_s", "seconds"]
    assert metrics.epoch.tolist() == [1, 2]

    pred = pd.read_csv(tmp_path / "predictions.tsv", sep="\t", dtype={"subject": str})
    assert list(pred.columns) == ["subject", "filename", "y_true", "y_pred"] + [f"prob_{c}" for c in CLASSES]
    assert len(pred) == 6 and set(pred.subject) == {"02"}
    assert set(pred.y_pred) <= set(CLASSES)
    np.testing.assert_allclose(pred[[f"prob_{c}" for c in CLASSES]].sum(axis=1), 1, atol=1e-5)

    fold = json.loads((tmp_path / "fold.json").read_text())
    assert fold == info
    assert fold["held_out"] == "02" and fold["train_subjects"] == ["01", "03"]
    assert (fold["n_train"], fold["n_test"], fold["epochs_run"], fold["resumed_from_epoch"]) == (12, 6, 2, 0)
    assert fold["seed"] == fold_seed(7, "02") == 7002 and fold["device"] == "cpu"
    assert set(fold["versions"]) == {"mer", "python", "torch", "torchvision", "timm", "numpy"}

    # the leakage audit's file: the held-out subject's predictions after each epoch; the last are the result's
    audit = pd.read_csv(tmp_path / "held_out_by_epoch.tsv", sep="\t", dtype={"subject": str})
    assert audit.epoch.tolist() == [1] * 6 + [2] * 6 and list(audit.columns[1:]) == list(pred.columns)
    last = audit[audit.epoch == 2].drop(columns="epoch").reset_index(drop=True)
    pd.testing.assert_frame_equal(last, pred, check_dtype=False)


def test_the_audit_changes_nothing_else(cache, tmp_path):
    # evaluating the held-out subject after every epoch must not move training: without it, the same bytes
    cfg = config(epochs=2)
    train_fold(cache, "03", cfg, tmp_path / "a", threads=2, progress=False)
    train_fold(cache, "03", cfg, tmp_path / "b", threads=2, progress=False, audit=False)
    assert not (tmp_path / "b" / "held_out_by_epoch.tsv").exists()
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for name in ("predictions.tsv",):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    cols = ["epoch", "loss", "train_acc"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a" / "metrics.csv")[cols],
                                  pd.read_csv(tmp_path / "b" / "metrics.csv")[cols])


def test_resume_is_exact(cache, tmp_path):
    cfg = config(epochs=3, checkpoint_every=1)
    full, parted = tmp_path / "full", tmp_path / "parted"
    train_fold(cache, "01", cfg, full, threads=2, progress=False)

    assert train_fold(cache, "01", cfg, parted, threads=2, progress=False, max_epochs_this_run=1) is None
    assert (parted / "checkpoint.pt").exists() and not (parted / "model.pt").exists()
    assert torch.load(parted / "checkpoint.pt", weights_only=True)["epoch"] == 1
    info = train_fold(cache, "01", cfg, parted, threads=2, progress=False)
    assert info["resumed_from_epoch"] == 1 and info["epochs_this_run"] == 2
    assert not (parted / "checkpoint.pt").exists()  # removed once model.pt is written

    a = torch.load(full / "model.pt", weights_only=True)
    b = torch.load(parted / "model.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ma, mb = pd.read_csv(full / "metrics.csv"), pd.read_csv(parted / "metrics.csv")
    assert mb.epoch.tolist() == [1, 2, 3]
    pd.testing.assert_series_equal(ma.loss, mb.loss)
    pd.testing.assert_frame_equal(pd.read_csv(full / "predictions.tsv", sep="\t"),
                                  pd.read_csv(parted / "predictions.tsv", sep="\t"))
    # the audit's epochs before the kill come back from the checkpoint: the same text as uninterrupted
    assert (full / "held_out_by_epoch.tsv").read_bytes() == (parted / "held_out_by_epoch.tsv").read_bytes()


def test_checkpoint_of_another_config_is_ignored(cache, tmp_path):
    train_fold(cache, "03", config(epochs=2), tmp_path, progress=False, max_epochs_this_run=1)
    info = train_fold(cache, "03", config(epochs=2, lr=5e-4), tmp_path, progress=False)
    assert info["resumed_from_epoch"] == 0


def test_inner_validation_uses_training_subjects_only(cache, tmp_path):
    info = train_fold(cache, "03", config(epochs=1, inner_val=0.5), tmp_path, progress=False)
    assert info["n_val"] == 6 and info["n_train"] == 6 and len(info["val_subjects"]) == 1
    assert "03" not in info["val_subjects"] + info["train_subjects"]
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert {"val_acc", "val_uf1"} <= set(metrics.columns)


def test_held_out_without_samples(cache, tmp_path):
    with pytest.raises(ValueError, match="'09'"):
        train_fold(cache, "09", config(), tmp_path, progress=False)


def test_rerun_is_bit_identical(cache, tmp_path):
    # training is bit-reproducible on one machine (deterministic, CPU): two runs, the same bytes
    cfg = config(epochs=2)
    train_fold(cache, "01", cfg, tmp_path / "a", threads=2, progress=False)
    train_fold(cache, "01", cfg, tmp_path / "b", threads=2, progress=False)
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "predictions.tsv").read_bytes() == (tmp_path / "b" / "predictions.tsv").read_bytes()
    assert json.loads((tmp_path / "a" / "fold.json").read_text())["reproducibility"].startswith("bit-identical")
    assert "not bit-identical on CUDA" in reproducibility("cuda", True)


def test_fold_seed_is_the_subjects_whatever_its_dataset():
    # folds name their dataset ('casme2-01'); the seed stays the subject's, so results did not move with the name
    assert fold_seed(7, "casme2-01") == fold_seed(7, "01") == fold_seed(7, "sub01") == 7001
    assert fold_seed(0, "samm") == fold_seed(0, "samm") != fold_seed(1, "samm")  # a cross-dataset fold: crc32
