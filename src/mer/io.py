"""Atomic file output: a killed job never leaves a file that looks complete."""

import contextlib
import csv
import glob
import json
import os
import sys
import tempfile
from pathlib import Path


def _umask():
    """The process's umask (os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A temp file of an earlier writer of `path` that was killed (SIGKILL runs no cleanup) is removed first:
    one job writes an output at a time, and a checkpoint's leftover is a fold's whole size."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.????????.part"):  # mkstemp: 8 random characters
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file 0600; give it the mode a plain open() would (0666 less the umask), so that
        # results on a shared filesystem stay readable by the group, as the user's umask says.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)  # atomic on POSIX within one filesystem
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_tsv(df, path):
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)


# The per-subject preprocessing jobs read and write their TSVs with the csv module, not pandas: importing pandas
# in every job was a large share of the preprocessing's CPU (docs/benchmarks.md, component-costs).
def read_rows(path):
    """The rows of a TSV as dicts of strings ('' where pandas would read a missing value)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _cell(value):
    """A value as pandas' to_csv writes it: None and NaN empty, else str() (numpy scalars included)."""
    return "" if value is None or value != value else str(value)  # NaN is the one value unequal to itself


def write_rows(rows, columns, path):
    """`rows` (dicts; a missing key is written empty) as a TSV with these columns, as write_tsv writes a table."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        out = csv.writer(f, delimiter="\t", lineterminator="\n")
        out.writerow(columns)
        out.writerows([_cell(r.get(c)) for c in columns] for r in rows)


def write_csv(df, path, index=False):
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=index)


def write_json(obj, path):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_text(text, path):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def log_to(path):
    """Send this process's prints and warnings (stdout and stderr) to the job's log file, line-buffered."""
    import sys

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout = sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job


def log(msg):
    """A line on stderr (the job's log under Snakemake: log_to)."""
    print(msg, file=sys.stderr, flush=True)
