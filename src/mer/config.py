"""The workflow's config as data: the schema and its defaults, and what a config asks to train.

An experiment is `train` with the overrides of one listed experiment or one grid point. A run is one
training of an experiment: NAME, or NAME/seedS for each of its `seeds`. A fold is one held-out subject
(DATASET-SUBJECT, mer.datasets.catalog.fold_id) or, cross-dataset, one test dataset. With fold_group other
than 1, an experiment's folds train in fused groups (mer.train.groups) whose members are its folds over all
its runs: SUBJECT, or seedS/SUBJECT for a run NAME/seedS, so that its seeds fuse like its folds.

workflow/rules/common.smk validates the config against the schema and asks a Plan for the rest.
"""

import itertools
import re
from pathlib import Path

import jsonschema

from mer.datasets.catalog import fold_id, task_classes
from mer.datasets.sheet import task_subjects
from mer.schema import schema
from mer.train.data import input_datasets
from mer.train.groups import FOLD_FILES, FOLD_OUTPUTS, group_of, member_name, split_member


def fold_paths(folder):
    """{output name: path} of a fold's files in `folder` (FOLD_OUTPUTS), in FOLD_FILES order."""
    return {name: f"{folder}/{file}" for name, file in FOLD_OUTPUTS.items()}


def check_dataset_paths(cfg, datasets):
    """Stop on a dataset root or sheet (of mer.datasets.catalog.configured) that does not exist, naming its key."""
    for name, entry in datasets.items():
        for key in ("root", "sheet"):
            path = entry[key]
            if path is not None and (not path or not Path(path).exists()):
                where = f"datasets.{name}.{key}" if cfg["datasets"] else f"data.{key}"
                raise ValueError(f"config key {where} = {path!r} does not exist; point it at your copy of "
                                 f"{name} or set demo.enabled: true")


def make_experiments(cfg, datasets):
    """name -> full experiment config of a validated config: `train`, then each listed experiment, then the
    grid. Each experiment's overrides are checked against the schema of `train` (no defaults filled there,
    so an override is only what the user wrote). `datasets` (mer.datasets.catalog.configured): an
    experiment's `datasets` default to every one that defines its task, and its classes are that task's."""
    train_schema = schema()["properties"]["train"]
    train_schema = {**train_schema, "properties": {**train_schema["properties"], "name": {"type": "string"}}}
    base = dict(cfg["train"])
    out = {}
    for e in cfg["experiments"]:
        try:
            jsonschema.validate(e, train_schema)
        except jsonschema.ValidationError as err:
            raise ValueError(f"config experiments[{e['name']!r}]: {err.message}") from None
        out[e["name"]] = {**base, **e, "augment": {**base["augment"], **e.get("augment", {})}}
    keys = [k for k, v in cfg["grid"].items() if v]
    for values in itertools.product(*(cfg["grid"][k] for k in keys)) if keys else []:
        name = "_".join(str(v) for v in values)
        out.setdefault(name, {**base, **dict(zip(keys, values, strict=True)), "name": name})
    for name, e in out.items():
        _complete(name, e, cfg, datasets)
    for pair in cfg["report"]["compare"]:
        if set(pair) - set(out):
            raise ValueError(f"config report.compare: {pair} names no experiment {sorted(set(pair) - set(out))}; "
                             f"the experiments are {list(out)}")
    return out


def _complete(name, e, cfg, datasets):
    """Fill in an experiment's datasets, classes and preprocessing, stopping on a choice that cannot train."""
    having = [d for d, entry in datasets.items() if e["task"] in entry["tasks"]]
    if not having:
        raise ValueError(f"experiment {name}: task {e['task']!r} is a task of no dataset; the tasks are "
                         f"{ {d: list(entry['tasks']) for d, entry in datasets.items()} }")
    unknown = [d for d in e["datasets"] + e["test_datasets"] if d not in having]
    if unknown:
        raise ValueError(f"experiment {name}: datasets {unknown} are not configured or lack task "
                         f"{e['task']!r}; those with it: {having}")
    tests = list(e["test_datasets"])
    e["datasets"] = list(e["datasets"]) or [d for d in having if d not in tests]
    if set(tests) & set(e["datasets"]) or (tests and not e["datasets"]):
        raise ValueError(f"experiment {name}: test_datasets {tests} must be apart from the datasets "
                         f"it trains on, {e['datasets']}, and some dataset must train")
    e["classes"] = task_classes({d: datasets[d] for d in e["datasets"] + tests}, e["task"])
    input_datasets(e)  # stops on an input that the frame choice cannot give, naming the experiment
    # What a clip must go through to look like the training crops: saved in every model.pt, so that
    # `mer predict` prepares a new clip the same way. `flow` for flow inputs alone, so a changed flow
    # setting reruns no other experiment.
    steps = ("landmarks", "apex", "crop") + (("flow",) if e["input"] == "flow" else ())
    e["preprocess"] = {k: cfg[k] for k in steps}


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


def experiment_of(run):
    """The experiment a run belongs to: NAME of NAME/seedS."""
    return run.split("/")[0]


def run_prefix(run):
    """What a run id adds to its experiment's name: 'seedS' of NAME/seedS, '' of NAME."""
    return run.partition("/")[2]


def alternatives(names):
    """A Snakemake wildcard regex matching exactly these names ((?!) matches nothing)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


class Plan:
    """What a validated config trains: its experiments and runs, each run's folds, and its fused groups.

    datasets: name -> entry (mer.datasets.catalog.configured); samples(dataset): the dataset's samples
    table (results/samples/DATASET.tsv), asked for only once folds are."""

    def __init__(self, cfg, datasets, samples):
        self.results = cfg["results"]
        self.experiments = make_experiments(cfg, datasets)
        self.runs = make_runs(self.experiments)
        self.seeded = [name for name, e in self.experiments.items() if e.get("seeds")]
        self.samples = samples

    def runs_of(self, name):
        """The run ids of experiment `name`, in order."""
        return [r for r in self.runs if experiment_of(r) == name]

    def fused(self, run):
        """Whether the run trains in fused groups (train_fold_group) rather than one fold a job."""
        return str(self.runs[run]["fold_group"]) != "1"

    def subjects(self, dataset):
        """A dataset's included subjects, each one's caches made."""
        s = self.samples(dataset)
        return sorted(s[s.included].subject.unique())

    def fold_ids(self, run):
        """The run's (or experiment's) folds: held-out subjects (fold_id) of its datasets with samples for
        its task, none for the others; cross-dataset, its test datasets."""
        e = self.experiments[experiment_of(run)]
        if e["test_datasets"]:
            return list(e["test_datasets"])
        return [fold_id(d, s) for d in e["datasets"] for s in task_subjects(self.samples(d), e["task"])]

    def fold_files(self, run, output):
        """The run's fold file `output` (a FOLD_OUTPUTS name) of every fold."""
        return [f"{self.results}/{run}/folds/{f}/{FOLD_OUTPUTS[output]}" for f in self.fold_ids(run)]

    def fold_targets(self, run):
        """Every file of every fold of the run, fold by fold."""
        return [f"{self.results}/{run}/folds/{f}/{file}" for f in self.fold_ids(run) for file in FOLD_FILES]

    def training_caches(self, run):
        """The per-subject caches a run (or a final model) trains on: flow caches for input flow, else crops."""
        e = self.experiments[experiment_of(run)]
        folder = "flow" if e["input"] == "flow" else "crops"
        return [f"{self.results}/{folder}/{d}/sub{s}.h5" for d in e["datasets"] + e["test_datasets"]
                for s in self.subjects(d)]

    def members(self, run):
        """A run's fold group members, one per fold (member_name)."""
        return [member_name(f, run_prefix(run)) for f in self.fold_ids(run)]

    def member_of(self, run, fold):
        """The run's `fold` as a group member."""
        return member_name(fold, run_prefix(run))

    def group_members(self, run, fold):
        """The members trained together with the run's `fold` (train.fold_group), over the experiment's runs."""
        name = experiment_of(run)
        everyone = [m for r in self.runs_of(name) for m in self.members(r)]
        return group_of(everyone, self.experiments[name]["fold_group"], self.member_of(run, fold))

    def member_dir(self, name, member):
        """The fold folder of a group member of experiment `name`."""
        prefix, fold = split_member(member)
        return f"{self.results}/{name}{'/' + prefix if prefix else ''}/folds/{fold}"

    def group_first_fold(self, run, fold):
        """The fold.json of the first member of the fold's group, which trains the group; None for the first."""
        first = self.group_members(run, fold)[0]
        if first == self.member_of(run, fold):
            return None
        return f"{self.member_dir(experiment_of(run), first)}/fold.json"

    def group_store(self, run, fold):
        """The store of the fold's group: under the experiment, named after the group's first member."""
        return f"{self.results}/{experiment_of(run)}/groups/{self.group_members(run, fold)[0]}"

    def group_config(self, run):
        """A fused group's config: the run's, or for an experiment with `seeds` the experiment's without
        them (its members carry their seeds)."""
        name = experiment_of(run)
        if run == name:
            return self.runs[run]
        return {k: v for k, v in self.experiments[name].items() if k != "seeds"}

    def final_config(self, name):
        """The final model's training config: the experiment's first run (its first seed)."""
        return self.runs[self.runs_of(name)[0]]

    def uses_flow(self, dataset):
        """Whether an experiment with input flow trains or tests on the dataset (its flow caches are made)."""
        return any(e["input"] == "flow" and dataset in e["datasets"] + e["test_datasets"]
                   for e in self.experiments.values())
