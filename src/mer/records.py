"""Benchmark records: one JSON file per run of a benchmark, saying what was measured, on what and with what.

A record holds `benchmark` (its name), `command` (the argv that ran it), `figures` (a dict of figures, or a
list of such dicts: one per table row), the machine (`machine`, a description without the host's name;
`cpu_model`, `cores`, `memory_gb`, `gpu`: the GPU's name or null), `versions` (python, torch, timm, numpy,
...), `date` (ISO 8601: a date, or the date and time in UTC) and `commit` (the checkout's short hash,
`-dirty` appended where tracked files differ from it; null outside git), and optionally `note` (what was
run, in words). Null stands for what is not known. docs/records/ holds the repository's records, and
`mer docs` renders them into docs/benchmarks.md.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: src/mer/records.py -> .
RECORDS = ROOT / "docs" / "records"
REQUIRED = ("benchmark", "command", "figures", "machine", "cpu_model", "cores", "memory_gb", "gpu", "versions",
            "date", "commit")
# versions key -> distribution name
PACKAGES = {"torch": "torch", "timm": "timm", "numpy": "numpy", "opencv": "opencv-contrib-python-headless",
            "dlib": "dlib-bin", "snakemake": "snakemake", "mer": "mer"}


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), else platform.processor(), else None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def gpu_name():
    """The first CUDA GPU's name, or None: torch's answer where torch is imported already, else nvidia-smi's."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    names = out.stdout.strip().splitlines() if out.returncode == 0 else []
    return names[0].strip() if names else None


def commit():
    """The checkout's short commit hash, with '-dirty' where tracked files changed; None outside git."""
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "--short=7", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def versions():
    """Python's and the main packages' versions (None for a package that is not installed)."""
    found = {"python": platform.python_version()}
    for key, dist in PACKAGES.items():
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[key] = None
    return found


def machine():
    """This machine's fields of a record; `machine` describes it without its host name."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        memory_gb = None
    gpu = gpu_name()
    words = [f"{platform.system()} {platform.machine()}", f"{cores} CPU cores"]
    words += [f"{memory_gb:g} GB memory"] if memory_gb else []
    words += [gpu or "no GPU"]
    return {"machine": ", ".join(words), "cpu_model": cpu_model(), "cores": cores, "memory_gb": memory_gb,
            "gpu": gpu}


def record_name(record):
    """<benchmark>-<date>-<commit>.json, 'none' for an unknown date or commit."""
    date = (record.get("date") or "none")[:10]
    return f"{record['benchmark']}-{date}-{record.get('commit') or 'none'}.json"


def write_record(benchmark, command, figures, folders, note=None):
    """Write this run's record into each of `folders` (created if needed) as <benchmark>-<date>-<commit>.json,
    with -2, -3, ... before .json where that name is taken; returns the paths written."""
    now = datetime.datetime.now(datetime.UTC)
    record = {"benchmark": benchmark, "command": [str(a) for a in command], "figures": _clean(figures), **machine(),
              "versions": versions(), "date": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
              "commit": commit()}
    if note:
        record["note"] = note
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    paths = []
    for folder in folders:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stem = record_name(record).removesuffix(".json")
        path, k = folder / f"{stem}.json", 1
        while path.exists():
            k += 1
            path = folder / f"{stem}-{k}.json"
        path.write_text(text)
        paths.append(path)
    return paths


def _clean(value):
    """Figures as JSON values: numpy scalars as Python ones, NaN as null, paths as text."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def load_records(folder=RECORDS):
    """Every record in `folder` (*.json), each with its file name under '_file'."""
    return [{**json.loads(p.read_text()), "_file": p.name} for p in sorted(Path(folder).glob("*.json"))]
