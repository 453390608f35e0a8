"""Pool the LOSO folds of an experiment into one score, and tabulate experiments like the paper.

Scores are computed once over the pooled predictions of all held-out subjects (not as a mean of
per-fold scores), as is usual for CASME II LOSO results.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend, nothing left open
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import accuracy_score, f1_score

from mer.data import subject_sort_key
from mer.io import atomic_path, write_json, write_text, write_tsv
from mer.metrics import classification_metrics

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

METHOD_NAMES = {
    "seresnext50_32x4d": "SE-ResNeXt-50", "resnet50": "ResNet-50", "resnext50_32x4d": "ResNeXt-50",
}


def aggregate(fold_dirs, classes, out_dir, experiment):
    """Pool every fold's predictions.tsv; write predictions.tsv, metrics.json, confusion.csv/.png and
    per_fold.tsv/.png into out_dir. `experiment` (its name or config) is stored in metrics.json."""
    classes, out_dir = list(classes), Path(out_dir)
    folds = [pd.read_csv(Path(d) / "predictions.tsv", sep="\t", dtype={"subject": str, "y_true": str,
                                                                       "y_pred": str})
             for d in fold_dirs]
    if not folds:
        raise ValueError("no folds to aggregate")
    pooled = pd.concat(folds, ignore_index=True)
    pooled = pooled.iloc[sorted(range(len(pooled)), key=lambda i: (subject_sort_key(pooled.subject[i]),
                                                                   pooled.filename[i]))]
    write_tsv(pooled, out_dir / "predictions.tsv")

    metrics = classification_metrics(pooled.y_true, pooled.y_pred, classes)
    metrics.update(n_folds=len(folds), n_samples=len(pooled), experiment=experiment)
    write_json(metrics, out_dir / "metrics.json")
    confusion = pd.DataFrame(metrics["confusion"], index=pd.Index(classes, name="true"), columns=classes)
    with atomic_path(out_dir / "confusion.csv") as tmp:
        confusion.to_csv(tmp)

    # per-fold scores are for inspection only; a fold's UF1 averages the classes that occur in it
    # (sklearn's default labels), since one subject rarely shows every class
    per_fold = pd.DataFrame([
        dict(subject=s, n=len(g), accuracy=accuracy_score(g.y_true, g.y_pred),
             uf1=f1_score(g.y_true, g.y_pred, average="macro", zero_division=0))
        for s, g in pooled.groupby("subject", sort=False)
    ])
    write_tsv(per_fold, out_dir / "per_fold.tsv")

    name = experiment.get("name", "") if isinstance(experiment, dict) else str(experiment)
    title = f"{name}: accuracy {metrics['accuracy']:.3f}, UF1 {metrics['uf1']:.3f} (n={len(pooled)})"
    _plot_confusion(np.array(metrics["confusion"]), classes, title, out_dir / "confusion.png")
    _plot_per_fold(per_fold, metrics["accuracy"], name, out_dir / "per_fold.png")
    return metrics


def _plot_confusion(cm, classes, title, path):
    fig = Figure(figsize=(1.2 * len(classes) + 2.5, 1.1 * len(classes) + 2), layout="constrained")
    ax = fig.add_subplot()
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
    """Plot each fold's per-epoch metrics.csv (as written by mer.engine; `metrics` maps the held-out
    subject to its file) into one PNG: training loss and accuracy per epoch, one thin line per fold
    and their mean over folds in bold; the inner-validation accuracy too where a fold recorded it.
    Returns the curves as one long table (subject, epoch, loss, train_acc[, val_acc, ...])."""
    frames = []
    for subject, csv in metrics.items():
        df = pd.read_csv(csv)
        missing = {"epoch", "loss", "train_acc"} - set(df.columns)
        if missing:
            raise ValueError(f"{csv}: no column(s) {sorted(missing)} (not a metrics.csv of mer.engine)")
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


def summarise(experiment_metrics, out_md, out_tsv, dataset, reported=None, out_html=None):
    """One row per experiment (name -> (metrics.json path, experiment config)), as summary.tsv and .md
    (and a standalone summary.html for the Snakemake report, if `out_html` is given).

    For dataset 'casme2' the paper's numbers (PAPER_REPORTED, or `reported` rows if given) are added as
    separate rows marked '(reported)'.
    """
    rows = []
    for name, (metrics_path, cfg) in experiment_metrics.items():
        m = json.loads(Path(metrics_path).read_text())
        rows.append(dict(
            experiment=name, method=METHOD_NAMES.get(cfg.get("backbone"), cfg.get("backbone")),
            backbone=cfg.get("backbone"), frame=cfg.get("frame"), loss=cfg.get("loss"), task=cfg.get("task"),
            size=cfg.get("size"), epochs=cfg.get("epochs"), accuracy=m["accuracy"], uf1=m["uf1"],
            uar=m["uar"], n_folds=m["n_folds"], n_samples=m["n_samples"], source="this workflow",
        ))
    if reported is None:
        reported = PAPER_REPORTED if dataset == "casme2" else []
    for r in reported or []:
        rows.append(dict(experiment="", size=None, uar=None, n_folds=None, n_samples=None, **r,
                         source="reported"))
        rows[-1]["method"] = f"{r.get('method', r.get('backbone'))} (reported)"
    cols = ["experiment", "method", "backbone", "frame", "loss", "task", "size", "epochs", "accuracy", "uf1",
            "uar", "n_folds", "n_samples", "source"]
    table = pd.DataFrame(rows, columns=cols)
    for col in ("size", "epochs", "n_folds", "n_samples"):
        table[col] = table[col].astype("Int64")  # integers with blanks for the reported rows
    write_tsv(table, out_tsv)

    def cell(v, digits=None):
        if v is None or (not isinstance(v, str) and pd.isna(v)) or v == "":
            return "–"
        return f"{v:.{digits}f}" if digits else str(v)

    lines = [f"# Results on {dataset} (leave-one-subject-out)", "",
             "| Method | Experiment | Frame | Loss | Task | Size | Epochs | Accuracy | UF1 | UAR | Folds "
             "| Samples |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table.to_dict("records"):
        lines.append("| " + " | ".join([
            cell(r["method"]), cell(r["experiment"]), cell(r["frame"]), cell(r["loss"]), cell(r["task"]),
            cell(r["size"]), cell(r["epochs"]), cell(r["accuracy"], 4), cell(r["uf1"], 4), cell(r["uar"], 4),
            cell(r["n_folds"]), cell(r["n_samples"]),
        ]) + " |")
    lines += ["", "Accuracy, UF1 (macro F1) and UAR (macro recall) are computed over the pooled predictions",
              "of all folds."]
    if reported:
        lines[-1] += " Rows marked (reported) are the paper's published numbers, not rerun here."
    write_text("\n".join(lines) + "\n", out_md)
    if out_html is not None:
        write_text(_summary_html(table, dataset, " ".join(lines[-2:])), out_html)
    return table


def _summary_html(table, dataset, note):
    """summary.md's table as one self-contained HTML page; scores get a bar of their value (0..1)."""
    from html import escape

    cols = [("method", "Method", None), ("experiment", "Experiment", None), ("frame", "Frame", None),
            ("loss", "Loss", None), ("task", "Task", None), ("size", "Size", None), ("epochs", "Epochs", None),
            ("accuracy", "Accuracy", 4), ("uf1", "UF1", 4), ("uar", "UAR", 4), ("n_folds", "Folds", None),
            ("n_samples", "Samples", None)]
    scores = {"accuracy", "uf1", "uar"}

    def cell(key, v, digits):
        if v is None or (not isinstance(v, str) and pd.isna(v)) or v == "":
            return '<td class="blank">–</td>'
        if key in scores:
            pct = 100 * min(max(float(v), 0.0), 1.0)
            return (f'<td class="num score" style="background-size: {pct:.1f}% 100%">'
                    f"{float(v):.{digits}f}</td>")
        return f'<td class="num">{v}</td>' if not isinstance(v, str) else f"<td>{escape(v)}</td>"

    head = "".join(f"<th>{escape(label)}</th>" for _, label, _ in cols)
    body = "\n".join(
        f'<tr class="{"reported" if r["source"] == "reported" else "ours"}">'
        + "".join(cell(key, r[key], digits) for key, _, digits in cols) + "</tr>"
        for r in table.to_dict("records")
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Results on {escape(dataset)}</title>
<style>
body {{ background: #fff; color: #1e293b; font: 13px/1.4 system-ui, sans-serif; margin: 1em; }}
h1 {{ font-size: 1.2em; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 0.3em 0.5em; border-bottom: 1px solid #e2e8f0; text-align: left; white-space: nowrap; }}
th {{ background: #f1f5f9; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.score {{ background-image: linear-gradient(#bfdbfe, #bfdbfe); background-repeat: no-repeat; }}
td.blank {{ color: #94a3b8; text-align: center; }}
tr.reported {{ color: #64748b; font-style: italic; }}
p {{ color: #475569; max-width: 60em; }}
</style></head>
<body>
<h1>Results on {escape(dataset)} (leave-one-subject-out)</h1>
<table id="summary">
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<p>{escape(note)} The bar behind a score shows its value on a 0&ndash;1 scale.</p>
</body></html>
"""
