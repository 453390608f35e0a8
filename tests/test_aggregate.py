import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from mer.aggregate import PAPER_REPORTED, aggregate, summarise

CLASSES = ["happiness", "surprise", "disgust", "repression", "others"]


def write_folds(root, subjects=("01", "02", "10")):
    rng, dirs = np.random.default_rng(1), []
    for s in subjects:
        n = int(rng.integers(3, 8))
        probs = rng.dirichlet(np.ones(len(CLASSES)), n)
        d = root / f"fold_{s}"
        d.mkdir()
        pd.DataFrame({
            "subject": s, "filename": [f"EP{i:02d}_{s}" for i in range(n)],
            "y_true": rng.choice(CLASSES, n), "y_pred": [CLASSES[i] for i in probs.argmax(1)],
            **{f"prob_{c}": probs[:, i] for i, c in enumerate(CLASSES)},
        }).to_csv(d / "predictions.tsv", sep="\t", index=False)
        dirs.append(d)
    return dirs


def test_aggregate_pools_folds(tmp_path):
    dirs = write_folds(tmp_path)
    out = tmp_path / "agg"
    aggregate(dirs, CLASSES, out, "se_apex_focal")
    for name in ("predictions.tsv", "metrics.json", "confusion.csv", "confusion.png", "per_fold.tsv",
                 "per_fold.png"):
        assert (out / name).stat().st_size > 0, name

    pooled = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"subject": str})
    assert len(pooled) == sum(len(pd.read_csv(d / "predictions.tsv", sep="\t")) for d in dirs)
    m = json.loads((out / "metrics.json").read_text())
    assert m["accuracy"] == pytest.approx(accuracy_score(pooled.y_true, pooled.y_pred))
    assert m["uf1"] == pytest.approx(f1_score(pooled.y_true, pooled.y_pred, labels=CLASSES, average="macro",
                                              zero_division=0))
    assert m["uar"] == pytest.approx(recall_score(pooled.y_true, pooled.y_pred, labels=CLASSES,
                                                  average="macro", zero_division=0))
    assert (m["n_folds"], m["n_samples"], m["experiment"]) == (3, len(pooled), "se_apex_focal")

    confusion = pd.read_csv(out / "confusion.csv", index_col=0)
    assert confusion.values.tolist() == m["confusion"] and list(confusion.columns) == CLASSES
    per_fold = pd.read_csv(out / "per_fold.tsv", sep="\t", dtype={"subject": str})
    assert per_fold.subject.tolist() == ["01", "02", "10"]  # numeric subject order
    assert list(per_fold.columns) == ["subject", "n", "accuracy", "uf1"]
    g = pooled[pooled.subject == "02"]
    assert per_fold.accuracy[1] == pytest.approx(accuracy_score(g.y_true, g.y_pred))


def test_summarise_adds_reported_rows_for_casme2(tmp_path):
    out = tmp_path / "agg"
    aggregate(write_folds(tmp_path), CLASSES, out, "se_apex_focal")
    cfg = dict(backbone="seresnext50_32x4d", frame="apex", loss="focal", task="5class", size=224, epochs=100)
    experiments = {"se_apex_focal": (out / "metrics.json", cfg)}

    table = summarise(experiments, tmp_path / "summary.md", tmp_path / "summary.tsv", "casme2")
    tsv = pd.read_csv(tmp_path / "summary.tsv", sep="\t")
    assert len(tsv) == 1 + len(PAPER_REPORTED) == len(table)
    assert tsv.accuracy[0] == pytest.approx(json.loads((out / "metrics.json").read_text())["accuracy"])
    reported = tsv[tsv.source == "reported"]
    assert reported.accuracy.tolist() == [0.5926, 0.4814, 0.5556]
    assert reported.uf1.tolist() == [0.5853, 0.4599, 0.5059]
    md = (tmp_path / "summary.md").read_text()
    assert "SE-ResNeXt-50 (reported)" in md and "0.5926" in md and "| SE-ResNeXt-50 | se_apex_focal |" in md

    summarise(experiments, tmp_path / "demo.md", tmp_path / "demo.tsv", "demo")
    assert len(pd.read_csv(tmp_path / "demo.tsv", sep="\t")) == 1
    assert "(reported)" not in (tmp_path / "demo.md").read_text()
