"""Read a CASME II-style coding sheet (.xlsx or .csv) into one validated row per sample.

Handles the quirks of the released sheets: unnamed spacer columns, subject ids as text ('01') or
numbers (1), apex cells that are '/' or empty, irregular filenames, apex equal to onset or offset.
"""

import csv
import io
import re
from pathlib import Path

import pandas as pd

from mer.datasets.frames import check_clip_frames

# Normalised header (lower case, letters and digits only) -> our column name.
HEADER_ALIASES = {
    "subject": "subject",
    "sub": "subject",
    "filename": "filename",
    "onsetframe": "onset",
    "onset": "onset",
    "apexframe": "apex",
    "apex": "apex",
    "apexframe1": "apex",
    "offsetframe": "offset",
    "offset": "offset",
    "estimatedemotion": "emotion",
    "emotion": "emotion",
    "actionunits": "action_units",
}
REQUIRED = ["subject", "filename", "onset", "offset", "emotion"]
# Original header names, so that messages speak the sheet's language.
SHEET_NAMES = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "OnsetFrame",
    "apex": "ApexFrame",
    "offset": "OffsetFrame",
    "emotion": "Estimated Emotion",
}
COLUMNS = ["subject", "filename", "onset", "apex", "offset", "emotion", "action_units"]


class SheetError(ValueError):
    """The coding sheet cannot be used; the message names the file, row and column."""


def _norm_header(name):
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _read_cells(path):
    """Every line of the sheet as a row of text cells: no header, blank lines kept (row i is line i + 1)."""
    if path.suffix.lower() in (".xlsx", ".xls"):
        return pd.read_excel(path, dtype=str, header=None)
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        raise SheetError(f"{path}: unsupported coding sheet type {path.suffix!r} (use .xlsx or .csv)")
    text = path.read_text(encoding="utf-8-sig")
    try:
        sep = csv.Sniffer().sniff(text[:8192], delimiters=",;\t").delimiter
    except csv.Error:  # too little text to tell: a comma
        sep = ","
    # notes above a header may have fewer fields than the table: every row as wide as the widest
    width = max((len(r) for r in csv.reader(io.StringIO(text), delimiter=sep)), default=1)
    return pd.read_csv(io.StringIO(text), dtype=str, sep=sep, header=None, names=range(width),
                       skip_blank_lines=False)


def find_header(cells, aliases, scan=30):
    """Index of the first of the sheet's first `scan` lines (rows of _read_cells) that names every REQUIRED
    column, or None. SAMM's sheet has 13 lines of notes above its header."""
    for i in range(min(scan, len(cells))):
        names = {aliases.get(_norm_header(v)) for v in cells.iloc[i] if cell_text(v)}
        if all(c in names for c in REQUIRED):
            return i
    return None


def load_raw(path, columns=None, header_row="auto"):
    """The sheet as strings, spacer columns dropped and headers renamed to our names; the index is each
    row's line number in the sheet.

    columns: {our name: the sheet's header} where a dataset's names differ from HEADER_ALIASES'
    (SMIC-HS-E's OnsetF, say). header_row: the 0-based line of the header, or 'auto': the first line that
    names every required column (find_header).
    """
    path = Path(path)
    if not path.exists():
        raise SheetError(f"coding sheet not found: {path}")
    aliases = HEADER_ALIASES | {_norm_header(theirs): ours for ours, theirs in (columns or {}).items()}
    try:
        cells = _read_cells(path)
    except SheetError:
        raise
    except Exception as e:  # a corrupt xlsx or unparsable csv
        raise SheetError(f"{path}: cannot read coding sheet: {e}") from e
    hint = ""
    if header_row == "auto":
        header_row = find_header(cells, aliases)
        if header_row is None:
            header_row, hint = 0, " (no line among the first 30 names them all)"
    header = [cell_text(v) for v in cells.iloc[int(header_row)]] if len(cells) else []
    picked, seen = {}, {}  # position -> our name; our name -> the sheet's header
    for pos, name in enumerate(header):
        key = aliases.get(_norm_header(name))
        if key is None:
            continue  # spacer (blank) or an extra column we do not use
        if key in seen:
            raise SheetError(f"{path}: columns {seen[key]!r} and {name!r} both look like {key!r}")
        seen[key], picked[pos] = name, key
    missing = [SHEET_NAMES.get(c, c) for c in REQUIRED if c not in seen]
    if missing:
        raise SheetError(f"{path}: coding sheet lacks column(s) {missing}; found {header} on line "
                         f"{int(header_row) + 1}{hint}")
    df = cells.iloc[int(header_row) + 1:, list(picked)].copy()
    df.columns = list(picked.values())
    df.index = df.index + 1  # the sheet's own 1-based line numbers
    df = df.reindex(columns=COLUMNS)  # a column the sheet lacks (apex, action units) is empty
    # Drop rows that are entirely empty (trailing lines of spreadsheets).
    df = df[~df.apply(lambda r: all(cell_text(v) == "" for v in r), axis=1)]
    return df


APEX_MISSING = ("/", "-", "?")  # what released sheets write where a clip has no apex


def cell_text(v):
    """A sheet cell as stripped text; '' for an empty one (None, NaN, 'nan')."""
    s = "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v).strip()
    return "" if s in ("nan", "None") else s


def int_cell(v):
    """A frame or subject number cell ('46', 46, '46.0') as int; ValueError otherwise."""
    s = str(v).strip()
    if re.fullmatch(r"\d+(\.0+)?", s):
        return int(float(s))
    raise ValueError(s)


def normalise_subject(v, width=2):
    """'01', 1, '1.0' and 'sub01' all become '01'."""
    s = str(v).strip().lower()
    s = s[3:] if s.startswith("sub") else s
    return f"{int_cell(s):0{width}d}"


def unsafe_name(text):
    """Why a Subject or Filename cell cannot name a folder below the data root, or None. These cells are
    joined into frame paths: a separator or `..` could read another subject's frames (leakage) or leave
    the root, and a control character hides what the path is."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return f"{text!r} holds a control character"
    if "/" in text or "\\" in text:
        return f"{text!r} holds a path separator (or is an absolute path)"
    if ".." in text:
        return f"{text!r} holds '..'"
    return None


def task_labels(emotion, tasks):
    """{task: class or ''} for one emotion; tasks maps task -> {class: [emotions]}."""
    out = {}
    for task, classes in tasks.items():
        out[task] = next((c for c, emos in classes.items() if emotion in emos), "")
    return out


def read_sheet(path, *, tasks, emotions=None, subject_width=2, subject_regex=None, columns=None,
               clip_key=("subject", "filename"), header_row="auto"):
    """Parse and check every row. Returns a DataFrame with one row per sheet row.

    Columns: subject, filename, onset, apex, offset, apex_missing, emotion, action_units,
    label_<task> for each task, included, reason. A bad row has included=False and a reason that
    names subject, filename and column.
    subject_width: digits of a numeric subject id ('01'); None: the id is text kept as written
    (CAS(ME)^3's 'spNO.1'). subject_regex: the form every id must have (checked after padding).
    columns, header_row: as load_raw. clip_key: the columns that tell two clips apart; a repeated key is
    a duplicate row (CAS(ME)^3 needs onset in it: several clips share one subject and filename).
    """
    path = Path(path)
    df = load_raw(path, columns, header_row)
    known = set(emotions or []) | {e for classes in tasks.values() for emos in classes.values() for e in emos}
    rows, seen = [], {}
    for line, r in df.iterrows():  # the index is the sheet's line number (load_raw)
        problems = []
        subject = cell_text(r.subject)
        if why := unsafe_name(subject):
            problems.append(f"column Subject: {why}")
            subject = repr(subject)  # as the reason prints it
        elif subject_width is None:
            if subject_regex and not re.fullmatch(subject_regex, subject):
                problems.append(f"column Subject: {subject!r} is not a subject id of the form {subject_regex}")
        else:
            try:
                subject = normalise_subject(r.subject, subject_width)
                if subject_regex and not re.fullmatch(subject_regex, subject):
                    problems.append(f"column Subject: {r.subject!r} is not a subject id of the form {subject_regex}")
            except ValueError:
                problems.append(f"column Subject: {r.subject!r} is not a subject number")
        filename = cell_text(r.filename)
        if not filename:
            problems.append("column Filename: empty")
        elif why := unsafe_name(filename):
            problems.append(f"column Filename: {why}")
            filename = repr(filename)  # never a path, and printable in the reason
        frames = {}
        for col in ("onset", "offset"):
            try:
                frames[col] = int_cell(r[col])
            except ValueError:
                problems.append(f"column {SHEET_NAMES[col]}: {r[col]!r} is not a frame number")
        apex_missing = cell_text(r.apex) in ("", *APEX_MISSING)
        apex, note = None, ""
        if not apex_missing:
            try:
                apex = int_cell(r.apex)
            except ValueError:
                problems.append(f"column ApexFrame: {r.apex!r} is not a frame number or '/'")
        if len(frames) == 2:
            if frames["onset"] > frames["offset"]:
                problems.append(f"column OnsetFrame/OffsetFrame: onset {frames['onset']} > offset {frames['offset']}")
            elif apex is not None and not frames["onset"] <= apex <= frames["offset"]:
                # SAMM (2 rows) and CAS(ME)^3 (1) have such cells; the MEGC 2019 composite keeps the clips
                note = f"ApexFrame {apex} outside onset..offset {frames['onset']}..{frames['offset']}: apex spotted"
                apex, apex_missing = None, True
        emotion = cell_text(r.emotion).lower()
        if emotion not in known:
            problems.append(f"column Estimated Emotion: unknown label {r.emotion!r} (known: {sorted(known)})")
        key = tuple({"subject": subject, "filename": filename, **frames}.get(c) for c in clip_key)
        if key in seen and filename:
            problems.append(f"column Filename: duplicate of sheet line {seen[key]}")
        seen.setdefault(key, line)
        row = {
            "subject": subject,
            "filename": filename,
            "onset": frames.get("onset"),
            "apex": apex,
            "offset": frames.get("offset"),
            "apex_missing": apex_missing,
            "emotion": emotion,
            "action_units": cell_text(r.action_units),
            **{f"label_{t}": lab for t, lab in task_labels(emotion, tasks).items()},
            "included": not problems,
            "reason": "; ".join(f"{path.name} line {line} sub{subject} {filename}: {p}" for p in problems),
            "note": note and f"{path.name} line {line} sub{subject} {filename}: {note}",
        }
        rows.append(row)
    out = pd.DataFrame(rows)
    for col in ("onset", "apex", "offset"):
        out[col] = out[col].astype("Int64")
    return out


def check_frames(samples, root, pattern):
    """Mark rows with a frame onset..offset missing, empty or truncated (check_frame) as excluded."""
    samples = samples.copy()
    todo = samples.index[samples.included]
    results = check_clip_frames(
        [(samples.at[i, "subject"], samples.at[i, "filename"], int(samples.at[i, "onset"]),
          int(samples.at[i, "offset"]), str(samples.at[i, "emotion"])) for i in todo],
        root, pattern,
    )
    for i, problem in zip(todo, results, strict=True):
        if problem:
            samples.at[i, "included"] = False
            samples.at[i, "reason"] = f"sub{samples.at[i, 'subject']} {samples.at[i, 'filename']}: {problem}"
    return samples


def apply_policy(samples, policy):
    """policy 'fail' raises on any excluded row (listing them all); 'exclude' keeps them recorded."""
    bad = samples[~samples.included]
    if policy == "fail" and len(bad):
        listing = "\n  ".join(bad.reason.tolist()[:50])
        raise SheetError(f"{len(bad)} bad row(s) in the coding sheet (bad_rows: fail):\n  {listing}")
    return samples


def write_samples(sheet, root, pattern, out, *, tasks, emotions=None, bad_rows="exclude",
                  subject_width=2):
    """The read_sheet stage of a CASME II-style sheet: parse, then finish_samples."""
    samples = read_sheet(sheet, tasks=tasks, emotions=emotions, subject_width=subject_width)
    return finish_samples(samples, root, pattern, out, tasks=tasks, bad_rows=bad_rows)


def finish_samples(samples, root, pattern, out, *, tasks, bad_rows="exclude"):
    """Check every frame of the parsed clips, apply the bad-row policy, write samples.tsv."""
    from mer.io import write_tsv

    samples = check_frames(samples, root, pattern)
    apply_policy(samples, bad_rows)  # raises before anything is written under 'fail'
    write_tsv(samples, out)
    for reason in samples.reason[~samples.included]:
        print(f"EXCLUDED: {reason}")
    inc = samples[samples.included]
    counts = {t: int(inc[f"label_{t}"].fillna("").ne("").sum()) for t in tasks}
    print(f"{len(samples)} rows, {len(inc)} included, {inc.subject.nunique()} subjects; per task: {counts}")
    return samples


def task_subjects(samples, task):
    """Subjects with at least one included sample labelled for `task`: one LOSO fold each."""
    labelled = samples.included & samples[f"label_{task}"].fillna("").ne("")
    return sorted(samples[labelled].subject.unique())
