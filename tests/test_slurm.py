"""The tiny pipeline on a real one-node SLURM cluster, submitted through `--profile profiles/slurm`.

tests/slurm/cluster.sh starts munged, mariadbd, slurmdbd, slurmctld and slurmd (Debian's Slurm 22.05) with
2 fake GPUs; the test checks that every fold ran as its own SLURM job holding one GPU, and that the results
equal the local run's (tiny_run, same config and seeds). Needs root and apt; skipped elsewhere.
"""

import json
import os
import pathlib
import shutil
import subprocess
import time

import pandas as pd
import pytest
from conftest import ROOT, run_snakemake, tiny_config

pytestmark = pytest.mark.slow
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
PROGRAMS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sacctmgr", "sacct", "sbatch")
CANNOT_HOST = 3  # cluster.sh's exit status for "this machine cannot host the cluster"


def _cluster(*args, timeout=300):
    return subprocess.run(["bash", str(CLUSTER), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the SLURM cluster test needs root: it starts munged, mariadbd and the Slurm daemons")
    if any(shutil.which(exe) is None for exe in PROGRAMS):
        if shutil.which("apt-get") is None:
            pytest.skip("Slurm, munge and mariadb are not installed and there is no apt-get to install them")
        proc = _cluster("install", timeout=900)
        if proc.returncode:
            pytest.skip(f"could not install the cluster's Debian packages:\n{proc.stderr[-2000:]}")
    state = tmp_path_factory.mktemp("slurm")
    t0 = time.monotonic()
    proc = _cluster("start", state)
    try:
        if proc.returncode == CANNOT_HOST:
            pytest.skip(proc.stderr.strip())
        logs = {p.name: p.read_text(errors="replace")[-1500:] for p in state.glob("*.log")}
        assert proc.returncode == 0, f"cluster.sh start failed:\n{proc.stderr}\n{logs}"
        print(f"SLURM cluster up in {time.monotonic() - t0:.1f} s")
        yield state
    finally:
        pids = {p.stem: int(p.read_text()) for p in state.glob("*.pid") if p.read_text().strip().isdigit()}
        _cluster("stop", state)
        assert not [name for name, pid in pids.items() if _alive(pid)], "a cluster daemon outlived cluster.sh stop"
        assert not os.path.islink("/etc/slurm/slurm.conf"), "cluster.sh stop left /etc/slurm/slurm.conf behind"


def _sacct():
    """One row per SLURM job of the (fresh) cluster: JobID, Comment (rule + wildcards), State, AllocTRES."""
    fields = ["JobID", "Comment", "State", "AllocTRES"]
    out = subprocess.run(["sacct", "-a", "-X", "-n", "-P", "-o", ",".join(fields)], capture_output=True, text=True,
                         check=True).stdout
    return pd.DataFrame([line.split("|") for line in out.splitlines() if line], columns=fields)


def test_folds_run_as_slurm_jobs_with_one_gpu_each(slurm_cluster, tiny_run, tmp_path):
    work = tiny_config(tmp_path / "slurm_run", experiments=[{"name": "tiny"}])  # tiny_run's first experiment
    t0 = time.monotonic()
    # The profile's first status poll comes 40 s after a submission: a long wait for each of the tiny
    # DAG's short steps. 5 s keeps this test near 2 minutes; everything else is the profile's.
    run_snakemake(work, "--profile", str(ROOT / "profiles" / "slurm"), "--slurm-init-seconds-before-status-checks", "5")
    print(f"tiny pipeline on SLURM: {time.monotonic() - t0:.1f} s")

    jobs = _sacct()
    assert (jobs.State == "COMPLETED").all(), jobs.to_string()
    tres = jobs.AllocTRES.str.split(",")
    folds = jobs[jobs.Comment.str.startswith("rule_train_fold")]
    assert sorted(folds.Comment) == [f"rule_train_fold_wildcards_tiny_demo-{s}" for s in ("01", "02", "03")], jobs
    assert all("gres/gpu=1" in t for t in tres[folds.index]), folds.to_string()  # one GPU per fold job
    others = jobs.drop(folds.index)
    assert len(others) and not any(any(x.startswith("gres/gpu") for x in t) for t in tres[others.index])
    # every other step also ran on the cluster: per-subject preprocessing as one group job per subject
    assert len(others[others.Comment.str.contains("preprocess_subject|crop_faces", regex=True)]) == 3, others

    res = work / "results"
    for s in ("01", "02", "03"):
        fold = f"tiny/folds/demo-{s}/predictions.tsv"
        pd.testing.assert_frame_equal(pd.read_csv(res / fold, sep="\t"), pd.read_csv(tiny_run / fold, sep="\t"))
        for step in ("landmarks", "apex"):
            path = pathlib.Path(step) / "demo" / f"sub{s}.tsv"
            assert (res / path).read_text() == (tiny_run / path).read_text()
    ours, local = (json.loads((r / "tiny" / "metrics.json").read_text()) for r in (res, tiny_run))
    for key in ("accuracy", "uf1", "uar", "confusion", "n_samples", "n_folds"):
        assert ours[key] == local[key], key
