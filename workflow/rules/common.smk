# Config validation, paths and input functions shared by every stage.
import functools
import os
import re
from pathlib import Path

import pandas as pd
from snakemake.utils import min_version, validate

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
if DEMO:
    FRAMES_ROOT = f"{RES}/demo/frames"
    SHEET = f"{RES}/demo/coding.csv"
else:
    FRAMES_ROOT, SHEET = config["data"]["root"], config["data"]["sheet"]
    for key, path in (("data.root", FRAMES_ROOT), ("data.sheet", SHEET)):
        if not path or not Path(path).exists():
            raise ValueError(
                f"config key {key} = {path!r} does not exist; point it at your CASME II copy "
                "or set demo.enabled: true"
            )


wildcard_constraints:
    subject=r"\d+",
    experiment=r"[^/]+(?:/seed-?\d+)?",  # an experiment, or one seed's run of it (RUNS)


def code(*modules):
    """The library modules that a job runs ("stage.module" for mer.stage.module), as its inputs (editing
    one reruns the job). Relative to the
    working directory: Snakemake records each output's input paths, so absolute ones would rerun every
    job of a run moved or copied to another folder with its checkout."""
    return [os.path.relpath(SRC / f"{m.replace('.', '/')}.py") for m in modules]


def samples():
    """samples.tsv once the read_sheet checkpoint has run."""
    path = checkpoints.read_sheet.get().output.samples
    return pd.read_csv(path, sep="\t", dtype={"subject": str})


def subjects():
    s = samples()
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
    return _frames_fingerprint(wildcards.subject)


@functools.cache  # once per subject and run: two rules ask, some more than once
def _frames_fingerprint(subject):
    s = samples()
    clips = s[(s.subject == subject) & s.included]
    return fingerprint(
        FRAMES_ROOT,
        config["data"]["frame_pattern"],
        [
            (r.subject, r.filename, int(r.onset), int(r.offset))
            for r in clips.itertuples()
        ],
    )


def per_subject(pattern):
    """An input function: `pattern` formatted for every included subject."""
    return lambda wildcards: [pattern.format(subject=s) for s in subjects()]


def all_targets(wildcards):
    """Every output, per subject and per fold too: Snakemake does not remake a deleted intermediate
    file whose downstream outputs are up to date, so each one is a target in its own right.
    """
    # every output of the report and aggregation jobs, not one of each: after a kill, Snakemake 9.27
    # remakes a job downstream of the read_sheet checkpoint only if an output asked for is missing
    # (it ignores those jobs' incomplete markers), and a killed job may have written some outputs
    targets = list(rules.report_preprocessing.output)
    for s in subjects():
        targets += [
            f"{RES}/landmarks/sub{s}.tsv",
            f"{RES}/apex/sub{s}.tsv",
            f"{RES}/crops/sub{s}.h5",
        ]
        if any(e["input"] == "flow" for e in EXPERIMENTS.values()):
            targets.append(f"{RES}/flow/sub{s}.h5")
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


def make_experiments(cfg, schema_path):
    """name -> full experiment config: `train` defaults, then each listed experiment, then the grid.
    Each experiment's overrides are checked against the schema of `train` (no defaults filled there,
    so an override is only what the user wrote)."""
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
        if e["task"] not in cfg["tasks"]:
            raise ValueError(
                f"experiment {name}: task {e['task']!r} is not a key of `tasks` {list(cfg['tasks'])}"
            )
        e["classes"] = list(cfg["tasks"][e["task"]])
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
    config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
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
    """Subjects with samples for the run's (or experiment's) task: one fold each (none for the others)."""
    return task_subjects(samples(), EXPERIMENTS[experiment_of(run)]["task"])


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
    kind = EXPERIMENTS[experiment_of(wildcards.experiment)]["input"]
    folder = "flow" if kind == "flow" else "crops"
    return [f"{RES}/{folder}/sub{s}.h5" for s in subjects()]


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
    return member_name(wildcards.subject, wildcards.experiment.partition("/")[2])


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
