import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_SHEET = ROOT.parent / "shared" / "data" / "casme2" / "CASME2-coding-20140508.csv"
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
TASKS = SCHEMA["properties"]["tasks"]["default"]
EMOTIONS = SCHEMA["properties"]["emotions"]["default"]
CACHE_CLASSES = ["happiness", "surprise", "others"]  # classes of write_crop_cache


def run_snakemake(workdir, *args, check=True, configfile="config.yaml", repo=ROOT, env=None):
    """Snakemake in `workdir` with its config.yaml (or another file there) and the Snakefile of `repo`;
    returns the finished process."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / configfile), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def tiny_config(workdir, **overrides):
    cfg = {
        "demo": {"enabled": True, "subjects": 3, "clips_per_subject": 5, "seed": 1},
        "crop": {"size": 64},
        "train": {"size": 64, "epochs": 2, "batch_size": 4, "lr": 1e-3, "deterministic": True},
        "experiments": [{"name": "tiny"}, {"name": "tiny_b", "lr": 5e-4, "fold_group": "all"}],
    }
    cfg.update(overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    return workdir


def planned_jobs(proc):
    """[(rule, wildcards)] of the jobs a dry run plans (a process, or its output text); wildcards as Snakemake
    prints them ('' for none)."""
    jobs = []
    for line in (proc if isinstance(proc, str) else proc.stdout).splitlines():
        rule = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line)
        if rule:
            jobs.append((rule.group(1), ""))
        elif line.strip().startswith("wildcards:") and jobs:
            jobs[-1] = (jobs[-1][0], line.split(":", 1)[1].strip())
    return jobs


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny demo pipeline run once, locally, per test session; returns its results/ directory."""
    work = tiny_config(tmp_path_factory.mktemp("wf"))
    run_snakemake(work, "--cores", "2", "--resources", "gpu=1")
    return work / "results"


def job_counts(proc):
    """{rule: count} from the job-stats table of a dry run."""
    counts, table = {}, False
    for line in proc.stdout.splitlines():
        if line.startswith("job ") and "count" in line:
            table = True
            continue
        if table:
            parts = line.split()
            if line.startswith("total"):
                break
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """A 3-subject generated demo (frames + coding.csv), made once per test session."""
    from mer.demo import make_demo

    out = tmp_path_factory.mktemp("demo")
    make_demo(out, subjects=3, clips_per_subject=5, seed=1, workers=2)
    return out


def write_jpeg(path, img):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def fake_frames(root, subject, filename, onset, offset, shape=(48, 64)):
    """Small noise JPEGs for frames onset..offset (enough for the sheet's frame checks)."""
    rng = np.random.default_rng(0)
    for f in range(onset, offset + 1):
        write_jpeg(root / f"sub{subject}" / filename / f"img{f}.jpg", rng.integers(0, 255, shape, np.uint8))


def copy_tree(src, dst):
    shutil.copytree(src, dst)
    return dst


def write_crop_cache(folder, subjects=("01", "02", "03"), n=6, size=32):
    """Synthetic crop cache: the apex image's brightness gives the class (an easy task).

    n: clips per subject, or a dict subject -> clips (training sets of different sizes)."""
    paths, rng = [], np.random.default_rng(0)
    for s in subjects:
        count = n[s] if isinstance(n, dict) else n
        path = folder / f"sub{s}.h5"
        with h5py.File(path, "w") as h5:
            h5.attrs.update(subject=s, size=size)
            for i in range(count):
                emotion, name = CACHE_CLASSES[i % 3], f"EP{i:02d}_{s}f"
                g = h5.create_group(name)
                g.attrs.update(subject=s, filename=name, emotion=emotion, label_5class=emotion,
                               onset=0, offset=10)
                img = np.clip(40 + 80 * (i % 3) + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
                for j, kind in enumerate(("onset", "apex", "annotated", "mid")):
                    g.create_dataset(kind, data=img)
                    g.attrs[f"frame_{kind}"], g.attrs[f"sha1_{kind}"] = j, "0" * 40
        paths.append(path)
    return paths
