"""Pooling: a run's LOSO folds into one score (aggregate), an experiment's seeds into their mean and spread
(aggregate_seeds), and the leakage audit (leakage_audit) beside them.

Scores are computed once over the pooled predictions of all held-out subjects (not as a mean of
per-fold scores), as is usual for CASME II LOSO results.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from mer.datasets.catalog import split_fold
from mer.evaluate.plots import plot_confusion, plot_per_fold
from mer.io import write_csv, write_json, write_tsv
from mer.metrics import bootstrap_uf1, classification_metrics
from mer.train.data import AUDIT_FILE, subject_sort_key

# The bootstrap behind every interval: resamples of the clips, stratified by subject, with a fixed seed so that
# a rerun prints the same interval.
BOOTSTRAP = dict(n=2000, seed=0, level=0.95, stratified_by="subject")


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
        metrics["leakage"] = leakage_audit(audits, classes)
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
    plot_confusion(panels, classes, out_dir / "confusion.png")
    plot_per_fold(per_fold, metrics["accuracy"], name, out_dir / "per_fold.png")
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


def leakage_audit(audit_files, classes):
    """The leakage audit: what test-set epoch selection would have reported: for each fold (its AUDIT_FILE, the held-out
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
    """The `y_pred_<seed>` columns of a seed_columns table."""
    return [c for c in wide.columns if c.startswith("y_pred_")]
