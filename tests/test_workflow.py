"""End-to-end runs of the Snakemake workflow on a tiny generated demo (CPU, about a minute)."""

import json
import os
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT, job_counts, planned_jobs, run_snakemake, tiny_config
from sklearn.metrics import accuracy_score, f1_score

pytestmark = pytest.mark.slow


def test_preprocessing_outputs(tiny_run):
    samples = pd.read_csv(tiny_run / "samples" / "demo.tsv", sep="\t", dtype={"subject": str})
    assert len(samples) == 15 and samples.included.all() and sorted(samples.subject.unique()) == ["01", "02", "03"]
    for s in ("01", "02", "03"):
        marks = pd.read_csv(tiny_run / "landmarks" / "demo" / f"sub{s}.tsv", sep="\t")
        assert marks.ok.all() and len(marks) == 5  # one detection per clip (onset frame)
        apex = pd.read_csv(tiny_run / "apex" / "demo" / f"sub{s}.tsv", sep="\t")
        assert apex.ok.all() and (apex.apex_spotted.between(apex.onset, apex.offset)).all()
        with h5py.File(tiny_run / "crops" / "demo" / f"sub{s}.h5") as h5:
            assert len(h5) == 5
            g = h5[next(iter(h5))]
            assert g["apex"].shape == (64, 64, 3) and g["apex"].dtype == np.uint8
            assert {"subject", "filename", "label_5class", "frame_apex", "sha1_apex", "frame_onset"} <= set(g.attrs)
    report = tiny_run / "preprocessing" / "demo"
    errors = pd.read_csv(report / "apex_error.tsv", sep="\t")
    assert set(errors.method) == {"spotted", "annotated", "mid"}
    assert errors.set_index("method").loc["annotated", "mae_frames"] == 0  # the demo sheet has every apex
    for png in ("apex_curves.png", "crops_montage.png"):
        assert (report / png).read_bytes()[:4] == b"\x89PNG"


def test_training_and_summary(tiny_run):
    exp = tiny_run / "tiny"
    for s in ("01", "02", "03"):
        fold = exp / "folds" / f"demo-{s}"
        ckpt = torch.load(fold / "model.pt", weights_only=True)
        assert set(ckpt) >= {"model", "optimizer", "epoch", "config"} and ckpt["epoch"] == 2
        assert len(pd.read_csv(fold / "metrics.csv")) == 2
        info = json.loads((fold / "fold.json").read_text())
        assert info["held_out"] == f"demo-{s}" and f"demo-{s}" not in info["train_subjects"]
        assert info["device"] == "cpu" and len(info["train_subjects"]) == 2
    pooled = pd.read_csv(exp / "predictions.tsv", sep="\t")
    m = json.loads((exp / "metrics.json").read_text())
    assert m["n_folds"] == 3 and m["n_samples"] == len(pooled) == 15
    assert m["accuracy"] == pytest.approx(accuracy_score(pooled.y_true, pooled.y_pred))
    classes = ["happiness", "disgust", "repression", "surprise", "others"]
    assert m["uf1"] == pytest.approx(f1_score(pooled.y_true, pooled.y_pred, labels=classes, average="macro",
                                              zero_division=0))
    summary = (tiny_run / "summary.md").read_text()
    assert "| SE-ResNeXt-50 | tiny | frame | apex | focal | 5class |" in summary and "(reported)" not in summary


def test_second_run_has_nothing_to_do(tiny_run):
    proc = run_snakemake(tiny_run.parent, "-n", "--cores", "2")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_unknown_config_key_is_named(tmp_path):
    work = tiny_config(tmp_path / "bad", crop={"size": 64, "sise": 32})
    proc = run_snakemake(work, "-n", check=False)
    assert proc.returncode != 0 and "'sise' was unexpected" in proc.stdout + proc.stderr


def test_unknown_experiment_in_report_compare_is_named(tmp_path):
    work = tiny_config(tmp_path / "cmp", report={"compare": [["tiny", "tinny"]]})
    proc = run_snakemake(work, "-n", check=False)
    assert proc.returncode != 0 and "report.compare: ['tiny', 'tinny'] names no experiment ['tinny']" in (
        proc.stdout + proc.stderr)


def test_experiment_on_a_dataset_not_configured_is_named(tmp_path):
    work = tiny_config(tmp_path / "nods", experiments=[{"name": "x", "task": "megc2019"}])
    proc = run_snakemake(work, "-n", check=False)
    assert proc.returncode != 0 and "experiment x: task 'megc2019' is a task of no dataset" in proc.stdout + proc.stderr
    work = tiny_config(tmp_path / "nods2", experiments=[{"name": "y", "datasets": ["samm"]}])
    proc = run_snakemake(work, "-n", check=False)
    assert proc.returncode != 0 and "experiment y: datasets ['samm'] are not configured" in proc.stdout + proc.stderr


def test_missing_data_path_is_named(tmp_path):
    work = tiny_config(tmp_path / "nodata", demo={"enabled": False}, data={"root": "/nope", "sheet": "/nope.csv"})
    proc = run_snakemake(work, "-n", check=False)
    assert proc.returncode != 0 and "config key data.root = '/nope' does not exist" in proc.stdout + proc.stderr


def test_real_data_mode_with_bad_inputs(tmp_path, tiny_demo):
    """A user's copy (not the demo) with a missing frame, a corrupt JPEG and a face that is not found:
    each clip is excluded with a reason naming it, and everything else is processed."""
    data = shutil.copytree(tiny_demo, tmp_path / "casme")
    sheet = pd.read_csv(data / "coding.csv", dtype=str)
    clip = lambda i: (sheet.Subject[i], sheet.Filename[i], int(sheet.OnsetFrame[i]))  # noqa: E731
    s0, f0, on0 = clip(0)
    (data / "frames" / f"sub{s0}" / f0 / f"img{on0 + 2}.jpg").unlink()
    s1, f1, on1 = clip(1)
    p = data / "frames" / f"sub{s1}" / f1 / f"img{on1 + 1}.jpg"
    p.write_bytes(p.read_bytes()[:500])
    s2, f2, on2 = clip(6)
    import cv2

    for k in range(6):  # no face in the onset frame nor the 5 after it
        cv2.imwrite(str(data / "frames" / f"sub{s2}" / f2 / f"img{on2 + k}.jpg"), np.full((480, 640, 3), 128, np.uint8))
    work = tiny_config(tmp_path / "wf", demo={"enabled": False}, experiments=[],
                       data={"root": str(data / "frames"), "sheet": str(data / "coding.csv")})
    run_snakemake(work, "--cores", "2")
    res = work / "results"
    samples = pd.read_csv(res / "samples" / "demo.tsv", sep="\t", dtype={"subject": str}, keep_default_na=False)
    bad = samples.set_index("filename").loc[[f0, f1]]
    assert f"sub{s0} {f0}: frame {on0 + 2}: frame missing" in bad.reason.iloc[0]
    assert f"sub{s1} {f1}: frame {on1 + 1}: corrupt JPEG" in bad.reason.iloc[1]
    excluded = pd.read_csv(res / "preprocessing" / "demo" / "excluded.tsv", sep="\t")
    assert len(excluded) == 3
    face = excluded[excluded.stage == "spot_apex"].reason.iloc[0]
    assert f"sub{s2} {f2}" in face and "no face found" in face
    with h5py.File(res / "crops" / "demo" / f"sub{s2}.h5") as h5:
        assert f2 not in h5 and len(h5) == 4

    # Under bad_rows: fail the same data stops at read_sheet with the list, and keeps earlier results.
    before = {p: p.read_bytes() for p in (res / "crops" / "demo").glob("*.h5")}
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["data"]["bad_rows"] = "fail"
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(work, "--cores", "2", check=False)
    log = (res / "logs" / "read_sheet" / "demo.log").read_text()
    assert proc.returncode != 0 and "2 bad row(s)" in log and f"sub{s0} {f0}" in log
    assert {p: p.read_bytes() for p in (res / "crops" / "demo").glob("*.h5")} == before


def test_casme2_config_declares_the_papers_experiments(tmp_path, tiny_demo):
    cfg = yaml.safe_load((ROOT / "config" / "casme2.yaml").read_text())
    cfg["data"].update(root=str(tiny_demo / "frames"), sheet=str(tiny_demo / "coding.csv"))
    work = tmp_path / "casme2"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    run_snakemake(work, "--cores", "2", "results/samples/casme2.tsv")  # resolve the checkpoint, then plan the rest
    counts = job_counts(run_snakemake(work, "-n", "--cores", "2"))
    # 7 experiments x 3 subjects, in fused groups (fold_group: auto), one job per fold
    assert counts["aggregate_loso"] == 7 and counts["train_fold_group"] == 7 * 3 and "train_fold" not in counts
    assert counts["detect_landmarks"] == counts["crop_faces"] == 3


def variant(results, name, change):
    """Write the tiny run's config with `change(cfg)` applied as `name` beside it."""
    work = results.parent
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    change(cfg)
    (work / name).write_text(yaml.safe_dump(cfg))
    return name


def test_changed_training_parameter_reruns_only_that_experiment(tiny_run):
    name = variant(tiny_run, "epochs.yaml", lambda c: c["experiments"][0].update(epochs=3))
    counts = job_counts(run_snakemake(tiny_run.parent, "-n", "--cores", "2", configfile=name))
    assert counts == {"train_fold": 3, "aggregate_loso": 1, "summarize_experiments": 1, "all": 1}


def test_changed_apex_eps_reruns_apex_onwards_but_not_landmarks(tiny_run):
    name = variant(tiny_run, "eps.yaml", lambda c: c.update(apex={"eps": 1}))
    counts = job_counts(run_snakemake(tiny_run.parent, "-n", "--cores", "2", configfile=name))
    assert "detect_landmarks" not in counts and "make_demo" not in counts
    assert counts["spot_apex"] == counts["crop_faces"] == 3
    assert counts["train_fold"] == counts["train_fold_group"] == 3  # tiny alone, tiny_b fused
    assert counts["aggregate_loso"] == 2 and counts["report_preprocessing"] == 1


def test_deleted_fold_output_reruns_that_fold_alone(tiny_run):
    (tiny_run / "tiny" / "folds" / "demo-02" / "predictions.tsv").unlink()
    counts = job_counts(run_snakemake(tiny_run.parent, "-n", "--cores", "2"))
    assert counts == {"train_fold": 1, "aggregate_loso": 1, "summarize_experiments": 1, "all": 1}
    run_snakemake(tiny_run.parent, "--cores", "2")
    assert (tiny_run / "tiny" / "folds" / "demo-02" / "predictions.tsv").exists()
    assert "Nothing to be done" in "".join(run_snakemake(tiny_run.parent, "-n", "--cores", "2").stdout)


def test_fused_experiment_writes_what_one_fold_mode_writes(tiny_run):
    # final/: the target `final`, which tests/test_predict.py builds in this shared run for `tiny` alone
    files = {e: sorted(str(p.relative_to(tiny_run / e)) for p in (tiny_run / e).rglob("*") if p.is_file()
                       and not {"groups", "final"} & set(p.parts)) for e in ("tiny", "tiny_b")}
    assert files["tiny"] == files["tiny_b"] and "folds/demo-03/model.pt" in files["tiny"]
    for s in ("01", "02", "03"):
        info = json.loads((tiny_run / "tiny_b" / "folds" / f"demo-{s}" / "fold.json").read_text())
        assert info["held_out"] == f"demo-{s}" and info["fold_group"]["group"] == ["demo-01", "demo-02", "demo-03"]
        assert info["fold_group"]["setting"] == "all" and info["fold_group"]["mode"] == "fused"
        assert "fold_group" not in json.loads((tiny_run / "tiny" / "folds" / f"demo-{s}" / "fold.json").read_text())
    logs = tiny_run / "logs" / "train_fold_group" / "tiny_b"
    assert "fold demo-01: trained" in (logs / "demo-01.log").read_text()  # the first fold's job trains the group
    assert "fold demo-03: placed" in (logs / "demo-03.log").read_text()
    assert "| SE-ResNeXt-50 | tiny_b |" in (tiny_run / "summary.md").read_text()


def test_deleted_fused_fold_output_reruns_that_fold_alone_without_training(tiny_run):
    fold = tiny_run / "tiny_b" / "folds" / "demo-02"
    before = pd.read_csv(fold / "predictions.tsv", sep="\t")
    (fold / "model.pt").unlink()
    counts = job_counts(run_snakemake(tiny_run.parent, "-n", "--cores", "2"))
    assert counts == {"train_fold_group": 1, "aggregate_loso": 1, "summarize_experiments": 1, "all": 1}
    run_snakemake(tiny_run.parent, "--cores", "2")
    assert "fold demo-02: placed" in (tiny_run / "logs" / "train_fold_group" / "tiny_b" / "demo-02.log").read_text()
    pd.testing.assert_frame_equal(before, pd.read_csv(fold / "predictions.tsv", sep="\t"))
    # the group's first fold: its job and, after it, the others' (they take its fold.json) re-place theirs
    (tiny_run / "tiny_b" / "folds" / "demo-01" / "metrics.csv").unlink()
    counts = job_counts(run_snakemake(tiny_run.parent, "-n", "--cores", "2"))
    assert counts == {"train_fold_group": 3, "aggregate_loso": 1, "summarize_experiments": 1, "all": 1}
    run_snakemake(tiny_run.parent, "--cores", "2")
    assert "Nothing to be done" in run_snakemake(tiny_run.parent, "-n", "--cores", "2").stdout


@pytest.fixture(scope="module")
def copied_repo_run(tmp_path_factory, tiny_demo):
    """A complete tiny run in real-data mode (a user's frames, not the demo), driven by a copy of this repo
    (Snakefile, workflow/, src/), so that a test may edit a module without touching the real one."""
    base = tmp_path_factory.mktemp("copy")
    repo = base / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    repo.mkdir()
    shutil.copy2(ROOT / "Snakefile", repo / "Snakefile")
    for d in ("workflow", "src"):
        shutil.copytree(ROOT / d, repo / d, ignore=ignore)
    data = shutil.copytree(tiny_demo, base / "casme")
    work = tiny_config(base / "work", demo={"enabled": False}, experiments=[{"name": "tiny", "epochs": 1}],
                       data={"root": str(data / "frames"), "sheet": str(data / "coding.csv")})
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}  # the copy's mer package, not the installed one
    run_snakemake(work, "--cores", "2", repo=repo, env=env)
    dry = lambda: run_snakemake(work, "-n", "--cores", "2", repo=repo, env=env)  # noqa: E731
    assert "Nothing to be done" in dry().stdout
    return repo, data, dry


def test_changed_frames_of_one_subject_rerun_its_preprocessing_and_every_fold(copied_repo_run):
    repo, data, dry = copied_repo_run
    sheet = pd.read_csv(data / "coding.csv", dtype=str)
    clip = sheet[sheet.Subject == "02"].iloc[0]
    frame = data / "frames" / "sub02" / clip.Filename / f"img{int(clip.OnsetFrame) + 3}.jpg"
    original, stat = frame.read_bytes(), frame.stat()
    try:
        import cv2

        img = cv2.imread(str(frame))
        cv2.imwrite(str(frame), cv2.GaussianBlur(img, (5, 5), 0))  # new content, not just a new mtime
        jobs = planned_jobs(dry())
    finally:
        frame.write_bytes(original)
        os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as it was: bytes and time
    preprocessing = {(rule, w) for rule, w in jobs if rule in ("detect_landmarks", "spot_apex", "crop_faces")}
    stages = ("detect_landmarks", "spot_apex", "crop_faces")
    assert preprocessing == {(rule, "dataset=demo, subject=02") for rule in stages}
    counts = {rule: [r for r, _ in jobs].count(rule) for rule, _ in jobs}
    assert counts == {"detect_landmarks": 1, "spot_apex": 1, "crop_faces": 1, "train_fold": 3, "aggregate_loso": 1,
                      "summarize_experiments": 1, "report_preprocessing": 1, "all": 1}
    assert "Nothing to be done" in dry().stdout  # the original frame back: nothing to do again
    try:  # touched: its subject reruns (a frame counts by path, size and modification time, not by content)
        os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5 * 10**9))
        assert [w for r, w in planned_jobs(dry()) if r == "detect_landmarks"] == ["dataset=demo, subject=02"]
    finally:
        os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize(
    "module, expected",
    [
        ("evaluate/pooling", {"aggregate_loso": 1, "summarize_experiments": 1, "all": 1}),
        ("preprocess/apex", {"spot_apex": 3, "crop_faces": 3, "train_fold": 3, "aggregate_loso": 1,
                             "summarize_experiments": 1, "report_preprocessing": 1, "all": 1}),
    ],
)
def test_changed_library_module_reruns_its_rule(copied_repo_run, module, expected):
    repo, data, dry = copied_repo_run
    path = repo / "src" / "mer" / f"{module}.py"
    original = path.read_text()
    try:
        path.write_text(original + "\n\nCHANGED = True  # a real content change\n")
        counts = job_counts(dry())
    finally:
        path.write_text(original)
    assert counts == expected


def test_moved_run_has_nothing_to_do(copied_repo_run, tmp_path):
    # A finished run copied with its checkout to another folder, as a user moves it to a cluster's shared
    # filesystem: `cp -a` keeps contents and mtimes; the data stays where the config says.
    import subprocess

    repo, data, dry = copied_repo_run
    moved = tmp_path / "elsewhere"
    subprocess.run(["cp", "-a", str(repo.parent), str(moved)], check=True)
    env = {**os.environ, "PYTHONPATH": str(moved / "repo" / "src")}
    proc = run_snakemake(moved / "work", "-n", "--cores", "2", repo=moved / "repo", env=env)
    assert "Nothing to be done" in proc.stdout, proc.stdout[-3000:]
    # and the moved copy still reruns what a changed module feeds
    path = moved / "repo" / "src" / "mer" / "evaluate" / "pooling.py"
    path.write_text(path.read_text() + "\n\nCHANGED = True\n")
    counts = job_counts(run_snakemake(moved / "work", "-n", "--cores", "2", repo=moved / "repo", env=env))
    assert counts == {"aggregate_loso": 1, "summarize_experiments": 1, "all": 1}
