"""Preprocessing speed: landmarks, apex and crops of a mirrored demo through the workflow (bench-preprocess)."""

import contextlib
import io
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def bench_preprocess(sheet, work, threads=2):
    """Time the preprocessing DAG (read_sheet, landmarks, apex, crops, report) on a demo that mirrors
    `sheet`, e.g. CASME II's 255 clips / 17,138 frames at 640x480. Prints the figures and returns them as a
    dict; asserts nothing."""
    import subprocess
    import sys

    import pandas as pd
    import yaml

    from mer.demo import make_demo

    work = Path(work).resolve()
    data = work / "data"
    t0 = time.perf_counter()
    if not (data / "coding.csv").exists():
        make_demo(data, mirror=sheet, workers=threads)
    t_demo = time.perf_counter() - t0
    cfg = {"demo": {"enabled": False}, "experiments": [], "results": str(work / "results"), "dataset": "casme2",
           "data": {"root": str(data / "frames"), "sheet": str(data / "coding.csv")}}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    shutil.rmtree(work / "results", ignore_errors=True)  # no stale job benchmarks in the breakdown
    shutil.rmtree(work / "floor", ignore_errors=True)
    snakefile = Path(__file__).resolve().parents[2] / "Snakefile"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", str(threads), "--forceall", "--quiet"]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime  # Snakemake and every job, s
    samples_tsv = work / "results" / "samples" / "casme2.tsv"
    samples = pd.read_csv(samples_tsv, sep="\t", dtype={"subject": str})
    frames = int((samples.offset - samples.onset + 1)[samples.included].sum())
    errors = pd.read_csv(work / "results" / "preprocessing" / "casme2" / "apex_error.tsv", sep="\t")
    print(f"demo generation (mirror of {sheet}): {t_demo:.1f} s (0 if it already existed)")
    print(f"preprocessing: {len(samples)} clips, {frames} frames, {threads} cores")
    print(f"  wall time {wall:.1f} s, {frames / wall:.0f} frames/s (read_sheet + landmarks + apex + crops + report); "
          f"CPU {cpu:.1f} s in all")
    stages = stage_breakdown(work / "results" / "benchmarks", cpu)
    print(stages.to_string(index=False))
    print(errors.to_string(index=False))
    subjects = sorted(samples[samples.included].subject.unique())
    floor = preprocess_in_process(samples_tsv, subjects, data / "frames", work / "floor", threads)
    print(f"the same landmarks, apex and crops calls for every subject in {threads} processes, without Snakemake's "
          f"per-job start-up: {floor:.1f} s wall (the floor that per-subject jobs add their start-up to)")
    spotted = errors.set_index("method").loc["spotted"]
    return dict(clips=len(samples), frames=frames, cores=threads, demo_generation_s=round(t_demo, 1),
                wall_s=round(wall, 1), frames_per_s=round(frames / wall), cpu_s=round(cpu, 1),
                job_cpu_s=dict(zip(stages.stage, stages["CPU s"], strict=True)), floor_s=round(floor, 1),
                apex_mae_frames=round(float(spotted.mae_frames), 2), apex_within_3=round(float(spotted.within_3), 3))


def _subject_chain(args):
    """Landmarks, apex and crops of one subject, as the three rules run them (defaults of the schema)."""
    from mer.datasets.frames import DEFAULT_PATTERN
    from mer.preprocess.apex import spot_subject
    from mer.preprocess.crops import crop_subject
    from mer.preprocess.landmarks import detect_subject

    samples, root, out, subject = args
    lm, apex = out / f"sub{subject}_landmarks.tsv", out / f"sub{subject}_apex.tsv"
    with contextlib.redirect_stdout(io.StringIO()):
        detect_subject(samples, subject, root, DEFAULT_PATTERN, lm)
        spot_subject(samples, lm, subject, root, DEFAULT_PATTERN, apex, out / f"sub{subject}_curves.tsv")
        crop_subject(samples, lm, apex, subject, root, DEFAULT_PATTERN, out / f"sub{subject}.h5")


def preprocess_in_process(samples, subjects, root, out, threads):
    """Wall seconds of the per-subject chain for every subject in `threads` worker processes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(threads) as pool:
        list(pool.map(_subject_chain, [(samples, root, out, sub) for sub in subjects]))
    return time.perf_counter() - t0


def stage_breakdown(benchmarks, cpu_total):
    """Per rule, from Snakemake's `benchmark:` files: jobs, summed job wall time (s, Python start-up
    included) and CPU time (s). The last row is the rest of the run's CPU time: Snakemake itself (DAG,
    input checks, job start) and what the benchmark files miss (they sample a job's CPU time every 0.5 s, so
    up to 0.5 s at the end of each job is lost)."""
    import pandas as pd

    rows = []
    for folder in sorted(p for p in Path(benchmarks).iterdir()):
        files = [folder] if folder.is_file() else sorted(folder.rglob("*.tsv"))
        t = pd.concat([pd.read_csv(f, sep="\t") for f in files])
        rows.append({"stage": folder.name.removesuffix(".tsv"), "jobs": len(t), "wall s": t.s.sum(),
                     "wall s/job": t.s.mean(), "CPU s": t.cpu_time.sum()})
    rest = cpu_total - sum(r["CPU s"] for r in rows)
    rows.append({"stage": "snakemake + unsampled job CPU", "jobs": 1, "wall s": float("nan"),
                 "wall s/job": float("nan"), "CPU s": rest})
    return pd.DataFrame(rows).round(2)
