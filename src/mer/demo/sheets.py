"""The demo's coding sheets and layouts: generated, mirrored and composite rows, written in CASME II's, SAMM's
or SMIC-HS's own format, so that the real readers are what read them (mer.demo)."""

import csv
import re
from pathlib import Path

from mer.datasets.catalog import BUILTIN, MEGC2019
from mer.datasets.sheet import APEX_MISSING, cell_text, int_cell, load_raw, normalise_subject
from mer.demo.render import stream
from mer.io import atomic_path

HEADER = ["Subject", "Filename", "", "OnsetFrame", "ApexFrame", "OffsetFrame", "", "Action Units",
          "Estimated Emotion"]
CLASSES = ["happiness", "disgust", "repression", "surprise", "others"]
# The datasets the demo can imitate: frame pattern (mer.datasets.catalog) and the emotions drawn. SAMM's and
# SMIC's cover the composite's 3 classes (SAMM's 'other' is left out of it, as CASME II's 'others').
LAYOUTS = {
    "casme2": dict(classes=CLASSES),
    "samm": dict(classes=["anger", "happiness", "surprise", "contempt", "other"]),
    "smic_hs": dict(classes=MEGC2019),
}
SAMM_FIRST_FRAME = 4000  # SAMM's frame numbers are indices in a long recording: the generated ones start here
SAMM_NOTES = 13  # lines of notes above SAMM's header (its sheet's header is on line 14)
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
               "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
SMIC_ABBREV = {"negative": "ne", "positive": "po", "surprise": "sur"}


def generated_rows(subjects, clips_per_subject, seed, layout="casme2"):
    """Sheet rows (dicts) of a generated dataset: emotions cycle through the layout's classes, shuffled per
    subject; ids, names and frame numbers in the layout's style."""
    rows, classes = [], LAYOUTS[layout]["classes"]
    for subj in range(1, subjects + 1):
        rng = stream(seed, subj, 0)
        emotions = [classes[i % len(classes)] for i in range(clips_per_subject)]
        emotions = [emotions[i] for i in rng.permutation(clips_per_subject)]
        for k, emotion in enumerate(emotions):
            onset, apex, offset = _draw_span(rng)
            suffix = "f" if rng.random() < 0.4 else ""
            row = {"subject_num": subj, "subject": f"{subj:02d}", "k": k,
                   "filename": f"EP{k + 1:02d}_{int(rng.integers(1, 12)):02d}{suffix}",
                   "onset": onset, "apex": apex, "offset": offset, "apex_text": str(apex),
                   "emotion": emotion, "au_text": None}
            rows.append(_in_layout(row, layout))
    return rows


def _draw_span(rng):
    """A clip's (onset, apex, offset): 24..40 frames from frame 1..60, the apex 35..65% of the way."""
    span = int(rng.integers(24, 41))  # frames, offset - onset + 1
    onset = int(rng.integers(1, 61))
    return onset, onset + int(round(rng.uniform(0.35, 0.65) * (span - 1))), onset + span - 1


def _samm_shift(k):
    """Frames added to a generated clip's numbers in SAMM's layout: indices in a long recording."""
    return SAMM_FIRST_FRAME + 200 * k


def _in_layout(row, layout):
    """A generated CASME II-style row renamed as `layout` writes its clips (same faces, frames, motion)."""
    subj, k = row["subject_num"], row["k"]
    if layout == "samm":
        shift = _samm_shift(k)
        row = {**row, "subject": f"{subj + 5:03d}", "onset": row["onset"] + shift, "apex": row["apex"] + shift,
               "offset": row["offset"] + shift, "apex_text": str(row["apex"] + shift)}
        row["filename"] = f"{row['subject']}_{k + 1}_{1 + k % 3}"
    elif layout == "smic_hs":
        row = {**row, "subject": str(subj), "filename": f"s{subj}_{SMIC_ABBREV[row['emotion']]}_{k + 1:02d}",
               "apex_text": ""}
    return row


def _frame_number(value, what):
    try:
        return int_cell(value)
    except ValueError:
        raise ValueError(f"{what}: {cell_text(value)!r} is not a frame number") from None


def mirrored_rows(sheet, layout="casme2"):
    """Sheet rows (dicts) copying a coding sheet (CASME II's, or SAMM's for layout samm): subjects,
    filenames, frames, emotions, AU text. A missing apex ('/' or blank) is rendered mid-span and written as '/'."""
    rows, count = [], {}
    width = BUILTIN[layout]["subject_width"] or 2
    for i, r in load_raw(sheet).iterrows():
        where = f"{sheet} line {i}"  # load_raw indexes rows by sheet line
        subject = normalise_subject(r.subject, width)
        onset = _frame_number(r.onset, f"{where} OnsetFrame")
        offset = _frame_number(r.offset, f"{where} OffsetFrame")
        if cell_text(r.apex) in ("", *APEX_MISSING):
            apex, apex_text = (onset + offset) // 2, "/"
        else:
            apex = _frame_number(r.apex, f"{where} ApexFrame")
            apex_text = str(apex)
        if offset < onset:
            raise ValueError(f"{where}: need onset <= offset, got {onset}, {offset}")
        # an annotated apex outside the clip (2 of SAMM's rows) is written as the sheet has it; the motion
        # peaks at the nearest frame of the clip
        apex = min(max(apex, onset), offset)
        subj = int(subject)
        k = count.get(subj, 0)  # the clip's index within its subject: picks its RNG
        count[subj] = k + 1
        rows.append({"subject_num": subj, "subject": subject, "k": k, "filename": cell_text(r.filename),
                     "onset": onset, "apex": apex, "offset": offset, "apex_text": apex_text,
                     "emotion": cell_text(r.emotion).lower() if layout == "samm" else cell_text(r.emotion),
                     "au_text": cell_text(r.action_units)})
    return rows


COMPOSITE_EMOTIONS = {  # a composite class (0 negative, 1 positive, 2 surprise) as each dataset's sheet says it
    "casme2": ["disgust", "happiness", "surprise"],
    "samm": ["anger", "happiness", "surprise"],
    "smic_hs": MEGC2019,
}


def is_composite(path):
    """Whether `path` is the MEGC 2019 composite list (composite_3class.csv's columns)."""
    if Path(path).suffix.lower() != ".csv":
        return False
    with open(path, newline="", errors="replace") as fh:
        return fh.readline().strip().split(",")[:4] == ["dataset", "sub", "filename_o", "label"]


def composite_rows(path, layout, seed):
    """Rows of the layout's dataset in the MEGC 2019 composite list (composite_3class.csv), named as its own
    folders and sheet name them (mer.datasets.catalog.megc2019_name reads them back); frames drawn as a
    generated demo's."""
    import pandas as pd

    listed = pd.read_csv(path, dtype=str)
    mine = listed[listed.dataset == ("smic" if layout == "smic_hs" else layout)]
    if mine.empty:
        raise ValueError(f"{path}: no clip of dataset {layout} in the composite list")
    rows, count = [], {}
    for r in mine.itertuples():
        number = int(r.sub.removeprefix("sub").removeprefix("s"))
        k = count.get(number, 0)
        count[number] = k + 1
        onset, apex, offset = _draw_span(stream(seed, number, 5, k))
        emotion = COMPOSITE_EMOTIONS[layout][int(r.label)]
        if layout == "casme2":
            subject, filename = f"{number:02d}", r.filename_o
        elif layout == "samm":
            subject, filename = r.sub, r.filename_o
            onset, apex, offset = (f + _samm_shift(k) for f in (onset, apex, offset))
        else:  # SMIC's folders: s1/.../s1_ne_01 for the list's s01_ne_01
            subject, filename = str(number), re.sub(r"^s0*(\d+)_", r"s\1_", r.filename_o)
        rows.append({"subject_num": number, "subject": subject, "k": k, "filename": filename, "onset": onset,
                     "apex": apex, "offset": offset, "apex_text": "" if layout == "smic_hs" else str(apex),
                     "emotion": emotion, "au_text": None})
    return rows


def shuffled_labels(rows, seed):
    """Permute (emotion, AU text) within each subject; frames keep the motion of the true emotion."""
    out = [dict(r) for r in rows]
    for subj in sorted({r["subject_num"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["subject_num"] == subj]
        perm = stream(seed, subj, 3).permutation(len(idx))
        for i, j in zip(idx, perm, strict=True):
            out[i]["emotion"], out[i]["au_text"] = rows[idx[j]]["emotion"], rows[idx[j]]["au_text"]
    return out


def write_sheet(rows, path, layout="casme2"):
    """The coding sheet with CASME II's header (two blank spacer columns), or SAMM's (notes above it, its
    columns, emotions capitalised), or for SMIC's layout the list of clips drawn (the workflow reads SMIC's
    folders, not this); written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        if layout == "samm":
            w.writerow(["Generated SAMM-shaped demo (mer demo): no real data."] + [""] * (len(SAMM_HEADER) - 1))
            for _ in range(SAMM_NOTES - 1):
                w.writerow([""] * len(SAMM_HEADER))
            w.writerow(SAMM_HEADER)
            for r in rows:
                w.writerow([r["subject"], r["filename"], 1, r["onset"], r["apex_text"], r["offset"],
                            r["offset"] - r["onset"] + 1, "Micro - 1/2", r["au_text"], r["emotion"].capitalize(),
                            "", ""])
            return Path(path)
        if layout == "smic_hs":
            w.writerow(["Subject", "Filename", "OnsetF", "OffsetF", "Emotion"])
            for r in rows:
                w.writerow([r["subject"], r["filename"], r["onset"], r["offset"], r["emotion"]])
            return Path(path)
        w.writerow(HEADER)
        for r in rows:
            w.writerow([r["subject"], r["filename"], "", r["onset"], r["apex_text"], r["offset"], "",
                        r["au_text"], r["emotion"]])
    return Path(path)

