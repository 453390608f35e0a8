import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from mer.evaluate.plots import training_curves
from mer.evaluate.pooling import aggregate, aggregate_seeds, leakage_audit
from mer.evaluate.reported import PAPER_REPORTED
from mer.evaluate.summary import summarize_experiments

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


def test_summarize_experiments_adds_reported_rows_for_casme2(tmp_path):
    out = tmp_path / "agg"
    aggregate(write_folds(tmp_path), CLASSES, out, "se_apex_focal")
    cfg = dict(backbone="seresnext50_32x4d", frame="apex", loss="focal", task="5class", size=224, epochs=100)
    experiments = {"se_apex_focal": (out / "metrics.json", cfg)}

    table = summarize_experiments(experiments, tmp_path / "summary.md", tmp_path / "summary.tsv", "casme2")
    tsv = pd.read_csv(tmp_path / "summary.tsv", sep="\t")
    assert len(tsv) == 1 + len(PAPER_REPORTED) == len(table)
    assert tsv.accuracy[0] == pytest.approx(json.loads((out / "metrics.json").read_text())["accuracy"])
    reported = tsv[tsv.source == "reported"]
    assert reported.accuracy.tolist() == [0.5926, 0.4814, 0.5556]
    assert reported.uf1.tolist() == [0.5853, 0.4599, 0.5059]
    md = (tmp_path / "summary.md").read_text()
    assert "SE-ResNeXt-50 (reported)" in md and "0.5926" in md and "| SE-ResNeXt-50 | se_apex_focal |" in md

    summarize_experiments(experiments, tmp_path / "demo.md", tmp_path / "demo.tsv", "demo")
    assert len(pd.read_csv(tmp_path / "demo.tsv", sep="\t")) == 1
    assert "(reported)" not in (tmp_path / "demo.md").read_text()
    assert not (tmp_path / "demo.html").exists()  # only on request


def html_table(html):
    """The cells of the page's one table as a DataFrame of strings (header row = columns)."""
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.rows[-1].append(self.cell)
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Cells()
    parser.feed(html)
    return pd.DataFrame(parser.rows[1:], columns=parser.rows[0])


def test_summarize_experiments_html_has_every_row(tmp_path):
    out = tmp_path / "agg"
    m = aggregate(write_folds(tmp_path), CLASSES, out, "se<1>")
    cfg = dict(backbone="seresnext50_32x4d", frame="apex", loss="focal", task="5class", size=224, epochs=100)
    summarize_experiments({"se<1>": (out / "metrics.json", cfg)}, tmp_path / "s.md", tmp_path / "s.tsv", "casme2",
                          out_html=tmp_path / "s.html")
    html = (tmp_path / "s.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "Results on casme2 (leave-one-subject-out)" in html
    table = html_table(html)
    assert len(table) == 1 + len(PAPER_REPORTED)
    assert table.Experiment[0] == "se<1>" and "se&lt;1&gt;" in html  # escaped in the markup
    assert float(table.Accuracy[0]) == pytest.approx(m["accuracy"], abs=5e-5)
    assert table.UF1.tolist()[1:] == ["0.5853", "0.4599", "0.5059"]
    assert table.Method[1] == "SE-ResNeXt-50 (reported)" and table.Experiment[1] == "–"
    assert f"#bfdbfe {100 * m['uf1']:.1f}%, transparent" in html  # the score's bar


def write_metrics(root, subjects=("01", "02", "10"), epochs=4, val=False):
    rng, paths = np.random.default_rng(2), {}
    for s in subjects:
        d = root / s
        d.mkdir(parents=True)
        df = pd.DataFrame({"epoch": range(1, epochs + 1), "loss": rng.uniform(0.5, 2, epochs),
                           "train_acc": rng.uniform(0, 1, epochs), "images_per_s": 30.0, "seconds": 1.5})
        if val:
            df["val_acc"], df["val_uf1"] = rng.uniform(0, 1, epochs), rng.uniform(0, 1, epochs)
        df.to_csv(d / "metrics.csv", index=False)
        paths[s] = d / "metrics.csv"
    return paths


@pytest.mark.parametrize("val", [False, True])
def test_training_curves(tmp_path, val):
    paths = write_metrics(tmp_path / "folds", val=val)
    png = tmp_path / "out" / "training_curves.png"
    curves = training_curves({s: paths[s] for s in ("10", "01", "02")}, png, "tiny")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert list(curves.columns[:4]) == ["subject", "epoch", "loss", "train_acc"] and ("val_acc" in curves) == val
    assert len(curves) == 3 * 4 and set(curves.subject) == {"01", "02", "10"}
    expected = pd.read_csv(paths["02"])
    got = curves[curves.subject == "02"].reset_index(drop=True)
    assert np.allclose(got.loss, expected.loss) and np.allclose(got.train_acc, expected.train_acc)
    assert not list(png.parent.glob(".*.part"))  # written atomically, nothing left behind


def test_training_curves_rejects_other_files(tmp_path):
    bad = tmp_path / "metrics.csv"
    pd.DataFrame({"epoch": [1], "accuracy": [0.5]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"no column\(s\) \['loss', 'train_acc'\]"):
        training_curves({"01": bad}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no folds"):
        training_curves({}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_metrics_carry_the_uf1_interval_and_the_fold_mean(tmp_path):
    out = tmp_path / "agg"
    m = aggregate(write_folds(tmp_path), CLASSES, out, "se")
    saved = json.loads((out / "metrics.json").read_text())
    low, high = saved["uf1_ci95"]
    assert low <= m["uf1"] <= high and saved["bootstrap"]["n"] == 2000
    per_fold = pd.read_csv(out / "per_fold.tsv", sep="\t")
    assert saved["uf1_fold_mean"] == pytest.approx(per_fold.uf1.mean())


def test_summary_pairs_each_experiment_with_the_first_of_its_task(tmp_path):
    dirs = write_folds(tmp_path)
    cfg = dict(backbone="seresnext50_32x4d", frame="apex", loss="focal", task="5class", size=224, epochs=100,
               classes=CLASSES)
    experiments = {}
    for name in ("first", "same", "better"):
        out = tmp_path / name
        aggregate(dirs, CLASSES, out, name)
        if name == "better":  # right on every clip
            p = pd.read_csv(out / "predictions.tsv", sep="\t", dtype=str)
            p.assign(y_pred=p.y_true).to_csv(out / "predictions.tsv", sep="\t", index=False)
        experiments[name] = (out / "metrics.json", cfg)
    experiments["other_task"] = (tmp_path / "first" / "metrics.json", {**cfg, "task": "3class"})
    summarize_experiments(experiments, tmp_path / "s.md", tmp_path / "s.tsv", "demo", out_html=tmp_path / "s.html")
    md = (tmp_path / "s.md").read_text()
    assert "## Paired differences of UF1" in md and "| same − first | +0.0000 | +0.0000 to +0.0000 |" in md
    assert "| better − first | +" in md and "other_task" not in md.split("## Paired")[1]
    assert "UF1 95% CI" in md and "UF1, mean of folds" in md
    assert "Paired differences of UF1" in (tmp_path / "s.html").read_text()
    summarize_experiments(experiments, tmp_path / "c.md", tmp_path / "c.tsv", "demo", compare=[["better", "same"]])
    assert "| same − better | -" in (tmp_path / "c.md").read_text()
    with pytest.raises(ValueError, match="unknown: \\['nope'\\]"):
        summarize_experiments(experiments, tmp_path / "d.md", tmp_path / "d.tsv", "demo", compare=[["first", "nope"]])


def test_leakage_audit_picks_each_subjects_test_best_epoch(tmp_path):
    """Two folds, three epochs each, made by hand: subject 01 is best at epoch 2 (3 of 3 right), subject 02
    at epochs 1 and 3 (2 of 3; the first is taken). The final-epoch result stays the pooled predictions.tsv."""
    truth = {"01": ["happiness", "surprise", "others"], "02": ["happiness", "happiness", "surprise"]}
    preds = {  # epoch -> predictions per subject
        "01": {1: ["others", "others", "others"], 2: ["happiness", "surprise", "others"],
               3: ["happiness", "others", "others"]},
        "02": {1: ["happiness", "happiness", "others"], 2: ["others", "others", "others"],
               3: ["surprise", "happiness", "surprise"]},
    }
    dirs = []
    for s, by_epoch in preds.items():
        d = tmp_path / s
        d.mkdir()
        rows = [dict(epoch=e, subject=s, filename=f"EP{i}", y_true=t, y_pred=p)
                for e, ps in by_epoch.items() for i, (t, p) in enumerate(zip(truth[s], ps, strict=True))]
        pd.DataFrame(rows).to_csv(d / "held_out_by_epoch.tsv", sep="\t", index=False)
        pd.DataFrame([r for r in rows if r["epoch"] == 3]).drop(columns="epoch").to_csv(
            d / "predictions.tsv", sep="\t", index=False)
        dirs.append(d)
    audit = leakage_audit([d / "held_out_by_epoch.tsv" for d in dirs], CLASSES)
    assert audit["epochs"] == {"01": 2, "02": 1}
    chosen_true = truth["01"] + truth["02"]
    chosen_pred = preds["01"][2] + preds["02"][1]
    assert audit["uf1"] == pytest.approx(f1_score(chosen_true, chosen_pred, labels=CLASSES, average="macro",
                                                  zero_division=0))
    m = aggregate(dirs, CLASSES, tmp_path / "agg", "x")  # the result: the final epoch, as sklearn scores it
    final_pred = preds["01"][3] + preds["02"][3]
    assert m["uf1"] == pytest.approx(f1_score(chosen_true, final_pred, labels=CLASSES, average="macro",
                                              zero_division=0))
    assert m["leakage"]["uf1"] == audit["uf1"] > m["uf1"]
    cfg = dict(backbone="resnet50", frame="apex", loss="focal", task="5class", size=224, epochs=3)
    summarize_experiments({"x": (tmp_path / "agg" / "metrics.json", cfg)}, tmp_path / "s.md", tmp_path / "s.tsv",
                          "demo")
    md = (tmp_path / "s.md").read_text()
    assert "Leakage: UF1 with test-set epoch selection" in md and f"{audit['uf1']:.4f}" in md
    assert "is not a result either" in md


def test_seeds_give_mean_sd_and_the_interval_of_the_mean(tmp_path):
    """Three seeds' runs of one experiment (each pooled by aggregate): aggregate_seeds reports the mean and
    sample sd over seeds, each seed's own scores, and a reproducible interval that holds the mean UF1."""
    dirs = write_folds(tmp_path)
    runs, per_seed = [], []
    for s in (0, 1, 2):
        folds = []
        for d in dirs:  # each seed predicts the same clips differently
            p = pd.read_csv(d / "predictions.tsv", sep="\t", dtype={"subject": str})
            rng = np.random.default_rng(s)
            p["y_pred"] = np.where(rng.random(len(p)) < 0.5, p.y_true, rng.choice(CLASSES, len(p)))
            (tmp_path / f"s{s}" / d.name).mkdir(parents=True)
            p.to_csv(tmp_path / f"s{s}" / d.name / "predictions.tsv", sep="\t", index=False)
            folds.append(tmp_path / f"s{s}" / d.name)
        per_seed.append(aggregate(folds, CLASSES, tmp_path / f"run{s}", "x"))
        runs.append(tmp_path / f"run{s}")
    m = aggregate_seeds(runs, [0, 1, 2], CLASSES, tmp_path / "exp", {"name": "x"})
    for k in ("accuracy", "uf1", "uar", "uf1_fold_mean"):
        values = [r[k] for r in per_seed]
        assert m[k] == pytest.approx(np.mean(values)) and m[f"{k}_sd"] == pytest.approx(np.std(values, ddof=1))
    assert m["per_seed"]["1"]["uf1"] == per_seed[1]["uf1"] and m["seeds"] == [0, 1, 2]
    low, high = m["uf1_ci95"]
    assert low <= m["uf1"] <= high
    again = aggregate_seeds(runs, [0, 1, 2], CLASSES, tmp_path / "again", {"name": "x"})
    assert again["uf1_ci95"] == m["uf1_ci95"]
    table = pd.read_csv(tmp_path / "exp" / "predictions.tsv", sep="\t")
    assert sorted(table.seed.unique()) == [0, 1, 2] and len(table) == 3 * m["n_samples"]

    cfg = dict(backbone="resnet18", input="flow", frame="apex", loss="focal", task="5class", size=64, epochs=5,
               classes=CLASSES)
    experiments = {"one": (tmp_path / "run0" / "metrics.json", cfg), "seeds": (tmp_path / "exp" / "metrics.json", cfg),
                   "same": (tmp_path / "exp" / "metrics.json", cfg)}
    summarize_experiments(experiments, tmp_path / "s.md", tmp_path / "s.tsv", "demo", out_html=tmp_path / "s.html",
                          compare=[["seeds", "same"], ["one", "seeds"]])
    md = (tmp_path / "s.md").read_text()
    assert "| Input |" in md and "| Seeds |" in md and "| flow |" in md and "| 0, 1, 2 |" in md
    assert f"{m['uf1']:.4f} ± {m['uf1_sd']:.4f}" in md and f"{m['accuracy']:.4f} ± {m['accuracy_sd']:.4f}" in md
    assert "| same − seeds | +0.0000 | +0.0000 to +0.0000 |" in md  # the same runs: exactly 0
    assert f"| seeds − one | {m['uf1'] - per_seed[0]['uf1']:+.4f} |" in md
    tsv = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert tsv.uf1_sd[1] == pytest.approx(m["uf1_sd"]) and pd.isna(tsv.uf1_sd[0])
    assert f"{m['uf1']:.4f} ± {m['uf1_sd']:.4f}" in (tmp_path / "s.html").read_text()


MEGC = ["negative", "positive", "surprise"]


def write_composite_folds(root):
    """Folds of three datasets (subjects DATASET-SUBJECT, as the workflow names them), known predictions."""
    truth = {"casme2-01": (["negative", "positive"], ["negative", "positive"]),
             "samm-006": (["negative", "surprise", "surprise"], ["negative", "negative", "surprise"]),
             "smic_hs-2": (["positive", "surprise"], ["positive", "positive"])}
    dirs = []
    for s, (y_true, y_pred) in truth.items():
        d = root / s
        d.mkdir()
        pd.DataFrame({"subject": s, "filename": [f"c{i}" for i in range(len(y_true))], "y_true": y_true,
                      "y_pred": y_pred, **{f"prob_{c}": 1 / 3 for c in MEGC}}).to_csv(d / "predictions.tsv", sep="\t",
                                                                                       index=False)
        dirs.append(d)
    return dirs, truth


def test_composite_scores_each_dataset_apart(tmp_path):
    dirs, truth = write_composite_folds(tmp_path)
    m = aggregate(dirs, MEGC, tmp_path / "agg", {"name": "comp", "task": "megc2019"})
    assert set(m["per_dataset"]) == {"casme2", "samm", "smic_hs"}
    for s, (y_true, y_pred) in truth.items():
        d = m["per_dataset"][s.split("-")[0]]
        assert d["uf1"] == pytest.approx(f1_score(y_true, y_pred, labels=MEGC, average="macro", zero_division=0))
        assert d["uar"] == pytest.approx(recall_score(y_true, y_pred, labels=MEGC, average="macro", zero_division=0))
        assert d["n_samples"] == len(y_true) and d["n_subjects"] == 1
    assert m["per_dataset"]["samm"]["confusion"] == [[1, 0, 0], [0, 0, 0], [1, 0, 1]]
    # one dataset: no per-dataset scores
    (tmp_path / "one").mkdir()
    assert "per_dataset" not in aggregate(write_folds(tmp_path / "one"), CLASSES, tmp_path / "agg1", "x")

    experiments = {"comp": (tmp_path / "agg" / "metrics.json", {"backbone": "resnet10t", "task": "megc2019"})}
    label = "casme2 + samm + smic_hs"
    summarize_experiments(experiments, tmp_path / "s.md", tmp_path / "s.tsv", label, out_html=tmp_path / "s.html")
    md = (tmp_path / "s.md").read_text()
    assert "## Per dataset" in md and "| comp | samm | 1 | 3 |" in md and "Confusion of comp on smic_hs" in md
    assert "HTNet (reported)" in md and "CausalNet (reported)" in md and "held-out subject" in md
    tsv = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert tsv[tsv.source == "reported"].uf1.tolist() == [0.8603, 0.8976]
    assert "<h3>Per dataset</h3>" in (tmp_path / "s.html").read_text()
    # the generated demo: never published numbers, even for datasets named like the real ones
    summarize_experiments(experiments, tmp_path / "d.md", tmp_path / "d.tsv", label, real=False)
    assert "(reported)" not in (tmp_path / "d.md").read_text() and "## Per dataset" in (tmp_path / "d.md").read_text()


def test_both_renderings_show_one_summary(tmp_path):
    """summary.md and summary.html render the same model: every cell of every table, every note, the sections
    in one order; the prose comes from mer.evaluate.notes alone."""
    from mer.evaluate.notes import NOTES
    from mer.evaluate.render import to_html, to_markdown
    from mer.evaluate.summary import build_summary

    dirs, _ = write_composite_folds(tmp_path)
    for name in ("comp", "other"):
        aggregate(dirs, MEGC, tmp_path / name, {"name": name, "task": "megc2019"})
    cfg = {"backbone": "resnet10t", "task": "megc2019", "classes": MEGC, "datasets": ["casme2"],
           "test_datasets": ["samm", "smic_hs"]}
    experiments = {n: (tmp_path / n / "metrics.json", cfg) for n in ("comp", "other")}
    summary = build_summary(experiments, "casme2 + samm + smic_hs")
    md, html = to_markdown(summary), to_html(summary)
    assert [s.title for s in summary.sections] == [NOTES["paired_title"], NOTES["per_dataset_title"]]
    assert md.index("## Paired") < md.index("## Per dataset") and html.index("<h3>Paired") < html.index("<h3>Per")
    tables = [summary.table] + [t for s in summary.sections for t in (s.table, *s.matrices)]
    for table in tables:
        for row in table.rows:
            assert "| " + " | ".join(row) + " |" in md
            for cell in row:
                assert cell.replace("−", "&minus;") in html
    assert summary.note in md and " ".join(summary.note.splitlines()).replace("'", "&#x27;") in html
    for key in ("cross_dataset", "reported"):  # a cross-dataset experiment beside published rows
        assert NOTES[key] in summary.note
    for s in summary.sections:
        assert s.note in md and s.note.replace("'", "&#x27;") in html
    assert NOTES["bar"].replace("–", "&ndash;") in html and "0–1 scale" not in md
    assert summary.frame.source.tolist() == ["this workflow"] * 2 + ["reported"] * 2
