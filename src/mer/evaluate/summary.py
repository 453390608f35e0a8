"""The summary of a workflow's experiments: one model (the results table, the paired comparisons of UF1, the
per-dataset sections and their notes) built once from the experiments' metrics.json, written as summary.tsv
(its table) and rendered by mer.evaluate.render to summary.md and summary.html."""

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mer.evaluate.notes import NOTES
from mer.evaluate.pooling import BOOTSTRAP, pred_columns, read_predictions, seed_columns
from mer.evaluate.render import to_html, to_markdown
from mer.evaluate.reported import METHOD_NAMES, default_reported
from mer.io import write_text, write_tsv
from mer.metrics import paired_bootstrap_uf1

# summary.tsv's columns, in order
TSV_COLUMNS = ["experiment", "method", "backbone", "input", "frame", "loss", "task", "data", "size", "epochs",
               "seeds", "accuracy", "uf1", "uf1_ci95", "uar", "uf1_fold_mean", "leakage_uf1", "accuracy_sd",
               "uf1_sd", "uar_sd", "uf1_fold_mean_sd", "leakage_uf1_sd", "n_folds", "n_samples", "source"]
# the shown table (summary.md, summary.html): column -> heading, in table order
SUMMARY_COLUMNS = {"method": "Method", "experiment": "Experiment", "input": "Input", "frame": "Frame", "loss": "Loss",
                   "task": "Task", "data": "Data", "size": "Size", "epochs": "Epochs", "seeds": "Seeds",
                   "accuracy": "Accuracy",
                   "uf1": "UF1", "uf1_ci95": "UF1 95% CI",
                   "uar": "UAR", "uf1_fold_mean": "UF1, mean of folds",
                   "leakage_uf1": "Leakage: UF1 with test-set epoch selection", "n_folds": "Folds",
                   "n_samples": "Samples"}
# scores: shown with 4 decimals, as mean ± sd over seeds where there are several, with a bar in html
SCORE_COLUMNS = ("accuracy", "uf1", "uar", "uf1_fold_mean", "leakage_uf1")
# right-aligned in markdown
NUMERIC_COLUMNS = ("size", "epochs", "accuracy", "uf1", "uar", "uf1_fold_mean", "leakage_uf1", "n_folds",
                   "n_samples")
BLANK = "–"  # an empty cell


@dataclass(frozen=True)
class Table:
    """A table as both renderings show it: its headings and each cell's text."""
    headings: list
    rows: list  # one list of cell texts per row
    numeric: list  # per column: right-aligned in markdown
    row_headings: bool = False  # the first column names its row (a confusion matrix's true class)
    caption: str = ""


@dataclass(frozen=True)
class Section:
    """A titled table and its note (a sentence without its full stop); summary.md adds the `reading` of the
    figures to the note, and after it each of `matrices`."""
    title: str
    table: Table
    note: str
    reading: str = ""
    matrices: list = field(default_factory=list)


@dataclass(frozen=True)
class Summary:
    """What summary.tsv, summary.md and summary.html show, built once (build_summary)."""
    title: str
    frame: pd.DataFrame  # summary.tsv: one row per experiment (TSV_COLUMNS), then the published ones
    table: Table  # the frame as shown: SUMMARY_COLUMNS
    values: pd.DataFrame  # each score's value (heading -> float, NaN where blank), drawn as a bar in html
    reported: list  # per row: a published number, not rerun here
    note: str  # the table's note
    sections: list  # of Section: the paired differences and the per-dataset scores, where there are any


def data_label(cfg):
    """What an experiment trained and tested on: 'casme2 + samm + smic_hs' (leave one subject out over
    them all) or 'casme2 → samm' (cross-dataset); blank for a config without datasets."""
    train = " + ".join(cfg.get("datasets") or [])
    tests = " + ".join(cfg.get("test_datasets") or [])
    return f"{train} → {tests}" if tests else train


def summarize_experiments(experiment_metrics, out_md, out_tsv, dataset, reported=None, out_html=None, compare=None,
                          real=True):
    """One row per experiment (name -> (metrics.json path, experiment config)), as summary.tsv and .md
    (and a standalone summary.html for the Snakemake report, if `out_html` is given). Returns the table.

    On real data (`real`), published numbers (default_reported, or `reported` rows if given) are added as
    separate rows marked '(reported)'; never on the generated demo.

    compare: pairs [a, b] of experiment names whose UF1 difference b - a gets a paired bootstrap interval
    (their predictions.tsv beside metrics.json); None or []: every experiment against the first one of its task.
    """
    summary = build_summary(experiment_metrics, dataset, reported, compare, real)
    write_tsv(summary.frame, out_tsv)
    write_text(to_markdown(summary), out_md)
    if out_html is not None:
        write_text(to_html(summary), out_html)
    return summary.frame


def build_summary(experiment_metrics, dataset, reported=None, compare=None, real=True):
    """The Summary of the experiments (arguments as summarize_experiments takes them)."""
    rows, datasets = [], []
    for name, (metrics_path, cfg) in experiment_metrics.items():
        m = json.loads(Path(metrics_path).read_text())
        datasets += [dict(experiment=name, dataset=d, **s) for d, s in m.get("per_dataset", {}).items()]
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
    reported = reported if real else []
    for r in reported:
        rows.append(dict(experiment="", size=None, uar=None, uf1_ci95="", uf1_fold_mean=None, leakage_uf1=None,
                         n_folds=None, n_samples=None, **r, source="reported"))
        rows[-1]["method"] = f"{r.get('method', r.get('backbone'))} (reported)"
    frame = pd.DataFrame(rows, columns=TSV_COLUMNS)
    for col in ("size", "epochs", "n_folds", "n_samples"):
        frame[col] = frame[col].astype("Int64")  # integers with blanks for the reported rows

    note = NOTES["scores"].format(**BOOTSTRAP)
    if frame.data.fillna("").str.contains("→").any():
        note += " " + NOTES["cross_dataset"]
    if reported:
        note += " " + NOTES["reported"]
        notes = [r["note"] for r in reported if r.get("note")]
        if notes:
            note += " " + NOTES["reported_notes"].format(notes="; ".join(notes))
    values = frame[list(SCORE_COLUMNS)].astype(float).rename(columns=SUMMARY_COLUMNS)  # no audit: all NaN
    return Summary(
        title=NOTES["title"].format(dataset=dataset), frame=frame, table=_shown(frame), values=values,
        reported=(frame.source == "reported").tolist(), note=note,
        sections=_paired_section(compare_experiments(experiment_metrics, compare)) + _per_dataset_section(datasets),
    )


def _shown(frame):
    """The frame's SUMMARY_COLUMNS as text: scores to 4 decimals (mean ± sd over seeds), blanks as BLANK."""
    def cell(v):
        return BLANK if v is None or (not isinstance(v, str) and pd.isna(v)) or v == "" else str(v)

    def score(r, k):
        sd = r.get(f"{k}_sd")
        if pd.isna(r[k]):
            return BLANK
        return f"{r[k]:.4f}" + ("" if sd is None or pd.isna(sd) else f" ± {sd:.4f}")

    rows = [[score(r, k) if k in SCORE_COLUMNS else cell(r[k]) for k in SUMMARY_COLUMNS]
            for r in frame.to_dict("records")]
    return Table(list(SUMMARY_COLUMNS.values()), rows, [k in NUMERIC_COLUMNS for k in SUMMARY_COLUMNS])


def _paired_section(pairs):
    if not len(pairs):
        return []
    table = Table(["Comparison", "ΔUF1", "95% CI", "Clips"],
                  [[f"{r.b} − {r.a}", f"{r.diff:+.4f}", f"{r.low:+.4f} to {r.high:+.4f}", str(r.n)]
                   for r in pairs.itertuples()], [False, True, False, True])
    return [Section(NOTES["paired_title"], table, NOTES["paired"], reading=NOTES["paired_reading"])]


def _per_dataset_section(datasets):
    """Each dataset's scores (metrics.json's per_dataset of each experiment), then its confusion matrix."""
    if not datasets:
        return []
    table = Table(["Experiment", "Dataset", "Subjects", "Clips", "Accuracy", "UF1", "UAR"],
                  [[r["experiment"], r["dataset"], str(r["n_subjects"]), str(r["n_samples"]),
                    f"{r['accuracy']:.4f}", f"{r['uf1']:.4f}", f"{r['uar']:.4f}"] for r in datasets],
                  [False, False, True, True, True, True, True])
    matrices = [Table(["true \\ predicted", *r["per_class"]],
                      [[c, *(str(v) for v in row)] for c, row in zip(r["per_class"], r["confusion"], strict=True)],
                      [False] + [True] * len(r["per_class"]), row_headings=True,
                      caption=f"{r['experiment']} on {r['dataset']}") for r in datasets]
    return [Section(NOTES["per_dataset_title"], table, NOTES["per_dataset"], matrices=matrices)]


def compare_experiments(experiment_metrics, compare=None):
    """Paired bootstrap of UF1 between experiments (see summarize_experiments): a table of a, b, diff (UF1 of b
    minus a), low, high, n (clips both predicted). Pairs of different tasks are skipped (their labels differ)."""
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
