"""Fused fold groups in the workflow: the group's store, training a group, placing a fold's files.

Snakemake runs one `train_fold_group` job per fold, writing the same files as `train_fold` (FOLD_FILES). The first
job of a group trains every fold of the group in one process (mer.train.fused) and keeps their files in the
group's store, RESULTS/EXPERIMENT/groups/FIRST_SUBJECT/, under a key of its inputs (config, members,
crop caches, code); every job then places its own fold's files from the store by hard link (no copy).
The group's other jobs run after the first (they depend on its fold.json) and find the store ready, so
deleting one fold's output reruns that job alone, which re-places the stored files without training;
deleting the store as well retrains the group.

fold_group: 1 (train_fold, each fold alone), K >= 2 (groups of K consecutive folds), 'all' (one group),
or 'auto': one group per experiment in the DAG, trained at run time in fused chunks sized to the free
GPU memory (halved on an out-of-memory error), or on the CPU fused where that measured faster (small
inputs: batch x size^2 up to CPU_FUSE_MAX_PIXELS) and else one fold after another in the group's process.
Which folds form a group: partition (each experiment's members in fold order, mer.config.Plan).
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from mer.io import atomic_path, write_json
from mer.train.data import AUDIT_FILE

# A fold's files, by the names the training rules give their outputs; fold.json last: it marks a fold done.
FOLD_OUTPUTS = {"model": "model.pt", "metrics": "metrics.csv", "predictions": "predictions.tsv",
                "audit": AUDIT_FILE, "info": "fold.json"}
FOLD_FILES = tuple(FOLD_OUTPUTS.values())


def member_name(fold, prefix=""):
    """A fold group member: FOLD, or 'seedS/FOLD' for a fold of run NAME/seedS (prefix 'seedS')."""
    return f"{prefix}/{fold}" if prefix else str(fold)


def split_member(member):
    """(run prefix, fold) of a group member (member_name's inverse): ('', FOLD) or ('seedS', FOLD)."""
    prefix, _, fold = str(member).rpartition("/")
    if prefix and not re.fullmatch(r"seed-?\d+", prefix):
        raise ValueError(f"fold group member {member!r} is neither SUBJECT nor seedS/SUBJECT")
    return prefix, fold


def member_fold(member, cfg):
    """(held-out fold, training config) of a group member: 'FOLD' trains with cfg's seed, 'seedS/FOLD'
    with seed S. The member is also the fold's folder in the group's store."""
    prefix, fold = split_member(member)
    return fold, ({**cfg, "seed": int(prefix.removeprefix("seed"))} if prefix else cfg)


def chunks(items, size):
    """Consecutive runs of `size` items (the last may be shorter)."""
    items = list(items)
    return [items[i: i + size] for i in range(0, len(items), size)]


def partition(members, fold_group):
    """The fold groups of an experiment: lists of consecutive members (in fold order)."""
    members = list(members)
    if fold_group in ("all", "auto"):
        return [members] if members else []
    k = int(fold_group)
    if k < 1:
        raise ValueError(f"fold_group must be >= 1, 'all' or 'auto', not {fold_group!r}")
    return chunks(members, k)


def group_of(members, fold_group, member):
    """The group holding `member`."""
    for g in partition(members, fold_group):
        if str(member) in g:
            return g
    raise ValueError(f"subject {member!r} has no fold among {list(members)}")


def input_key(cfg, members, paths):
    """SHA-256 of what a group's result depends on: the experiment config, its members, and the content
    of every input file (crop caches and library code)."""
    h = hashlib.sha256(json.dumps({"config": cfg, "members": list(members)}, sort_keys=True,
                                  default=str).encode())
    for p in sorted(str(p) for p in paths):
        h.update(Path(p).name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def run_member(cache_paths, member, members, cfg, store, out_dir, key, device="cpu", threads=None):
    """Place `member`'s fold files in out_dir from the group's store, training the group first if the
    store holds no complete result for `key`. Returns 'placed' or 'trained'."""
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    with _locked(store / ".lock"):
        done = _complete(store, key)
        if not done:
            train_group(cache_paths, members, cfg, store, key, device=device, threads=threads)
        place_fold(store / str(member), out_dir)
    return "placed" if done else "trained"


def train_group(cache_paths, members, cfg, store, key, device="cpu", threads=None, progress=True):
    """Train the group's folds into store/SUBJECT/, resuming a killed run of the same key."""
    import torch

    from mer.io import log
    from mer.train.loop import train_fold, train_fused

    store, members = Path(store), [str(m) for m in members]
    meta_path = store / "group.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("key") != key:  # another config or other inputs: nothing in the store is of use
        for p in store.iterdir():
            if p.name != ".lock":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        meta = {}
    setting = cfg.get("fold_group", 1)
    size = meta.get("size") or group_size(setting, len(members), cfg, torch.device(device))
    while True:
        write_json(dict(key=key, members=members, setting=setting, size=size, complete=False), meta_path)
        record = dict(fold_group=dict(setting=setting, group=members, store=str(store), size=size,
                                      mode="fused" if size > 1 else "sequential"))
        try:
            for chunk in chunks(members, size):
                if all((store / m / "fold.json").exists() for m in chunk):
                    continue
                folds = [member_fold(m, cfg) for m in chunk]
                if size == 1:
                    train_fold(cache_paths, folds[0][0], folds[0][1], store / chunk[0], device=device,
                               threads=threads, progress=progress, extra_info=record)
                else:
                    train_fused(cache_paths, [h for h, _ in folds], cfg, [store / m for m in chunk],
                                device=device, threads=threads, progress=progress,
                                checkpoint=store / "checkpoint.pt", extra_info=record,
                                seeds=[c["seed"] for _, c in folds])
            break
        except torch.cuda.OutOfMemoryError:
            if setting != "auto" or size == 1:
                raise
            log(f"out of GPU memory with {size} fused folds; retrying with {size // 2}")
            size //= 2
            (store / "checkpoint.pt").unlink(missing_ok=True)
            torch.cuda.empty_cache()
    write_json(dict(key=key, members=members, setting=setting, size=size, complete=True), meta_path)


# On the CPU a fused step pays while one fold's step is small: the largest step (batch x size^2 pixels) that
# mer bench-train measured faster fused, below the smallest measured slower (docs/benchmarks.md, bench-train).
CPU_FUSE_MAX_PIXELS = 80_000
# Host memory a fused fold takes on the CPU, an upper bound from peak RSS (docs/benchmarks.md,
# fused-cpu-memory): weights, gradients, Adam's moments and copies, then what the backward keeps.
CPU_BYTES_PER_PARAM = 20  # bytes per parameter
CPU_BYTES_PER_PIXEL = 8_000  # bytes per input pixel of the step (batch x size^2)


def group_size(setting, n_members, cfg, device):
    """Folds fused at once: all members for an integer or 'all'. For 'auto': on CUDA, what fits in the
    free GPU memory (a one-step probe); on the CPU, where fusing is faster for small steps only, all members
    (as many as fit in half the machine's memory) while batch x size^2 <= CPU_FUSE_MAX_PIXELS, else 1 (one
    fold after another in the group's process). On the CPU it depends on the config and the machine only."""
    if setting != "auto":
        return n_members
    if float(cfg.get("drop_rate", 0)) > 0:
        return 1
    if device.type != "cuda":
        return cpu_group_size(n_members, cfg)
    import torch

    from mer.train.fused import auto_group_size, probe_fold_bytes

    free, _ = torch.cuda.mem_get_info(device)
    return auto_group_size(n_members, free, probe_fold_bytes(cfg, device))


def cpu_group_size(n_members, cfg, memory=None):
    """'auto' on the CPU: n_members fused (in chunks that fit in half of `memory` bytes, default the
    machine's physical memory) when a fold's step is small enough for fusing to pay, else 1. The machine's
    total, not what is free now: the chunks, and so the rounding of a rerun, must not depend on the load."""
    import psutil
    import torch

    from mer.train.fused import auto_group_size
    from mer.train.models import build_model, count_params
    from mer.train.settings import resolve

    c = resolve(cfg)
    pixels = int(c["batch_size"]) * int(c["size"]) ** 2
    if pixels > CPU_FUSE_MAX_PIXELS:
        return 1
    with torch.device("meta"):  # shapes only: no weights allocated or initialised
        params = count_params(build_model(c["backbone"], len(c["classes"]), "none", 0.0))
    per_fold = CPU_BYTES_PER_PARAM * params + CPU_BYTES_PER_PIXEL * pixels
    memory = psutil.virtual_memory().total if memory is None else memory
    return auto_group_size(n_members, memory, per_fold, headroom=0.5)


def place_fold(src_dir, out_dir):
    """Put a stored fold's files into out_dir by hard link (a copy across filesystems); fold.json last."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    missing = [f for f in FOLD_FILES if not (src_dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"{src_dir} lacks {missing}: the group's stored result is incomplete")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in FOLD_FILES:
        with atomic_path(out_dir / name) as tmp:
            os.unlink(tmp)
            try:
                os.link(src_dir / name, tmp)
            except OSError:  # another filesystem, or links not allowed
                shutil.copy2(src_dir / name, tmp)


def _complete(store, key):
    meta = store / "group.json"
    if not meta.exists():
        return False
    m = json.loads(meta.read_text())
    return m.get("key") == key and m.get("complete") is True and all(
        (store / s / f).exists() for s in m["members"] for f in FOLD_FILES)


@contextlib.contextmanager
def _locked(path):
    """An exclusive flock while the block runs (two jobs of one group never train it twice at once)."""
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
