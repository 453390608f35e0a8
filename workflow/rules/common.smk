# Config validation, paths and input functions shared by every stage.
import functools
import os
import re
from pathlib import Path

import pandas as pd
from snakemake.utils import min_version, validate

from mer.datasets.catalog import (
    DATASET_NAME,
    configured,
    fold_id,
    layout_fingerprint,
    task_classes,
)
from mer.datasets.frames import fingerprint
from mer.train.data import input_datasets
from mer.train.groups import group_of, member_name
from mer.datasets.sheet import task_subjects

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
    for name, entry in DATASETS.items():
        for key in ("root", "sheet"):
            path = entry[key]
            if path is not None and (not path or not Path(path).exists()):
                where = (
                    f"datasets.{name}.{key}" if config["datasets"] else f"data.{key}"
                )
                raise ValueError(
                    f"config key {where} = {path!r} does not exist; point it at your copy of "
                    f"{name} or set demo.enabled: true"
                )


wildcard_constraints:
    dataset=DATASET_NAME.pattern,
    subject=r"[A-Za-z0-9.]+",  # as the dataset writes it: '01', '006', 'spNO.1'
    fold=DATASET_NAME.pattern + r"(?:-[A-Za-z0-9.]+)?",  # DATASET-SUBJECT (fold_id), or a test DATASET
    experiment=r"[^/]+(?:/seed-?\d+)?",  # an experiment, or one seed's run of it (RUNS)


def code(*modules):
    """The library modules that a job runs ("stage.module" for mer.stage.module), as its inputs (editing
    one reruns the job). Relative to the
    working directory: Snakemake records each output's input paths, so absolute ones would rerun every
    job of a run moved or copied to another folder with its checkout."""
    return [os.path.relpath(SRC / f"{m.replace('.', '/')}.py") for m in modules]


def samples(dataset):
    """A dataset's samples table once its read_sheet checkpoint has run."""
    path = checkpoints.read_sheet.get(dataset=dataset).output.samples
    return pd.read_csv(path, sep="\t", dtype={"subject": str, "filename": str})


def subjects(dataset):
    s = samples(dataset)
    return sorted(s[s.included].subject.unique())


def subject_frames(wildcards):
    """A param standing for every frame of the subject's included clips (mer.datasets.frames.fingerprint: paths
    below the root, sizes, modification times): Snakemake reruns a job whose params changed, so changed
    frames rerun that subject alone. Not input files: Snakemake re-stats every input of every waiting
    job in each scheduling round, which for CASME II's 17,000 frames cost more CPU than the whole
    preprocessing. The demo's frames are one directory output of make_demo, tracked through it instead.
    """
    if DEMO:
        return "demo"
    return _frames_fingerprint(wildcards.dataset, wildcards.subject)


@functools.cache  # once per subject and run: two rules ask, some more than once
def _frames_fingerprint(dataset, subject):
    s = samples(dataset)
    clips = s[(s.subject == subject) & s.included]
    return fingerprint(
        DATASETS[dataset]["root"],
        DATASETS[dataset]["frame_pattern"],
        [
            (r.subject, r.filename, int(r.onset), int(r.offset), str(r.emotion))
            for r in clips.itertuples()
        ],
    )


def demo_frames(wildcards):
    """The generated frames a demo dataset's read_sheet waits for (make_demo, make_demo_dataset)."""
    if not DEMO:
        return []
    if config["demo"]["datasets"]:
        return f"{RES}/demo/{wildcards.dataset}/frames"
    return rules.make_demo.output.frames


def layout_clips(wildcards):
    """A param of a sheet-less dataset's read_sheet (SMIC-HS): its clip folders' fingerprint, standing in for
    the sheet, so a new or removed clip reruns it. The demo's are tracked through make_demo_dataset.
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
    return lambda wildcards: [
        pattern.format(dataset=wildcards.dataset, subject=s)
        for s in subjects(wildcards.dataset)
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
        flow = any(
            e["input"] == "flow" and d in e["datasets"] + e["test_datasets"]
            for e in EXPERIMENTS.values()
        )
        for s in subjects(d):
            targets += [
                f"{RES}/landmarks/{d}/sub{s}.tsv",
                f"{RES}/apex/{d}/sub{s}.tsv",
                f"{RES}/crops/{d}/sub{s}.h5",
            ] + ([f"{RES}/flow/{d}/sub{s}.h5"] if flow else [])
    for run in RUNS:
        folds = f"{RES}/{run}/folds"
        for s in fold_subjects(run):
            targets += [
                f"{folds}/{s}/{f}"
                for f in (
                    "model.pt",
                    "metrics.csv",
                    "predictions.tsv",
                    "held_out_by_epoch.tsv",
                    "fold.json",
                )
            ]
        targets += expand(rules.aggregate_loso.output, experiment=run)
    for name in SEEDED:
        targets += expand(rules.aggregate_seeds.output, experiment=name)
    if EXPERIMENTS:
        targets += [f"{RES}/summary.md", f"{RES}/summary.tsv", f"{RES}/summary.html"]
    return targets


def make_experiments(cfg, schema_path, datasets):
    """name -> full experiment config: `train` defaults, then each listed experiment, then the grid.
    Each experiment's overrides are checked against the schema of `train` (no defaults filled there,
    so an override is only what the user wrote). `datasets` (DATASETS): an experiment's `datasets`
    default to every one that defines its task, and its classes are that task's."""
    import itertools

    import jsonschema
    import yaml

    train_schema = yaml.safe_load(Path(schema_path).read_text())["properties"]["train"]
    train_schema = {
        **train_schema,
        "properties": {**train_schema["properties"], "name": {"type": "string"}},
    }
    base = dict(cfg["train"])
    out = {}
    for e in cfg["experiments"]:
        try:
            jsonschema.validate(e, train_schema)
        except jsonschema.ValidationError as err:
            raise ValueError(
                f"config experiments[{e['name']!r}]: {err.message}"
            ) from None
        out[e["name"]] = {
            **base,
            **e,
            "augment": {**base["augment"], **e.get("augment", {})},
        }
    keys = [k for k, v in cfg["grid"].items() if v]
    for values in itertools.product(*(cfg["grid"][k] for k in keys)) if keys else []:
        e = dict(zip(keys, values))
        name = "_".join(str(v) for v in values)
        out.setdefault(name, {**base, **e, "name": name})
    for name, e in out.items():
        having = [d for d, entry in datasets.items() if e["task"] in entry["tasks"]]
        if not having:
            raise ValueError(
                f"experiment {name}: task {e['task']!r} is a task of no dataset; the tasks are "
                f"{ {d: list(entry['tasks']) for d, entry in datasets.items()} }"
            )
        unknown = [d for d in e["datasets"] + e["test_datasets"] if d not in having]
        if unknown:
            raise ValueError(
                f"experiment {name}: datasets {unknown} are not configured or lack task "
                f"{e['task']!r}; those with it: {having}"
            )
        tests = list(e["test_datasets"])
        e["datasets"] = list(e["datasets"]) or [d for d in having if d not in tests]
        if set(tests) & set(e["datasets"]) or (tests and not e["datasets"]):
            raise ValueError(
                f"experiment {name}: test_datasets {tests} must be apart from the datasets "
                f"it trains on, {e['datasets']}, and some dataset must train"
            )
        e["classes"] = task_classes(
            {d: datasets[d] for d in e["datasets"] + tests}, e["task"]
        )
        # stops on an input that the frame choice cannot give, naming the experiment
        input_datasets(e)
        # What a clip must go through to look like the training crops: saved in every model.pt, so that
        # `mer predict` prepares a new clip the same way (mer.predict). `flow` for flow inputs alone, so a
        # changed flow setting reruns no other experiment.
        steps = ("landmarks", "apex", "crop") + (
            ("flow",) if e["input"] == "flow" else ()
        )
        e["preprocess"] = {k: cfg[k] for k in steps}
    return out


def make_runs(experiments):
    """run id -> training config: an experiment with `seeds` trains once per seed, run NAME/seedS (its
    folds under results/NAME/seedS/), else once, run NAME. `seeds` itself is left out of a run's config,
    so adding a seed to the list reruns nothing already trained."""
    runs = {}
    for name, e in experiments.items():
        base = {k: v for k, v in e.items() if k != "seeds"}
        if e.get("seeds"):
            runs.update({f"{name}/seed{s}": {**base, "seed": s} for s in e["seeds"]})
        else:
            runs[name] = base
    return runs


EXPERIMENTS = make_experiments(
    config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml", DATASETS
)
RUNS = make_runs(EXPERIMENTS)
SEEDED = [name for name, e in EXPERIMENTS.items() if e.get("seeds")]
for pair in config["report"]["compare"]:
    if set(pair) - set(EXPERIMENTS):
        raise ValueError(
            f"config report.compare: {pair} names no experiment {sorted(set(pair) - set(EXPERIMENTS))}; "
            f"the experiments are {list(EXPERIMENTS)}"
        )


def experiment_of(run):
    """The experiment a run (RUNS) belongs to: NAME of NAME/seedS."""
    return run.split("/")[0]


def fold_subjects(run):
    """Held-out subjects (DATASET-SUBJECT, fold_id) of the run's (or experiment's) datasets with samples
    for its task: one fold each (none for the others). Cross-dataset: the test datasets.
    """
    e = EXPERIMENTS[experiment_of(run)]
    if e["test_datasets"]:  # cross-dataset: one fold per test dataset, named by it
        return list(e["test_datasets"])
    return [
        fold_id(d, s)
        for d in e["datasets"]
        for s in task_subjects(samples(d), e["task"])
    ]


def alternatives(names):
    """A wildcard regex matching exactly these names ((?!) matches nothing)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def runs_re(fused):
    """Wildcard regex matching the runs trained in fused groups (fused=True) or alone."""
    return alternatives(
        [r for r, e in RUNS.items() if (str(e["fold_group"]) != "1") == fused]
    )


def training_caches(wildcards):
    """The per-subject caches a run's (or a final model's) training reads: flow caches for input flow,
    else the crop caches."""
    e = EXPERIMENTS[experiment_of(wildcards.experiment)]
    folder = "flow" if e["input"] == "flow" else "crops"
    return [
        f"{RES}/{folder}/{d}/sub{s}.h5"
        for d in e["datasets"] + e["test_datasets"]
        for s in subjects(d)
    ]


def members(run):
    """A run's fold-group members: held-out subjects, as 'seedS/SUBJECT' for a run of an experiment with
    `seeds` (mer.train.groups.member_fold), so that seeds fuse like folds do."""
    return [member_name(s, run.partition("/")[2]) for s in fold_subjects(run)]


def group_members(wildcards):
    """The members trained together with this run's fold (train.fold_group), over all the experiment's runs."""
    name = experiment_of(wildcards.experiment)
    everyone = [m for r in RUNS if experiment_of(r) == name for m in members(r)]
    return group_of(everyone, EXPERIMENTS[name]["fold_group"], member_of(wildcards))


def member_of(wildcards):
    """This job's fold as a group member (see members)."""
    return member_name(wildcards.fold, wildcards.experiment.partition("/")[2])


def member_dir(experiment, member):
    """The fold folder of a group member of `experiment`."""
    prefix, _, subject = member.rpartition("/")
    run = f"{experiment}/{prefix}" if prefix else experiment
    return f"{RES}/{run}/folds/{subject}"


def group_config(run):
    """A fused group's config: the run's, or for an experiment with `seeds` the experiment's without them
    (its members carry their seeds)."""
    name = experiment_of(run)
    if run == name:
        return RUNS[run]
    return {k: v for k, v in EXPERIMENTS[name].items() if k != "seeds"}


def group_first_fold(wildcards):
    """A group's later folds run after its first, which trains the group: its fold.json."""
    first = group_members(wildcards)[0]
    if first == member_of(wildcards):
        return []
    return f"{member_dir(experiment_of(wildcards.experiment), first)}/fold.json"


def group_store(wildcards):
    """The store of this fold's group: under the experiment, named after the group's first member."""
    name = experiment_of(wildcards.experiment)
    return f"{RES}/{name}/groups/{group_members(wildcards)[0]}"


def final_config(experiment):
    """The final model's training config: the experiment's first run (its first seed)."""
    return next(c for r, c in RUNS.items() if experiment_of(r) == experiment)


def fold_outputs(name):
    """Input function: one fold file per held-out subject of the experiment."""
    return lambda wc: [
        f"{RES}/{wc.experiment}/folds/{s}/{name}" for s in fold_subjects(wc.experiment)
    ]


def gpu_slots():
    """GPU slots for concurrent folds: config gpu.slots, else the --resources gpu=N limit, else 1."""
    if config["gpu"]["slots"]:
        return int(config["gpu"]["slots"])
    limit = workflow.global_resources.get("gpu")
    limit = getattr(limit, "value", limit)  # Snakemake 9 wraps resource values
    return int(limit) if isinstance(limit, int | float) and limit > 0 else 1
