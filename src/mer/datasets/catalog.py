"""Micro-expression datasets as configuration: where each one's clips, labels and frames are.

An entry (BUILTIN below; a user adds one in config) says:
- sheet: the coding sheet's file name below the root, or None for a dataset whose clips and classes come
  from its folders (`layout`, as SMIC-HS);
- frame_pattern: a frame's path below the root, with {subject}, {filename} and {frame} (format specs
  allowed: SAMM writes {frame:05d});
- layout: a sheet-less dataset's frame path, whose {emotion} folder is the clip's class; each clip runs
  from its first to its last frame, and its apex is spotted;
- subject_width: digits of a numeric subject id (CASME II '01', SAMM '006'); None keeps a text id as
  written (CAS(ME)^3 'spNO.1'); subject_regex: the form every id must then have;
- columns: the sheet's header names where they differ from CASME II's (ours -> theirs); header_row:
  'auto' finds the header below notes (SAMM: line 14);
- emotions: the sheet's emotion vocabulary (lower case); tasks: {task: {class: [emotions]}};
- apex_required: tasks that leave out a clip without a usable annotated apex (missing, or equal to
  onset), as the MEGC 2019 composite does for CASME II;
- clip_key: the columns that tell clips apart (CAS(ME)^3: subject, filename and onset);
- grayscale: frames are grey (SAMM);
- root, sheet (a path: default the entry's sheet below root) and bad_rows: where a workflow's copy is.
A sample's key is (dataset, subject, clip), so subject 01 of one dataset is never subject 01 of another.
"""

import hashlib
import re
from pathlib import Path

import pandas as pd

from mer.datasets.sheet import SheetError, finish_samples, normalise_subject, read_sheet, task_labels, unsafe_name

# The MEGC 2019 composite (CDE) classes, and each dataset's emotions in them (the shared README of
# composite_3class.csv: CASME II's others, sadness and fear and SAMM's Other are left out).
MEGC2019 = ["negative", "positive", "surprise"]
_CASME2_TASKS = {
    "5class": {"happiness": ["happiness"], "disgust": ["disgust"], "repression": ["repression"],
               "surprise": ["surprise"], "others": ["others"]},
    "3class": {"negative": ["disgust", "repression", "sadness", "fear"], "positive": ["happiness"],
               "surprise": ["surprise"]},
    "megc2019": {"negative": ["disgust", "repression"], "positive": ["happiness"], "surprise": ["surprise"]},
}
_CASME2 = dict(frame_pattern="sub{subject}/{filename}/img{frame}.jpg", subject_width=2, subject_regex=r"\d{2}",
               emotions=["happiness", "disgust", "repression", "surprise", "others", "sadness", "fear"],
               tasks=_CASME2_TASKS, apex_required=["megc2019"])
_SAMM_THREE = {"negative": ["anger", "contempt", "disgust", "fear", "sadness"], "positive": ["happiness"],
               "surprise": ["surprise"]}
_THREE = {"negative": ["negative"], "positive": ["positive"], "surprise": ["surprise"]}
_SMIC_LAYOUT = "s{subject}/micro/{emotion}/{filename}/image{frame}.bmp"  # its clip list and its frame paths

BUILTIN = {
    "casme2": dict(_CASME2, sheet="CASME2-coding-20140508.xlsx"),
    "casme2_2019": dict(_CASME2, sheet="CASME2-coding-20190701.xlsx"),
    "samm": dict(
        sheet="SAMM_Micro_FACS_Codes_v2.xlsx", frame_pattern="{subject}/{filename}/{subject}_{frame:05d}.jpg",
        subject_width=3, subject_regex=r"\d{3}", grayscale=True,
        emotions=["anger", "contempt", "disgust", "fear", "happiness", "other", "sadness", "surprise"],
        tasks={"3class": _SAMM_THREE, "megc2019": _SAMM_THREE}),
    "smic_hs": dict(
        sheet=None, layout=_SMIC_LAYOUT, frame_pattern=_SMIC_LAYOUT, subject_width=None,
        subject_regex=r"\d+", emotions=MEGC2019, tasks={"3class": _THREE, "megc2019": _THREE}),
    "casme3_a": dict(
        sheet="casme3_partA_labels.csv", frame_pattern="{subject}/{filename}/color/{frame}.jpg",
        subject_width=None, subject_regex=r"spNO\.\d+", columns={"action_units": "AU"},
        clip_key=["subject", "filename", "onset"],
        emotions=["anger", "disgust", "fear", "happy", "sad", "surprise", "others"],
        tasks={"3class": {"negative": ["anger", "disgust", "fear", "sad"], "positive": ["happy"],
                          "surprise": ["surprise"]}}),
}


def fold_id(dataset, subject):
    """A subject across datasets, as folds and predictions name it: 'casme2-01', 'samm-006', 'casme3_a-spNO.1'
    (dataset names have no '-', so the first one splits it)."""
    return f"{dataset}-{subject}"


def split_fold(fold):
    """(dataset, subject) of a fold_id; ('', fold) for an id without a dataset."""
    dataset, sep, subject = fold.partition("-")
    return (dataset, subject) if sep and DATASET_NAME.fullmatch(dataset) else ("", fold)


DATASET_NAME = re.compile(r"[a-z][a-z0-9_]*")  # a dataset's name in config, paths and fold ids


def entry(name, overrides=None):
    """A dataset entry: the built-in one of that name updated by `overrides` (a config's), or `overrides`
    alone for a dataset mer does not know."""
    if name not in BUILTIN and not overrides:
        raise KeyError(f"unknown dataset {name!r}: known {sorted(BUILTIN)}, or give its entry in config")
    e = {"root": "", "sheet": None, "layout": None, "frame_pattern": "sub{subject}/{filename}/img{frame}.jpg",
         "subject_width": 2, "subject_regex": None, "columns": {}, "header_row": "auto", "emotions": [],
         "tasks": {}, "apex_required": [], "clip_key": ["subject", "filename"], "grayscale": False,
         "bad_rows": "exclude"}
    return {**e, **BUILTIN.get(name, {}), **(overrides or {}), "name": name}


def read_clips(name, root=None, sheet=None, overrides=None):
    """Every clip of dataset `name` with its labels: read_sheet's columns (one row per sheet row or folder
    clip, bad ones kept with included=False and a reason) plus dataset and clip (the clip's key within its
    subject: the filename, or filename@onset where clips share a filename).

    sheet: the coding sheet (default: the entry's, below root); root: the frames root (a sheet-less
    dataset's clips are listed from it).
    """
    e = entry(name, overrides)
    if e["sheet"] is None and sheet is None:
        if root is None:
            raise ValueError(f"dataset {name}: clips come from its folders ({e['layout']}); give its root")
        clips = scan_layout(root, e)
    else:
        path = Path(sheet) if sheet else Path(root or ".") / e["sheet"]
        clips = read_sheet(path, tasks=e["tasks"], emotions=e["emotions"], subject_width=e["subject_width"],
                           subject_regex=e["subject_regex"], columns=e["columns"], clip_key=e["clip_key"],
                           header_row=e["header_row"])
    for task in e["apex_required"]:
        unusable = clips.apex.isna() | (clips.apex == clips.onset)
        clips.loc[unusable.fillna(True).astype(bool), f"label_{task}"] = ""
    by_onset = "onset" in e["clip_key"]
    clips.insert(0, "dataset", name)
    clips.insert(3, "clip", [f"{f}@{o}" if by_onset else f for f, o in zip(clips.filename, clips.onset, strict=True)])
    return clips


def configured(cfg, demo=None):
    """The workflow's datasets, name -> entry with `root` and `sheet` paths resolved (None: clips from
    folders): config `datasets` (each a built-in name with overrides, or a whole new entry); with none
    there, one dataset from `data` named by config `dataset` (its tasks and emotions config's).
    demo: the generated demo's folder, used instead: one CASME II-shaped dataset 'demo' (frames/ and
    coding.csv there), or with config demo.datasets each of those built-in datasets imitated in DEMO/NAME/."""
    one = {"frame_pattern": cfg["data"]["frame_pattern"], "subject_width": cfg["data"]["subject_width"],
           "bad_rows": cfg["data"]["bad_rows"], "tasks": cfg["tasks"], "emotions": cfg["emotions"],
           "columns": {}, "header_row": "auto", "apex_required": [], "subject_regex": None}
    if demo and cfg["demo"].get("datasets"):
        return {n: entry(n, {"root": f"{demo}/{n}/frames",
                             "sheet": f"{demo}/{n}/coding.csv" if BUILTIN[n]["sheet"] else None})
                for n in cfg["demo"]["datasets"]}
    if demo:
        return {"demo": entry("demo", {**one, "root": f"{demo}/frames", "sheet": f"{demo}/coding.csv"})}
    given = cfg.get("datasets") or {}
    if not given:
        return {cfg["dataset"]: entry(cfg["dataset"], {**one, "root": cfg["data"]["root"],
                                                       "sheet": cfg["data"]["sheet"]})}
    out = {}
    for name, overrides in given.items():
        if not DATASET_NAME.fullmatch(name):
            raise ValueError(f"config datasets: name {name!r} must be lower case letters, digits and _")
        if name not in BUILTIN and not {"frame_pattern", "tasks"} <= set(overrides):
            raise ValueError(f"config datasets.{name}: not a built-in dataset ({sorted(BUILTIN)}), so its entry "
                             "needs at least frame_pattern and tasks (and a sheet, or a layout)")
        e = entry(name, overrides)
        if not e["root"]:
            raise ValueError(f"config datasets.{name}.root is empty: point it at the dataset's frames")
        if e["sheet"] is not None and "sheet" not in overrides:
            e["sheet"] = str(Path(e["root"]) / e["sheet"])  # the built-in sheet's name, below the root
        out[name] = e
    return out


def task_classes(datasets, task):
    """The classes of `task` over these entries, in the first one's order; ValueError if they disagree or
    none has the task."""
    having = {n: list(e["tasks"][task]) for n, e in datasets.items() if task in e["tasks"]}
    if not having:
        raise ValueError(f"task {task!r} is defined by none of the datasets {sorted(datasets)}")
    first = next(iter(having.values()))
    for n, classes in having.items():
        if set(classes) != set(first):
            raise ValueError(f"task {task!r}: dataset {n} has classes {classes}, another {first}")
    return first


def write_dataset_samples(name, e, out):
    """The read_sheet stage of one dataset: its clips (read_clips), every frame checked, the bad-row policy
    applied, its samples TSV written (with columns dataset and clip)."""
    clips = read_clips(name, e["root"], e["sheet"], e)
    return finish_samples(clips, e["root"], e["frame_pattern"], out, tasks=e["tasks"], bad_rows=e["bad_rows"])


def _layout_glob(layout):
    """The glob of every frame a layout names: each {field} a *."""
    return re.sub(r"\{[a-z]+(:[^}]*)?\}", "*", layout)


def layout_fingerprint(root, layout):
    """SHA-256 of the sorted frame paths (below `root`) that a sheet-less dataset's `layout` matches: its
    clip list, standing in for a sheet (a new, removed or longer clip changes it)."""
    root = Path(root)
    paths = sorted(p.relative_to(root).as_posix() for p in root.glob(_layout_glob(layout)))
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def scan_layout(root, e):
    """The clips of a sheet-less dataset from its folders: `layout` with {subject}, {emotion}, {filename} and
    {frame}; a clip spans its first to last frame number, its class is its {emotion} folder, no apex."""
    root = Path(root)
    fields = re.escape(e["layout"])
    for f, rx in (("subject", r"[^/]+"), ("emotion", r"[^/]+"), ("filename", r"[^/]+"), ("frame", r"\d+")):
        fields = re.sub(r"\\\{" + f + r"(:[^}]*)?\\\}", lambda _, f=f, rx=rx: f"(?P<{f}>{rx})", fields)
    found = {}
    for path in root.glob(_layout_glob(e["layout"])):
        m = re.fullmatch(fields, path.relative_to(root).as_posix())
        if m:
            found.setdefault((m["subject"], m["emotion"], m["filename"]), []).append(int(m["frame"]))
    if not found:
        raise SheetError(f"no clip found under {root} with layout {e['layout']}")
    rows, seen = [], {}
    for (subject, emotion, filename), frames in sorted(found.items()):
        problems = [why for why in (unsafe_name(subject), unsafe_name(filename)) if why]
        if e["subject_regex"] and not re.fullmatch(e["subject_regex"], subject):
            problems.append(f"subject {subject!r} is not of the form {e['subject_regex']}")
        if emotion.lower() not in e["emotions"]:
            problems.append(f"class folder {emotion!r} is not one of {e['emotions']}")
        if (subject, filename) in seen:
            problems.append(f"clip also under class folder {seen[subject, filename]!r}")
        seen.setdefault((subject, filename), emotion)
        frames = sorted(frames)
        if frames != list(range(frames[0], frames[-1] + 1)):
            problems.append(f"frames {frames[0]}..{frames[-1]} have gaps ({len(frames)} files)")
        rows.append(dict(subject=subject, filename=filename, onset=frames[0], apex=None, offset=frames[-1],
                         apex_missing=True, emotion=emotion, action_units="",  # as the folder: in frame paths
                         **{f"label_{t}": lab for t, lab in task_labels(emotion.lower(), e["tasks"]).items()},
                         included=not problems,
                         reason="; ".join(f"{e['name']} {subject}/{emotion}/{filename}: {p}" for p in problems),
                         note=""))
    out = pd.DataFrame(rows)
    if e["subject_width"]:
        out["subject"] = [normalise_subject(s, e["subject_width"]) for s in out.subject]
    for col in ("onset", "apex", "offset"):
        out[col] = out[col].astype("Int64")
    return out


def megc2019_name(dataset, subject, filename):
    """A clip as composite_3class.csv names it: (dataset, sub, filename): casme2 'sub01', samm '006', and
    SMIC's subject and filename with a two-digit number ('s01', 's01_ne_01' for folder s1_ne_01)."""
    if dataset.startswith("casme2"):
        return "casme2", f"sub{subject}", filename
    if dataset.startswith("smic"):
        number = int(subject)
        return "smic", f"s{number:02d}", re.sub(r"^s\d+_", f"s{number:02d}_", filename)
    return dataset, subject, filename


def megc2019_clips(tables):
    """The composite's clips from each dataset's read_clips table: dataset, sub, filename_o and label
    (0 negative, 1 positive, 2 surprise), composite_3class.csv's columns and names."""
    rows = []
    for clips in tables:
        keep = clips[clips.included & clips.label_megc2019.fillna("").ne("")]
        for r in keep.itertuples():
            dataset, sub, filename = megc2019_name(r.dataset, r.subject, r.filename)
            rows.append(dict(dataset=dataset, sub=sub, filename_o=filename, label=MEGC2019.index(r.label_megc2019)))
    return pd.DataFrame(rows)
