# Config validation, paths and input functions shared by every stage. What a config asks to train
# (experiments, runs, folds, fused groups) is mer.config's Plan.
import functools
import os
from pathlib import Path

import pandas as pd
from snakemake.utils import min_version, validate

from mer.config import Plan, alternatives, check_dataset_paths, fold_paths
from mer.datasets.catalog import DATASET_NAME, configured, layout_fingerprint
from mer.datasets.frames import fingerprint

min_version("9.0")


# The demo config unless the user names config files (then defaults come from the schema alone,
# so config/casme2.yaml never inherits the demo's CPU-sized settings).
if not workflow.config_settings.configfiles:

    configfile: "config.yaml"


# Fills defaults and stops on an unknown or mistyped key, naming it.
validate(config, "../schemas/config.schema.yaml")

RES = config["results"]
SRC = Path(workflow.basedir) / "src" / "mer"
DEMO = config["demo"]["enabled"]
# name -> dataset entry (mer.datasets.catalog): config `datasets`, or the one of `data`, or the demo's
DATASETS = configured(config, f"{RES}/demo" if DEMO else None)
if not DEMO:
    check_dataset_paths(config, DATASETS)


wildcard_constraints:
    dataset=DATASET_NAME.pattern,
    subject=r"[A-Za-z0-9.]+",  # as the dataset writes it: '01', '006', 'spNO.1'
    fold=DATASET_NAME.pattern + r"(?:-[A-Za-z0-9.]+)?",  # DATASET-SUBJECT (fold_id), or a test DATASET
    experiment=r"[^/]+(?:/seed-?\d+)?",  # an experiment, or one seed's run of it (RUNS)


def code(*modules):
    """The library modules a job runs ("stage.module" for mer.stage.module), as its inputs: editing one
    reruns the job. Relative to the working directory: Snakemake records each output's input paths, so
    absolute ones would rerun every job of a run moved or copied elsewhere with its checkout.
    """
    return [os.path.relpath(SRC / f"{m.replace('.', '/')}.py") for m in modules]


def samples(dataset):
    """A dataset's samples table once its read_sheet checkpoint has run."""
    path = checkpoints.read_sheet.get(dataset=dataset).output.samples
    return pd.read_csv(path, sep="\t", dtype={"subject": str, "filename": str})


PLAN = Plan(config, DATASETS, samples)
EXPERIMENTS, RUNS, SEEDED = PLAN.experiments, PLAN.runs, PLAN.seeded


def subject_frames(wildcards):
    """A param standing for every frame of the subject's included clips (mer.datasets.frames.fingerprint),
    so changed frames rerun that subject alone. Not input files: Snakemake re-stats every input of every
    waiting job in each scheduling round, which for CASME II's 17,000 frames cost more CPU than the whole
    preprocessing. The demo's frames are one directory output of make_demo, tracked through it.
    """
    return "demo" if DEMO else _frames_fingerprint(wildcards.dataset, wildcards.subject)


@functools.cache  # once per subject and run: two rules ask, some more than once
def _frames_fingerprint(dataset, subject):
    s, entry = samples(dataset), DATASETS[dataset]
    clips = s[(s.subject == subject) & s.included].itertuples()
    keys = [
        (c.subject, c.filename, int(c.onset), int(c.offset), str(c.emotion))
        for c in clips
    ]
    return fingerprint(entry["root"], entry["frame_pattern"], keys)


def demo_frames(wildcards):
    """The generated frames a demo dataset's read_sheet waits for (make_demo, make_demo_dataset)."""
    if not DEMO:
        return []
    if config["demo"]["datasets"]:
        return f"{RES}/demo/{wildcards.dataset}/frames"
    return rules.make_demo.output.frames


def layout_clips(wildcards):
    """A param of a sheet-less dataset's read_sheet (SMIC-HS): its clip folders' fingerprint, standing in
    for the sheet, so a new or removed clip reruns it. The demo's: through make_demo_dataset.
    """
    entry = DATASETS[wildcards.dataset]
    if DEMO or entry["sheet"] is not None:
        return ""
    return layout_fingerprint(entry["root"], entry["layout"])


def dataset_key(key):
    """A param: the dataset's entry value (a function, so no wildcard expansion in frame patterns)."""
    return lambda wildcards: DATASETS[wildcards.dataset][key]


def per_subject(pattern):
    """An input function: `pattern` formatted for every included subject of the job's dataset."""
    return lambda wc: [
        pattern.format(dataset=wc.dataset, subject=s) for s in PLAN.subjects(wc.dataset)
    ]


def montage_task(wildcards):
    """The task whose classes a dataset's crop montage shows: config report.task, or the dataset's first."""
    tasks = list(DATASETS[wildcards.dataset]["tasks"])
    return config["report"]["task"] if config["report"]["task"] in tasks else tasks[0]


def all_targets(wildcards):
    """Every output, per subject and per fold too: Snakemake does not remake a deleted intermediate
    file whose downstream outputs are up to date, so each one is a target in its own right.
    """
    # every output of the report and aggregation jobs, not one of each: after a kill, Snakemake 9.27
    # remakes a job downstream of the read_sheet checkpoint only if an output asked for is missing
    # (it ignores those jobs' incomplete markers), and a killed job may have written some outputs
    targets = []
    for d in DATASETS:
        targets += expand(rules.report_preprocessing.output, dataset=d)
        kinds = {"landmarks": "tsv", "apex": "tsv", "crops": "h5"}
        kinds |= {"flow": "h5"} if PLAN.uses_flow(d) else {}
        targets += [
            f"{RES}/{k}/{d}/sub{s}.{ext}"
            for s in PLAN.subjects(d)
            for k, ext in kinds.items()
        ]
    for run in RUNS:
        targets += PLAN.fold_targets(run)
        targets += expand(rules.aggregate_loso.output, experiment=run)
    for name in SEEDED:
        targets += expand(rules.aggregate_seeds.output, experiment=name)
    if EXPERIMENTS:
        targets += [f"{RES}/summary.md", f"{RES}/summary.tsv", f"{RES}/summary.html"]
    return targets


def gpu_slots():
    """GPU slots for concurrent folds: config gpu.slots, else the --resources gpu=N limit, else 1."""
    if config["gpu"]["slots"]:
        return int(config["gpu"]["slots"])
    limit = workflow.global_resources.get("gpu")
    limit = getattr(limit, "value", limit)  # Snakemake 9 wraps resource values
    return int(limit) if isinstance(limit, int | float) and limit > 0 else 1
