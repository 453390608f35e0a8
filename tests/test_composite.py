"""The MEGC 2019 composite protocol end to end on a tiny generated CASME II + SAMM + SMIC-HS (about a minute)."""

import json
import os

import pandas as pd
import pytest
from conftest import job_counts, planned_jobs, run_snakemake, tiny_config

pytestmark = pytest.mark.slow
DATASETS = ["casme2", "samm", "smic_hs"]


@pytest.fixture(scope="module")
def composite_run(tmp_path_factory):
    work = tiny_config(
        tmp_path_factory.mktemp("composite"),
        demo={"enabled": True, "datasets": DATASETS, "subjects": 2, "clips_per_subject": 4, "seed": 1, "amplitude": 12},
        train={"size": 32, "epochs": 2, "batch_size": 4, "lr": 1e-3, "deterministic": True, "task": "megc2019"},
        experiments=[{"name": "comp", "backbone": "resnet10t", "fold_group": "all"}],
        report={"task": "megc2019"},
    )
    run_snakemake(work, "--cores", "2", "--resources", "gpu=1")
    return work


def test_composite_demo_end_to_end(composite_run):
    res = composite_run / "results"
    subjects = {}
    for d in DATASETS:
        s = pd.read_csv(res / "samples" / f"{d}.tsv", sep="\t", dtype={"subject": str})
        assert (s.dataset == d).all() and s.included.all() and len(s) == 8
        subjects[d] = sorted(s.subject.unique())
        assert (res / "preprocessing" / d / "report.md").exists()
    # each dataset's subject ids in its own form, and its SMIC clips without an apex: spotted
    assert subjects == {"casme2": ["01", "02"], "samm": ["006", "007"], "smic_hs": ["1", "2"]}
    smic_apex = pd.read_csv(res / "apex" / "smic_hs" / "sub1.tsv", sep="\t")
    assert smic_apex.ok.all() and smic_apex.apex_spotted.between(smic_apex.onset, smic_apex.offset).all()

    folds = sorted(p.name for p in (res / "comp" / "folds").iterdir())
    assert folds == ["casme2-01", "casme2-02", "samm-006", "samm-007", "smic_hs-1", "smic_hs-2"]
    info = json.loads((res / "comp" / "folds" / "samm-006" / "fold.json").read_text())
    assert info["held_out"] == "samm-006" and len(info["train_subjects"]) == 5

    m = json.loads((res / "comp" / "metrics.json").read_text())
    # CASME II's and SAMM's 'others'/'other' clips are not in the composite: 2 of each subject's 4 drawn emotions
    counts = {d: m["per_dataset"][d]["n_samples"] for d in DATASETS}
    assert m["n_folds"] == 6 and sum(counts.values()) == m["n_samples"] and counts["smic_hs"] == 8
    assert set(m["per_dataset"]) == set(DATASETS) and m["experiment"]["classes"] == ["negative", "positive", "surprise"]
    summary = (res / "summary.md").read_text()
    assert "Results on casme2 + samm + smic_hs" in summary and "## Per dataset" in summary
    assert "(reported)" not in summary  # generated data: no published numbers beside it


def test_changed_sheet_of_one_dataset_reruns_only_its_preprocessing(composite_run):
    sheet = composite_run / "results" / "demo" / "samm" / "coding.csv"
    original, stat = sheet.read_bytes(), sheet.stat()
    text = original.decode()
    first_emotion = next(e for e in ("Anger", "Happiness", "Surprise") if f",{e}," in text)
    other = "Surprise" if first_emotion != "Surprise" else "Anger"
    try:
        sheet.write_text(text.replace(f",{first_emotion},", f",{other},", 1))  # one clip relabelled
        jobs = planned_jobs(run_snakemake(composite_run, "-n", "--cores", "2"))
    finally:
        sheet.write_bytes(original)
        os.utime(sheet, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    by_rule = {}
    for rule, wildcards in jobs:
        by_rule.setdefault(rule, []).append(wildcards)
    assert by_rule["read_sheet"] == ["dataset=samm"]
    for rule in ("detect_landmarks", "spot_apex", "crop_faces"):
        assert sorted(by_rule[rule]) == ["dataset=samm, subject=006", "dataset=samm, subject=007"], (rule, jobs)
    assert by_rule["report_preprocessing"] == ["dataset=samm"]
    assert len(by_rule["train_fold_group"]) == 6  # the composite's folds all train on SAMM's clips
    assert "make_demo_dataset" not in by_rule
    assert "Nothing to be done" in run_snakemake(composite_run, "-n", "--cores", "2").stdout
    assert job_counts(run_snakemake(composite_run, "-n", "--cores", "2")) == {}
