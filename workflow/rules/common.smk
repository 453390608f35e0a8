# Config validation, paths and input functions shared by every stage.
from pathlib import Path

import pandas as pd
from snakemake.utils import min_version, validate

min_version("9.0")


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


def code(*modules):
    """Library modules a rule runs, as inputs: editing one reruns the rule."""
    return [str(SRC / f"{m}.py") for m in modules]


def samples():
    """samples.tsv once the read_sheet checkpoint has run."""
    path = checkpoints.read_sheet.get().output.samples
    return pd.read_csv(path, sep="\t", dtype={"subject": str})


def subjects():
    s = samples()
    return sorted(s[s.included].subject.unique())


def subject_frames(wildcards):
    """Every frame of the subject's included clips: new frames rerun that subject alone. The demo's
    frames are one directory output of make_demo, so they are tracked through it instead."""
    if DEMO:
        return []
    s = samples()
    pattern = config["data"]["frame_pattern"]
    clips = s[(s.subject == wildcards.subject) & s.included]
    return [
        str(Path(FRAMES_ROOT) / pattern.format(subject=wildcards.subject, filename=r.filename, frame=f))
        for r in clips.itertuples()
        for f in range(int(r.onset), int(r.offset) + 1)
    ]


def per_subject(pattern):
    """An input function: `pattern` formatted for every included subject."""
    return lambda wildcards: [pattern.format(subject=s) for s in subjects()]


def all_targets(wildcards):
    return [f"{RES}/preprocessing/report.md"]
