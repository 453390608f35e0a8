"""Chaos test: SIGKILL the whole workflow at chosen moments, resume it, and check that no output is
half-written and that the results equal those of an uninterrupted run of the same config.

Each run is killed (os.killpg with SIGKILL on Snakemake's process group: Snakemake and every job) at the
first moment one of the remaining TARGETS is reached, after that target's seeded random delay; then
`snakemake --unlock` and a rerun with --rerun-incomplete, until every target has been hit and a last run
finishes. How each moment is recognised (polling results/ every few ms; only files written in this run
count, so that a killed run's leftovers are not taken for a job under way):
- detect_landmarks: the job's log was opened in this run (its imports are done) and its table is not written;
- crop_faces: a crop cache's temp file (.subNN.h5.XXXX.part of mer.io.atomic_path) exists: the HDF5 file
  is being written;
- mid-epoch (train_fold, train_fold_group): the checkpoint of epoch k (k < epochs) was written in this run
  after the folds' metrics.csv of k rows, and no temp file exists: epoch k + 1 is under way;
- checkpoint write (train_fold, train_fold_group): the checkpoint's temp file (.checkpoint.pt.XXXX.part)
  exists; the kill comes within its write (tens of ms for resnet10t here), and the temp file left behind
  shows that the kill came before the rename;
- aggregate_loso: an experiment's metrics.json was written in this run and its last figure was not;
- summarize_experiments: Snakemake marked the job's outputs incomplete in this run (the job started) and
  summary.html, its last output, is not written.
After each kill the same condition must still hold (the kill came before the stage's output existed),
and every file that Snakemake does not mark incomplete must parse. Every fold trained in a run must say
in its fold.json that it resumed from the checkpoint that was on disk when the run started.
"""

import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import pandas as pd
import pytest
import torch
from conftest import ROOT, run_snakemake, tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

EPOCHS = 4
SUBJECTS = ["demo-01", "demo-02", "demo-03"]  # folds: DATASET-SUBJECT
# A small backbone keeps each fold to seconds; its checkpoint (~60 MB with Adam's state) takes long enough
# to write that polling catches the write. One experiment trains each fold alone, one fused (the group's
# checkpoint holds all three folds).
CONFIG = dict(
    demo={"enabled": True, "subjects": 3, "clips_per_subject": 5, "seed": 1},
    crop={"size": 64},
    train={"backbone": "resnet10t", "size": 64, "epochs": EPOCHS, "batch_size": 4, "lr": 1e-3,
           "deterministic": True, "checkpoint_every": 1},
    experiments=[{"name": "solo"}, {"name": "fused", "fold_group": "all"}],
)
TIMING = {"seconds", "images_per_s"}  # wall-clock fields: metrics.csv columns, model.pt history, fold.json
RESUME = {"resumed_from_epoch", "epochs_this_run"}  # fold.json: how the last run of the fold got there
UNCOMPARED = ("logs", "benchmarks", ".gpu_slots")  # timings, progress bars and process ids only
POLL_S = 0.002
RUN_TIMEOUT_S = 300
SEED = 2024


def snakemake_cmd(work):
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
            "--configfile", str(work / "config.yaml"), "--cores", "2", "--resources", "gpu=1", "--rerun-incomplete"]


def is_temp(path):
    """An atomic_path temp file: .NAME.XXXX.part beside its target."""
    return path.name.startswith(".") and path.name.endswith(".part")


def fresh(path, since):
    """Does `path` exist, last modified at or after `since`? (Snakemake also touches a job's outputs when
    it finishes.)"""
    try:
        return path.stat().st_mtime >= since
    except FileNotFoundError:
        return False


def temps(folder, name, since):
    """Temp files of `folder / name` written in this run."""
    return [str(p) for p in folder.glob(f".{name}.*.part") if fresh(p, since)]


def marker(res, output):
    """Snakemake's incomplete marker of an output below `res`: .snakemake/incomplete/ holds one file per output
    of a started, unfinished job, named by the output's path in urlsafe base64 (short paths: one part)."""
    key = base64.urlsafe_b64encode(f"{res.name}/{output}".encode()).decode()
    return res.parent / ".snakemake" / "incomplete" / key


def incomplete(work, since=0.0):
    """Outputs marked incomplete since `since`, as paths relative to `work` (long names are split into
    '@'-prefixed parts)."""
    root = work / ".snakemake" / "incomplete"
    return {base64.urlsafe_b64decode("".join(s.lstrip("@") for s in p.relative_to(root).parts)).decode()
            for p in root.rglob("*") if p.is_file() and p.name != "migration_underway" and fresh(p, since)}


def rows(csv):
    return len(csv.read_text().splitlines()) - 1


# Probes: (results, since) -> what of the stage is under way (empty: not now).


def landmarking(res, since):
    logs = (res / "logs" / "detect_landmarks" / "demo").glob("*.log")
    return [str(log) for log in logs
            if fresh(log, since) and not (res / "landmarks" / "demo" / f"{log.stem}.tsv").exists()]


def cropping(res, since):
    return temps(res / "crops" / "demo", "*.h5", since)


def solo_units(res):
    """Each solo fold: (its checkpoint, [its folder])."""
    return [(res / "solo" / "folds" / s / "checkpoint.pt", [res / "solo" / "folds" / s]) for s in SUBJECTS]


def fused_units(res):
    """The fused group (one, first fold demo-01): its store's checkpoint and the folds it trains there."""
    store = res / "fused" / "groups" / SUBJECTS[0]
    return [(store / "checkpoint.pt", [store / s for s in SUBJECTS])]


def mid_epoch(ckpt, folds, since):
    if not fresh(ckpt, since):
        return []
    try:
        metrics = [f / "metrics.csv" for f in folds]
        ks = {rows(m) for m in metrics}
        after = ckpt.stat().st_mtime >= max(m.stat().st_mtime for m in metrics)
    except FileNotFoundError:
        return []
    busy = [p for d in {ckpt.parent, *folds} for p in d.glob(".*.part") if fresh(p, since)]
    if len(ks) != 1 or not after or busy or not 1 <= (k := ks.pop()) < EPOCHS:
        return []
    return [f"{ckpt.parent}: epoch {k + 1} of {EPOCHS} under way (checkpoint of epoch {k} written)"]


def checkpoint_written(ckpt, folds, since):
    return temps(ckpt.parent, ckpt.name, since)


def over(units, moment):
    """A probe of `moment` in any training unit (checkpoint, fold folders) of units(res)."""
    def probe(res, since):
        return [seen for ckpt, folds in units(res) for seen in moment(ckpt, folds, since)]

    return probe


def aggregating(res, since):
    return [str(m.parent) for m in res.glob("*/metrics.json")
            if fresh(m, since) and not (m.parent / "training_curves.png").exists()]


def summarizing(res, since):
    started = marker(res, "summary.md")
    return [str(started)] if fresh(started, since) and not (res / "summary.html").exists() else []


@dataclass
class Target:
    name: str
    probe: object
    max_delay_s: float  # the kill waits a random 0..max_delay_s after the moment is first seen in a run


TARGETS = [
    Target("detect_landmarks", landmarking, 0.2),
    Target("crop_faces: HDF5 being written", cropping, 0.05),
    Target("train_fold: mid-epoch", over(solo_units, mid_epoch), 0.1),
    Target("train_fold: checkpoint write", over(solo_units, checkpoint_written), 0.02),
    Target("train_fold_group: mid-epoch", over(fused_units, mid_epoch), 0.1),
    Target("train_fold_group: checkpoint write", over(fused_units, checkpoint_written), 0.05),
    Target("aggregate_loso: metrics.json written, figures not", aggregating, 0.1),
    Target("summarize_experiments", summarizing, 0.5),
]


def check_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "no PNG magic"
    matplotlib.image.imread(path)  # decodes every row: a truncated file raises


def check_h5(path):
    with h5py.File(path, "r") as h5:
        dict(h5.attrs)
        h5.visititems(lambda name, obj: (dict(obj.attrs), obj[()] if isinstance(obj, h5py.Dataset) else None)[0])


def check_html(path):
    assert path.read_text().rstrip().endswith("</html>"), "no </html> at the end"


CHECKS = {
    ".tsv": lambda p: pd.read_csv(p, sep="\t"),
    ".csv": pd.read_csv,
    ".json": lambda p: json.loads(p.read_text()),
    ".h5": check_h5,
    ".pt": lambda p: torch.load(p, map_location="cpu", weights_only=True),
    ".png": check_png,
    ".html": check_html,
}


def invalid_files(res):
    """[(path relative to res, error)] of every file that looks complete (not a temp) and does not parse."""
    bad, seen = [], set()
    for p in sorted(res.rglob("*")):
        if not p.is_file() or is_temp(p) or p.suffix not in CHECKS:
            continue
        inode = (p.stat().st_dev, p.stat().st_ino)  # a fused fold's files are hard links into its group's store
        if inode in seen:
            continue
        seen.add(inode)
        try:
            CHECKS[p.suffix](p)
        except Exception as e:  # noqa: BLE001 - any failure to parse is the finding
            bad.append((str(p.relative_to(res)), repr(e)[:200]))
    return bad


def checkpoint_epoch(ckpt):
    """The epoch a checkpoint was written after (0: none, a rerun trains from scratch)."""
    if not ckpt.exists():
        return 0
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"])


def training_units(res):
    """(checkpoint, [fold.json each fold writes when trained]) of every solo fold and of the fused group."""
    return [(ckpt, [d / "fold.json" for d in dirs]) for ckpt, dirs in solo_units(res) + fused_units(res)]


def group_alive(pgid):
    """Processes of the group that are not yet dead (zombies count as dead)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            alive.append(stat.parent.name)
    return alive


def kill_group(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while group_alive(proc.pid):
        assert time.monotonic() < deadline, f"processes of the killed group {proc.pid} still run"
        time.sleep(0.01)


def tail(path, n=4000):
    return path.read_text(errors="replace")[-n:]


def chaos_runs(work, delays):
    """Run, kill at the next target, unlock, rerun ... until every target is hit and a run finishes.
    Returns (kills, resumes): a record per kill, and (run, checkpoint, epoch) per fold trained from a checkpoint."""
    res = work / "results"
    remaining, kills, resumes = list(TARGETS), [], []
    for run in range(1, len(TARGETS) + 2):
        # Files of earlier runs are seconds older (each kill is followed by checks and --unlock); the margin
        # covers coarse file timestamps.
        since = time.time() - 1.0
        resume_from = {ckpt: checkpoint_epoch(ckpt) for ckpt, _ in training_units(res)}
        before = {info: info.read_bytes() for _, infos in training_units(res) for info in infos if info.exists()}
        out = work / f"snakemake.{run}.out"
        with open(out, "w") as log:
            proc = subprocess.Popen(snakemake_cmd(work), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        first_seen, hit, t0 = {}, None, time.monotonic()
        try:
            while hit is None and proc.poll() is None:
                assert time.monotonic() - t0 < RUN_TIMEOUT_S, (
                    f"run {run}: none of {[t.name for t in remaining]} reached in {RUN_TIMEOUT_S} s\n{tail(out)}")
                for t in remaining:
                    seen = t.probe(res, since)
                    if not seen:
                        continue
                    now = time.monotonic()
                    first_seen.setdefault(t.name, now)
                    if now >= first_seen[t.name] + delays[t.name]:
                        running = sorted(incomplete(work, since))
                        kill_group(proc)
                        hit = t, seen, running, now - t0
                        break
                else:
                    time.sleep(POLL_S)
        finally:
            if proc.poll() is None:
                kill_group(proc)
        # A fold.json rewritten in this run (Snakemake may just touch a fused fold's: it is a hard link into
        # the group's store) must say that its fold resumed from the checkpoint on disk at the start.
        for ckpt, infos in training_units(res):
            for info in infos:
                if info.exists() and info.read_bytes() != before.get(info):
                    got = json.loads(info.read_text())["resumed_from_epoch"]
                    assert got == resume_from[ckpt], (f"run {run}: {info} resumed from epoch {got}, "
                                                      f"but {ckpt} held epoch {resume_from[ckpt]}")
                    if got:
                        resumes.append((run, str(ckpt.relative_to(res)), got))
        if hit is None:
            assert proc.returncode == 0, f"run {run} (a rerun after a kill) failed:\n{tail(out)}"
            assert not remaining, (f"the workflow finished without reaching {[t.name for t in remaining]} "
                                   f"(first seen: {first_seen})")
            return kills, resumes
        target, seen, running, at = hit
        remaining.remove(target)
        after = target.probe(res, since)
        assert after, f"run {run}: {target.name} was not under way when killed (seen just before: {seen})"
        bad = invalid_files(res)
        marked = incomplete(work)
        half_written = [(p, e) for p, e in bad if f"{res.name}/{p}" not in marked]
        assert not half_written, (f"run {run}, killed at {target.name}: files that look complete do not parse: "
                                  f"{half_written}")
        kills.append(dict(run=run, target=target.name, at_s=round(at, 2), seen=after, running=running,
                          temps=sorted(str(p.relative_to(res)) for p in res.rglob(".*.part")),
                          invalid_but_incomplete=bad))
        run_snakemake(work, "--unlock")
    raise AssertionError(f"targets left after {len(TARGETS) + 1} runs: {[t.name for t in remaining]}")


def same(a, b, ignore=frozenset()):
    """Equal nested content (dicts, lists, tensors, numbers), skipping dict keys in `ignore`."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        keys = set(a) - ignore
        return isinstance(b, dict) and keys == set(b) - ignore and all(same(a[k], b[k], ignore) for k in keys)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y, ignore) for x, y in zip(a, b, strict=True))
    return a == b


def result_files(res, records=False):
    """Files below res, temps aside; records=True: only the run records (UNCOMPARED), else all but those."""
    names = {str(p.relative_to(res)) for p in res.rglob("*") if p.is_file() and not is_temp(p)}
    return {n for n in names if (n.split("/")[0] in UNCOMPARED) == records}


def differences(base, chaos, names):
    """Files whose content differs between two results/ folders: byte for byte, except as noted."""
    diffs = []
    for name in sorted(names):
        a, b = base / name, chaos / name
        if a.name == "metrics.csv":  # per-epoch rows; drop the wall-clock columns
            x, y = (pd.read_csv(p).drop(columns=list(TIMING)) for p in (a, b))
            equal = x.equals(y)
        elif a.name == "fold.json":
            equal = same(json.loads(a.read_text()), json.loads(b.read_text()), TIMING | RESUME)
        elif a.suffix == ".pt":  # weights, Adam's state, epoch, config; its history without timings
            equal = same(*(torch.load(p, map_location="cpu", weights_only=True) for p in (a, b)), TIMING)
        else:
            equal = a.read_bytes() == b.read_bytes()
        if not equal:
            diffs.append(name)
    return diffs


def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
    rng = random.Random(SEED)
    delays = {t.name: rng.uniform(0, t.max_delay_s) for t in TARGETS}
    work = tiny_config(tmp_path / "chaos", **CONFIG)
    kills, resumes = chaos_runs(work, delays)
    base = tiny_config(tmp_path / "base", **CONFIG)
    run_snakemake(base, "--cores", "2", "--resources", "gpu=1")

    res, base_res = work / "results", base / "results"
    for k in kills:
        print(f"run {k['run']}: killed {k['at_s']} s in, at {k['target']}: {k['seen']}\n"
              f"  jobs running (outputs marked incomplete): {k['running']}\n  temp files: {k['temps']}\n"
              f"  unparsable files marked incomplete: {k['invalid_but_incomplete']}")
    print(f"folds resumed from a checkpoint (run, checkpoint, epoch): {resumes}")
    print(f"temp files left after the last run: {sorted(str(p.relative_to(res)) for p in res.rglob('.*.part'))}")
    print(f"outputs still marked incomplete: {sorted(incomplete(work))}")
    print(f"run records (logs, benchmarks) an uninterrupted run has and these lack: "
          f"{sorted(result_files(base_res, True) - result_files(res, True))}")
    # resume was exercised for both kinds of training (each mid-epoch kill left a checkpoint to resume)
    assert any("solo" in c for _, c, _ in resumes) and any("fused" in c for _, c, _ in resumes), resumes
    assert invalid_files(res) == []
    # a killed writer's temp file is removed when its output is written again (mer.io.atomic_path)
    assert not list(res.rglob(".*.part")), sorted(str(p.relative_to(res)) for p in res.rglob(".*.part"))
    # the results of an uninterrupted run, no more
    names, chaos_names = result_files(base_res), result_files(res)
    assert not names - chaos_names, f"missing after the resumed runs: {sorted(names - chaos_names)}"
    assert not chaos_names - names, f"not made by an uninterrupted run: {sorted(chaos_names - names)}"
    assert differences(base_res, res, names) == []
