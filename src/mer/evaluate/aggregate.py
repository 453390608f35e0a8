"""Pool the LOSO folds of an experiment into one score, and tabulate experiments like the paper.

Scores are computed once over the pooled predictions of all held-out subjects (not as a mean of
per-fold scores), as is usual for CASME II LOSO results.
"""

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend, nothing left open
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import accuracy_score, f1_score

from mer.datasets.catalog import split_fold
from mer.io import atomic_path, write_csv, write_json, write_text, write_tsv
from mer.metrics import bootstrap_uf1, classification_metrics, paired_bootstrap_uf1
from mer.train.data import AUDIT_FILE, subject_sort_key

# The bootstrap behind every interval: resamples of the clips, stratified by subject, with a fixed seed so that
# a rerun prints the same interval.
BOOTSTRAP = dict(n=2000, seed=0, level=0.95, stratified_by="subject")

# Literature values of the paper (CASME II, LOSO, apex frame, 5 classes), shown beside our results in
# summary tables only; never used in any computation. Fields the brief does not state are left blank.
PAPER_REPORTED = [
    dict(method="SE-ResNeXt-50", backbone="seresnext50_32x4d", frame="apex", loss="focal", task="5class",
         epochs=100, accuracy=0.5926, uf1=0.5853),
    dict(method="ResNet-50", backbone="resnet50", frame="apex", loss="", task="5class",
         epochs=100, accuracy=0.4814, uf1=0.4599),
    dict(method="ResNeXt-50", backbone="resnext50_32x4d", frame="apex", loss="", task="5class",
         epochs=100, accuracy=0.5556, uf1=0.5059),
]

# Published MEGC 2019 composite (CASME II + SAMM + SMIC-HS, 3 classes, 68-subject LOSO) figures that users
# compare against, as their authors report them. Both sources' released code keeps, for each held-out
# subject, the epoch that scored best on that subject: test-set selection, which inflates UF1 (see the
# summary's leakage column), so these are not comparable to a final-epoch result.
COMPOSITE_REPORTED = [
    dict(method="HTNet", backbone="", frame="apex", loss="", task="megc2019", uf1=0.8603,
         note="HTNet, as its authors report it; its code picks each fold's epoch on the held-out subject"),
    dict(method="CausalNet", backbone="", frame="apex", loss="", task="megc2019", uf1=0.8976,
         note="CausalNet, as its authors report it; its code picks each fold's epoch on the held-out subject"),
]
COMPOSITE_DATASETS = {"casme2", "samm", "smic_hs"}  # the composite's datasets (CASME II's 2014 or 2019 sheet)

METHOD_NAMES = {
    "seresnext50_32x4d": "SE-ResNeXt-50", "resnet50": "ResNet-50", "resnext50_32x4d": "ResNeXt-50",
}


def aggregate(fold_dirs, classes, out_dir, experiment):
    """Pool every fold's predictions.tsv; write predictions.tsv, metrics.json, confusion.csv/.png and
    per_fold.tsv/.png into out_dir. `experiment` (its name or config) is stored in metrics.json."""
    classes, out_dir = list(classes), Path(out_dir)
    folds = [read_predictions(Path(d) / "predictions.tsv") for d in fold_dirs]
    if not folds:
        raise ValueError("no folds to aggregate")
    pooled = pd.concat(folds, ignore_index=True)
    pooled = pooled.iloc[sorted(range(len(pooled)), key=lambda i: (subject_sort_key(pooled.subject[i]),
                                                                   pooled.filename[i]))]
    write_tsv(pooled, out_dir / "predictions.tsv")

    # per-fold scores are for inspection only; a fold's UF1 averages the classes that occur in it
    # (sklearn's default labels), since one subject rarely shows every class
    per_fold = pd.DataFrame([
        dict(subject=s, n=len(g), accuracy=accuracy_score(g.y_true, g.y_pred),
             uf1=f1_score(g.y_true, g.y_pred, average="macro", zero_division=0))
        for s, g in pooled.groupby("subject", sort=False)
    ])
    write_tsv(per_fold, out_dir / "per_fold.tsv")

    metrics = classification_metrics(pooled.y_true, pooled.y_pred, classes)
    low, high = bootstrap_uf1(pooled.y_true, pooled.y_pred, pooled.subject, classes, BOOTSTRAP["n"],
                              BOOTSTRAP["seed"], BOOTSTRAP["level"])
    metrics.update(n_folds=len(folds), n_samples=len(pooled), uf1_ci95=[low, high], bootstrap=BOOTSTRAP,
                   # the mean of the folds' own UF1: what papers that average per fold report; ours is pooled
                   uf1_fold_mean=float(per_fold.uf1.mean()), experiment=experiment)
    audits = [Path(d) / AUDIT_FILE for d in fold_dirs]
    if all(p.exists() for p in audits):
        metrics["leakage"] = leakage(audits, classes)
    by_dataset = per_dataset(pooled, classes)
    if by_dataset:
        metrics["per_dataset"] = by_dataset
    write_json(metrics, out_dir / "metrics.json")
    confusion = pd.DataFrame(metrics["confusion"], index=pd.Index(classes, name="true"), columns=classes)
    write_csv(confusion, out_dir / "confusion.csv", index=True)

    name = experiment.get("name", "") if isinstance(experiment, dict) else str(experiment)
    title = f"{name}: accuracy {metrics['accuracy']:.3f}, UF1 {metrics['uf1']:.3f} (n={len(pooled)})"
    panels = [(np.array(metrics["confusion"]), title)] + [
        (np.array(m["confusion"]), f"{d}: UF1 {m['uf1']:.3f}, UAR {m['uar']:.3f} (n={m['n_samples']})")
        for d, m in by_dataset.items()]
    _plot_confusion(panels, classes, out_dir / "confusion.png")
    _plot_per_fold(per_fold, metrics["accuracy"], name, out_dir / "per_fold.png")
    return metrics


def per_dataset(pooled, classes):
    """Scores of each dataset's clips among pooled predictions of several datasets (their subjects are
    DATASET-SUBJECT, mer.datasets.catalog.fold_id), as the MEGC 2019 composite reports them: dataset ->
    classification_metrics plus n_subjects. Empty for predictions of one dataset."""
    datasets = pooled.subject.map(lambda s: split_fold(str(s))[0])
    if datasets.nunique() < 2:
        return {}
    out = {}
    for d in sorted(datasets.unique()):
        g = pooled[datasets == d]
        out[d] = {**classification_metrics(g.y_true, g.y_pred, classes), "n_subjects": int(g.subject.nunique())}
    return out


def leakage(audit_files, classes):
    """What test-set epoch selection would have reported: for each fold (its AUDIT_FILE, the held-out
    subject's predictions after every epoch) the epoch of highest accuracy on its own held-out subject (the
    first such epoch), those predictions pooled and scored. An audit of how published numbers inflate, never
    a result: the choice looks at the test labels."""
    chosen, epochs = [], {}
    for path in audit_files:
        a = read_predictions(path)
        acc = (a.y_true == a.y_pred).groupby(a.epoch).mean()
        best = int(acc.idxmax())  # idxmax: the first epoch reaching the maximum
        chosen.append(a[a.epoch == best])
        epochs[str(a.subject.iloc[0])] = best
    pooled = pd.concat(chosen, ignore_index=True)
    m = classification_metrics(pooled.y_true, pooled.y_pred, classes)
    return dict(uf1=m["uf1"], accuracy=m["accuracy"], uar=m["uar"], epochs=epochs,
                selection="per held-out subject, the first epoch of highest accuracy on that subject")


# scores given as mean and standard deviation over the seeds of an experiment with `seeds`
SEED_SCORES = ("accuracy", "uf1", "uar", "uf1_fold_mean")


def aggregate_seeds(run_dirs, seeds, classes, out_dir, experiment):
    """An experiment trained once per seed (its runs' folders, each aggregated): write predictions.tsv (every
    run's pooled predictions, with a `seed` column) and metrics.json into out_dir.

    metrics.json: the mean over seeds of accuracy, UF1, UAR and the fold-mean UF1, each with `<score>_sd`
    (sample standard deviation, ddof 1; 0 for one seed), the scores of every seed (`per_seed`), the leakage
    audit's UF1 as mean and sd, and the bootstrap interval of the mean UF1: each resample of the clips (within
    subjects) scores every seed's predictions of those clips, and their UF1s are averaged."""
    classes, out_dir = list(classes), Path(out_dir)
    ms = [json.loads((Path(d) / "metrics.json").read_text()) for d in run_dirs]
    preds = pd.concat([read_predictions(Path(d) / "predictions.tsv").assign(seed=int(s))
                       for d, s in zip(run_dirs, seeds, strict=True)], ignore_index=True)
    write_tsv(preds, out_dir / "predictions.tsv")

    def spread(values):
        values = np.asarray(values, dtype=float)
        return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0

    metrics = dict(seeds=[int(s) for s in seeds], n_folds=ms[0]["n_folds"], n_samples=ms[0]["n_samples"],
                   per_seed={str(s): {k: m[k] for k in ("accuracy", "uf1", "uar")} for s, m in zip(seeds, ms,
                                                                                                  strict=True)})
    for k in SEED_SCORES:
        metrics[k], metrics[f"{k}_sd"] = spread([m[k] for m in ms])
    if all("leakage" in m for m in ms):
        mean, sd = spread([m["leakage"]["uf1"] for m in ms])
        metrics["leakage"] = dict(uf1=mean, uf1_sd=sd, per_seed=[m["leakage"]["uf1"] for m in ms])
    wide = seed_columns(preds)
    low, high = bootstrap_uf1(wide.y_true, wide[pred_columns(wide)].T.to_numpy(), wide.subject, classes,
                              BOOTSTRAP["n"], BOOTSTRAP["seed"], BOOTSTRAP["level"])
    metrics.update(uf1_ci95=[low, high], bootstrap=BOOTSTRAP, experiment=experiment)
    write_json(metrics, out_dir / "metrics.json")
    return metrics


def read_predictions(path):
    """A predictions.tsv (or a fold's AUDIT_FILE), ids and labels as text ('01' stays '01')."""
    return pd.read_csv(path, sep="\t", dtype={"subject": str, "filename": str, "y_true": str, "y_pred": str})


def seed_columns(preds):
    """Pooled predictions with one `y_pred_<seed>` column per seed, for the clips every seed predicted (a table
    without a `seed` column is one run: its y_pred becomes the only such column)."""
    key = ["subject", "filename", "y_true"]
    if "seed" not in preds:
        return preds[key + ["y_pred"]].rename(columns={"y_pred": "y_pred_0"})
    wide = preds.pivot(index=key, columns="seed", values="y_pred").dropna()
    wide.columns = [f"y_pred_{s}" for s in wide.columns]
    return wide.reset_index()


def pred_columns(wide):
    return [c for c in wide.columns if c.startswith("y_pred_")]


def _plot_confusion(panels, classes, path):
    """Confusion matrices side by side: panels of (matrix, title): all clips, then each dataset's."""
    n = len(panels)
    fig = Figure(figsize=(n * (1.2 * len(classes) + 2.5), 1.1 * len(classes) + 2), layout="constrained")
    for k, (cm, title) in enumerate(panels):
        ax = fig.add_subplot(1, n, k + 1)
        im = ax.imshow(cm, cmap="Blues")
        fig.colorbar(im, ax=ax, label="clips").ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title, fontsize=9)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    _save(fig, path)


def _plot_per_fold(per_fold, pooled_acc, name, path):
    fig = Figure(figsize=(max(6, 0.3 * len(per_fold) + 2), 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(per_fold.subject.astype(str), per_fold.accuracy, color="tab:blue")
    ax.axhline(pooled_acc, color="tab:red", linestyle="--", label=f"pooled {pooled_acc:.3f}")
    ax.set_ylim(0, 1)
    ax.set_xlabel("held-out subject")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{name}: accuracy per LOSO fold", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def training_curves(metrics, path, name=""):
    """Plot each fold's per-epoch metrics.csv (as written by mer.train.loop; `metrics` maps the held-out
    subject to its file) into one PNG: training loss and accuracy per epoch, one thin line per fold
    and their mean over folds in bold; the inner-validation accuracy too where a fold recorded it.
    Returns the curves as one long table (subject, epoch, loss, train_acc[, val_acc, ...])."""
    frames = []
    for subject, csv in metrics.items():
        df = pd.read_csv(csv)
        missing = {"epoch", "loss", "train_acc"} - set(df.columns)
        if missing:
            raise ValueError(f"{csv}: no column(s) {sorted(missing)} (not a metrics.csv of mer.train.loop)")
        frames.append(df.assign(subject=str(subject)))
    if not frames:
        raise ValueError("no folds to plot")
    curves = pd.concat(frames, ignore_index=True)
    curves = curves[["subject", *[c for c in curves.columns if c != "subject"]]]
    order = sorted(curves.subject.unique(), key=subject_sort_key)

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    marker = "o" if curves.epoch.nunique() <= 20 else None  # a few epochs: show the points
    panels = [(loss_ax, "loss", "tab:purple", "training"), (acc_ax, "train_acc", "tab:blue", "training")]
    if "val_acc" in curves and curves.val_acc.notna().any():
        panels.append((acc_ax, "val_acc", "tab:orange", "inner validation"))
    for ax, col, color, label in panels:
        for s in order:
            c = curves[curves.subject == s]
            ax.plot(c.epoch, c[col], color=color, alpha=0.3, lw=0.8, marker=marker, ms=2)
        mean = curves.groupby("epoch")[col].mean()
        ax.plot(mean.index, mean.values, color=color, lw=2.2, marker=marker, ms=4,
                label=f"{label}, mean of {len(order)} folds")
    loss_ax.plot([], [], color="grey", alpha=0.5, lw=0.8, label="one fold (thin lines)")
    loss_ax.set_ylim(bottom=0)
    loss_ax.set_ylabel("training loss (mean per clip)")
    loss_ax.set_title(f"{name}: training loss per epoch", fontsize=9)
    acc_ax.set_ylim(0, 1)
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_title(f"{name}: accuracy per epoch", fontsize=9)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    _save(fig, path)
    return curves


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    fig.clear()  # a pyplot-free Figure is freed once unreferenced; clear() releases its artists now


# summary.md / summary.html: column -> heading, in table order
SUMMARY_COLUMNS = {"method": "Method", "experiment": "Experiment", "input": "Input", "frame": "Frame", "loss": "Loss",
                   "task": "Task", "data": "Data", "size": "Size", "epochs": "Epochs", "seeds": "Seeds",
                   "accuracy": "Accuracy",
                   "uf1": "UF1", "uf1_ci95": "UF1 95% CI",
                   "uar": "UAR", "uf1_fold_mean": "UF1, mean of folds",
                   "leakage_uf1": "Leakage: UF1 with test-set epoch selection", "n_folds": "Folds",
                   "n_samples": "Samples"}
# score heading -> column: shown with 4 decimals, as mean ± sd over seeds where there are several, with a bar in html
SCORE_KEYS = {SUMMARY_COLUMNS[k]: k for k in ("accuracy", "uf1", "uar", "uf1_fold_mean", "leakage_uf1")}
SCORES = list(SCORE_KEYS)
# right-aligned in .md
NUMERIC_COLUMNS = ("size", "epochs", "accuracy", "uf1", "uar", "uf1_fold_mean", "leakage_uf1", "n_folds",
                   "n_samples")


def data_label(cfg):
    """What an experiment trained and tested on: 'casme2 + samm + smic_hs' (leave one subject out over
    them all) or 'casme2 → samm' (cross-dataset); blank for a config without datasets."""
    train = " + ".join(cfg.get("datasets") or [])
    tests = " + ".join(cfg.get("test_datasets") or [])
    return f"{train} → {tests}" if tests else train


def default_reported(dataset, tasks):
    """Published rows beside ours on real data: the paper's on CASME II alone (`dataset` 'casme2' or
    'casme2_2019'), the composite's (COMPOSITE_REPORTED) where an experiment runs task megc2019 over
    CASME II, SAMM and SMIC-HS ('casme2 + samm + smic_hs')."""
    names = {d.strip() for d in dataset.split("+")}
    rows = PAPER_REPORTED if names in ({"casme2"}, {"casme2_2019"}) else []
    if "megc2019" in tasks and {n.replace("casme2_2019", "casme2") for n in names} >= COMPOSITE_DATASETS:
        rows = rows + COMPOSITE_REPORTED
    return rows


def summarise(experiment_metrics, out_md, out_tsv, dataset, reported=None, out_html=None, compare=None,
              real=True):
    """One row per experiment (name -> (metrics.json path, experiment config)), as summary.tsv and .md
    (and a standalone summary.html for the Snakemake report, if `out_html` is given).

    On real data (`real`), published numbers (default_reported, or `reported` rows if given) are added as
    separate rows marked '(reported)'; never on the generated demo.

    compare: pairs [a, b] of experiment names whose UF1 difference b - a gets a paired bootstrap interval
    (their predictions.tsv beside metrics.json); None or []: every experiment against the first one of its task.
    """
    rows, datasets = [], []
    for name, (metrics_path, cfg) in experiment_metrics.items():
        m = json.loads(Path(metrics_path).read_text())
        datasets += [dict(experiment=name, dataset=d, n_subjects=s["n_subjects"], n_samples=s["n_samples"],
                          accuracy=s["accuracy"], uf1=s["uf1"], uar=s["uar"], confusion=s["confusion"],
                          classes=list(s["per_class"])) for d, s in m.get("per_dataset", {}).items()]
        rows.append(dict(
            experiment=name, method=METHOD_NAMES.get(cfg.get("backbone"), cfg.get("backbone")),
            backbone=cfg.get("backbone"), input=cfg.get("input", "frame"), frame=cfg.get("frame"),
            loss=cfg.get("loss"), task=cfg.get("task"), data=data_label(cfg), size=cfg.get("size"),
            epochs=cfg.get("epochs"),
            seeds=", ".join(str(x) for x in m.get("seeds", [cfg.get("seed", 0)])),
            accuracy=m["accuracy"], uf1=m["uf1"], uf1_ci95="{:.4f}–{:.4f}".format(*m["uf1_ci95"]), uar=m["uar"],
            uf1_fold_mean=m["uf1_fold_mean"], leakage_uf1=m.get("leakage", {}).get("uf1"),
            # standard deviations over seeds (experiments with `seeds`); blank for one run
            accuracy_sd=m.get("accuracy_sd"), uf1_sd=m.get("uf1_sd"), uar_sd=m.get("uar_sd"),
            uf1_fold_mean_sd=m.get("uf1_fold_mean_sd"), leakage_uf1_sd=m.get("leakage", {}).get("uf1_sd"),
            n_folds=m["n_folds"], n_samples=m["n_samples"], source="this workflow",
        ))
    if reported is None:
        reported = default_reported(dataset, {cfg.get("task") for _, cfg in experiment_metrics.values()})
    if not real:
        reported = []
    for r in reported or []:
        rows.append(dict(experiment="", size=None, uar=None, uf1_ci95="", uf1_fold_mean=None, leakage_uf1=None,
                         n_folds=None,
                         n_samples=None, **r, source="reported"))
        rows[-1]["method"] = f"{r.get('method', r.get('backbone'))} (reported)"
    cols = ["experiment", "method", "backbone", "input", "frame", "loss", "task", "data", "size", "epochs", "seeds",
            "accuracy", "uf1", "uf1_ci95", "uar", "uf1_fold_mean", "leakage_uf1", "accuracy_sd", "uf1_sd", "uar_sd",
            "uf1_fold_mean_sd", "leakage_uf1_sd", "n_folds", "n_samples", "source"]
    table = pd.DataFrame(rows, columns=cols)
    for col in ("size", "epochs", "n_folds", "n_samples"):
        table[col] = table[col].astype("Int64")  # integers with blanks for the reported rows
    write_tsv(table, out_tsv)

    def cell(v, digits=None):
        if v is None or (not isinstance(v, str) and pd.isna(v)) or v == "":
            return "–"
        return f"{v:.{digits}f}" if digits else str(v)

    def score(r, k):  # a score, as mean ± sd over seeds where there are several
        sd = r.get(f"{k}_sd")
        return cell(r[k], 4) + ("" if sd is None or pd.isna(sd) or pd.isna(r[k]) else f" ± {sd:.4f}")

    lines = [f"# Results on {dataset} (leave-one-subject-out)", "",
             "| " + " | ".join(SUMMARY_COLUMNS.values()) + " |",
             "|" + "|".join("---:" if k in NUMERIC_COLUMNS else "---" for k in SUMMARY_COLUMNS) + "|"]
    for r in table.to_dict("records"):
        lines.append("| " + " | ".join(score(r, k) if SUMMARY_COLUMNS[k] in SCORES else cell(r[k])
                                        for k in SUMMARY_COLUMNS) + " |")
    lines += ["", "Accuracy, UF1 (macro F1) and UAR (macro recall) are computed over the pooled predictions",
              f"of all folds. The UF1 interval is a {BOOTSTRAP['level']:.0%} bootstrap percentile interval "
              f"({BOOTSTRAP['n']} resamples of the clips within each subject, seed {BOOTSTRAP['seed']}). "
              "'UF1, mean of folds' averages each fold's own UF1 (over the classes its subject shows), as "
              "some papers report; it is not our result. The leakage column is not a result either: it is what "
              "choosing each fold's epoch by its accuracy on the held-out subject (the test set) would have "
              "reported, as much published MER code does (Varanka et al., IEEE TAFFC 2024, measured STSTNet on "
              "CASME II going from UF1 0.704 to 0.869 that way). Our UF1 is the final epoch's, chosen by nobody. "
              "An experiment with several seeds shows mean ± standard deviation over its seeds, and the interval "
              "of its mean UF1 (every seed scored on the same resampled clips)."]
    if table.data.fillna("").str.contains("→").any():
        lines[-1] += (" A Data cell 'A → B' is a cross-dataset experiment: trained on every subject of A, tested on "
                      "every subject of B (one fold per test dataset), not leave-one-subject-out.")
    if reported:
        lines[-1] += " Rows marked (reported) are published numbers, not rerun here."
        notes = [r["note"] for r in reported if r.get("note")]
        if notes:
            lines[-1] += " " + "; ".join(notes) + " (test-set selection: compare them with the leakage column)."
    note = " ".join(lines[-2:])
    pairs = compare_experiments(experiment_metrics, compare)
    if len(pairs):
        lines += ["", "## Paired differences of UF1", "",
                  "| Comparison | ΔUF1 | 95% CI | Clips |", "|---|---:|---|---:|"]
        lines += [f"| {r.b} − {r.a} | {r.diff:+.4f} | {r.low:+.4f} to {r.high:+.4f} | {r.n} |"
                  for r in pairs.itertuples()]
        lines += ["", "Each difference is scored on the same bootstrap resamples of the clips both experiments "
                  "predicted: an interval that contains 0 does not show either one better on this data."]
    lines += _per_dataset_md(datasets)
    write_text("\n".join(lines) + "\n", out_md)
    if out_html is not None:
        write_text(_summary_html(table, dataset, note, pairs, datasets), out_html)
    return table


PER_DATASET_NOTE = ("Each dataset's clips scored apart, from the same pooled leave-one-subject-out predictions "
                    "(the MEGC 2019 composite protocol reports UF1 and UAR this way).")


def _per_dataset_md(datasets):
    """summary.md's per-dataset section: scores, then each confusion matrix (rows true, columns predicted)."""
    if not datasets:
        return []
    lines = ["", "## Per dataset", "", "| Experiment | Dataset | Subjects | Clips | Accuracy | UF1 | UAR |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['experiment']} | {r['dataset']} | {r['n_subjects']} | {r['n_samples']} | {r['accuracy']:.4f} "
              f"| {r['uf1']:.4f} | {r['uar']:.4f} |" for r in datasets]
    lines += ["", PER_DATASET_NOTE]
    for r in datasets:
        lines += ["", f"Confusion of {r['experiment']} on {r['dataset']} (rows: true class, columns: predicted):", "",
                  "| true \\ predicted | " + " | ".join(r["classes"]) + " |",
                  "|---|" + "---:|" * len(r["classes"])]
        lines += [f"| {c} | " + " | ".join(str(v) for v in row) + " |"
                  for c, row in zip(r["classes"], r["confusion"], strict=True)]
    return lines


def compare_experiments(experiment_metrics, compare=None):
    """Paired bootstrap of UF1 between experiments (see summarise): a table of a, b, diff (UF1 of b minus
    a), low, high, n (clips both predicted). Pairs of different tasks are skipped (their labels differ)."""
    names = list(experiment_metrics)
    for pair in compare or []:
        unknown = [n for n in pair if n not in experiment_metrics]
        if len(pair) != 2 or unknown:
            raise ValueError(f"report.compare: {pair!r} is not a pair of experiments of {names}"
                             + (f" (unknown: {unknown})" if unknown else ""))
    if compare:
        pairs = [tuple(p) for p in compare]
    else:
        first = {}
        for n in names:
            first.setdefault(experiment_metrics[n][1].get("task"), n)
        pairs = [(first[experiment_metrics[n][1].get("task")], n) for n in names
                 if first[experiment_metrics[n][1].get("task")] != n]
    read = functools.cache(lambda n: seed_columns(read_predictions(  # the first experiment is in many pairs
        Path(experiment_metrics[n][0]).parent / "predictions.tsv")))
    rows = []
    for a, b in pairs:
        cfg_a, cfg_b = experiment_metrics[a][1], experiment_metrics[b][1]
        if cfg_a.get("task") != cfg_b.get("task"):
            continue
        pa, pb = pred_columns(read(a)), pred_columns(read(b))
        both = read(a).rename(columns={c: f"a {c}" for c in pa}).merge(
            read(b).rename(columns={c: f"b {c}" for c in pb}), on=["subject", "filename", "y_true"])
        if both.empty:
            continue
        runs_a, runs_b = [both[f"a {c}"] for c in pa], [both[f"b {c}"] for c in pb]
        diff, low, high = paired_bootstrap_uf1(both.y_true, runs_a, runs_b, both.subject,
                                               list(cfg_a["classes"]), BOOTSTRAP["n"], BOOTSTRAP["seed"],
                                               BOOTSTRAP["level"])
        rows.append(dict(a=a, b=b, diff=diff, low=low, high=high, n=len(both)))
    return pd.DataFrame(rows, columns=["a", "b", "diff", "low", "high", "n"])


SUMMARY_CSS = [  # the page's look; Styler adds each score's bar as a per-cell gradient
    {"selector": "", "props": "border-collapse: collapse; font: 13px/1.4 system-ui, sans-serif; color: #1e293b;"},
    {"selector": "caption", "props": "font-size: 1.2em; font-weight: bold; text-align: left; padding: 0.5em 0;"},
    {"selector": "th, td", "props": "padding: 0.3em 0.5em; border-bottom: 1px solid #e2e8f0; white-space: nowrap;"},
    {"selector": "th", "props": "background: #f1f5f9; text-align: left;"},
]


def _summary_html(table, dataset, note, pairs=None, datasets=()):
    """summary.md's table as one standalone HTML page (pandas Styler); a bar behind each score shows its
    value on a 0..1 scale, and the paper's reported rows are greyed."""
    from html import escape

    shown = table[list(SUMMARY_COLUMNS)].rename(columns=SUMMARY_COLUMNS).replace("", None)
    values = table[list(SCORE_KEYS.values())].astype(float)  # a column without any value (no audit): NaN
    for heading, k in SCORE_KEYS.items():  # text: "mean ± sd" over seeds, or the one run's score
        shown[heading] = [None if pd.isna(v) else f"{v:.4f}" + ("" if pd.isna(sd) else f" ± {sd:.4f}")
                          for v, sd in zip(values[k], table[f"{k}_sd"].astype(float), strict=True)]
    reported = (table["source"] == "reported").to_numpy()
    grey = lambda row: ["color: #64748b; font-style: italic;" if reported[row.name] else ""] * len(row)  # noqa: E731
    # Styler.bar draws from numeric cells, and these hold text: the same bar (a gradient stop at the value) by hand
    bars = lambda col: [  # noqa: E731
        "" if pd.isna(v) else f"background: linear-gradient(90deg, #bfdbfe {100 * min(max(v, 0), 1):.1f}%, "
        f"transparent {100 * min(max(v, 0), 1):.1f}%);" for v in values[SCORE_KEYS[col.name]]]
    styler = (
        shown.style.hide(axis="index")
        .format(na_rep="–", escape="html")
        .apply(bars, subset=SCORES)
        .apply(grey, axis=1)
        .set_uuid("summary")  # the table's id: T_summary
        .set_caption(f"Results on {escape(dataset)} (leave-one-subject-out)")
        .set_table_styles(SUMMARY_CSS)
    )
    html = styler.to_html(doctype_html=True)
    html = html.replace("</table>", f"</table>\n<p>{escape(note)} The bar behind a score shows its value on a "
                        "0&ndash;1 scale.</p>", 1)
    if pairs is not None and len(pairs):
        cells = "".join(f"<tr><td>{escape(r.b)} &minus; {escape(r.a)}</td><td>{r.diff:+.4f}</td>"
                        f"<td>{r.low:+.4f} to {r.high:+.4f}</td><td>{r.n}</td></tr>" for r in pairs.itertuples())
        html = html.replace("</body>", "<h3>Paired differences of UF1</h3>\n<table><tr><th>Comparison</th>"
                            f"<th>&Delta;UF1</th><th>95% CI</th><th>Clips</th></tr>{cells}</table>\n<p>Each "
                            "difference is scored on the same bootstrap resamples of the clips both experiments "
                            "predicted.</p>\n</body>", 1)
    if datasets:
        cells = "".join(f"<tr><td>{escape(r['experiment'])}</td><td>{escape(r['dataset'])}</td><td>{r['n_subjects']}"
                        f"</td><td>{r['n_samples']}</td><td>{r['accuracy']:.4f}</td><td>{r['uf1']:.4f}</td>"
                        f"<td>{r['uar']:.4f}</td></tr>" for r in datasets)
        matrices = "".join(
            f"<table><caption>{escape(r['experiment'])} on {escape(r['dataset'])}</caption><tr><th>true \\ "
            "predicted</th>" + "".join(f"<th>{escape(c)}</th>" for c in r["classes"]) + "</tr>"
            + "".join(f"<tr><th>{escape(c)}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
                      for c, row in zip(r["classes"], r["confusion"], strict=True)) + "</table>"
            for r in datasets)
        html = html.replace("</body>", "<h3>Per dataset</h3>\n<table><tr><th>Experiment</th><th>Dataset</th>"
                            "<th>Subjects</th><th>Clips</th><th>Accuracy</th><th>UF1</th><th>UAR</th></tr>"
                            f"{cells}</table>\n<p>{escape(PER_DATASET_NOTE)}</p>\n{matrices}\n</body>", 1)
    return html
