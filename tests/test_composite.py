"""The MEGC 2019 composite protocol end to end on a tiny generated CASME II + SAMM + SMIC-HS (about a minute)."""

import json

import pandas as pd
import pytest
from conftest import planned_jobs, run_snakemake, tiny_config

pytestmark = pytest.mark.slow
DATASETS = ["casme2", "samm", "smic_hs"]


@pytest.fixture(scope="module")
def composite_run(tmp_path_factory):
    work = tiny_config(
        tmp_path_factory.mktemp("composite"),
        demo={"enabled": True, "datasets": DATASETS, "subjects": 2, "clips_per_subject": 4, "seed": 1, "amplitude": 12},
        train={"size": 32, "epochs": 2, "batch_size": 4, "lr": 1e-3, "deterministic": True, "task": "megc2019"},
        experiments=[{"name": "comp", "backbone": "resnet10t", "fold_group": "all"},
                     {"name": "cross", "backbone": "resnet10t", "datasets": ["casme2"], "test_datasets": ["samm"]}],
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


def test_cross_dataset_trains_on_one_and_tests_on_another(composite_run):
    res = composite_run / "results" / "cross"
    assert sorted(p.name for p in (res / "folds").iterdir()) == ["samm"]
    info = json.loads((res / "folds" / "samm" / "fold.json").read_text())
    assert info["held_out"] == "samm" and info["train_subjects"] == ["casme2-01", "casme2-02"]
    predictions = pd.read_csv(res / "predictions.tsv", sep="\t")
    assert predictions.subject.str.startswith("samm-").all()
    samm = pd.read_csv(composite_run / "results" / "samples" / "samm.tsv", sep="\t")
    assert len(predictions) == samm.label_megc2019.fillna("").ne("").sum()  # every SAMM clip of the task
    m = json.loads((res / "metrics.json").read_text())
    assert m["n_folds"] == 1 and m["experiment"]["test_datasets"] == ["samm"]
    summary = (composite_run / "results" / "summary.md").read_text()
    assert "| resnet10t | cross | frame | apex | focal | megc2019 | casme2 → samm |" in summary
    assert "| resnet10t | comp | frame | apex | focal | megc2019 | casme2 + samm + smic_hs |" in summary


def jobs_by_rule(proc):
    """{rule: [wildcards]} of the jobs a run printed (a dry run's plan, or a real run's jobs)."""
    by_rule = {}
    for rule, wildcards in planned_jobs(proc.stdout + "\n" + proc.stderr):
        by_rule.setdefault(rule, []).append(wildcards)
    return by_rule


def test_changed_sheet_of_one_dataset_reruns_only_its_preprocessing(composite_run):
    """Last in this module: it relabels one SAMM clip for good (and leaves the folds to retrain)."""
    sheet = composite_run / "results" / "demo" / "samm" / "coding.csv"
    text = sheet.read_text()
    first_emotion = next(e for e in ("Anger", "Happiness", "Surprise") if f",{e}," in text)
    other = "Surprise" if first_emotion != "Surprise" else "Anger"
    sheet.write_text(text.replace(f",{first_emotion},", f",{other},", 1))  # one clip relabelled
    # a dry run stops at the checkpoint: SAMM's read_sheet, and nothing of the other datasets
    planned = jobs_by_rule(run_snakemake(composite_run, "-n", "--cores", "2"))
    assert planned["read_sheet"] == ["dataset=samm"] and set(planned) <= {"read_sheet", "all"}, planned
    # every dataset's preprocessing asked for: SAMM's alone runs
    reports = [f"results/preprocessing/{d}/report.md" for d in DATASETS]
    ran = jobs_by_rule(run_snakemake(composite_run, "--cores", "2", *reports))
    assert ran["read_sheet"] == ["dataset=samm"] and "make_demo_dataset" not in ran
    for rule in ("detect_landmarks", "spot_apex", "crop_faces"):
        assert sorted(ran[rule]) == ["dataset=samm, subject=006", "dataset=samm, subject=007"], (rule, ran)
    assert ran["report_preprocessing"] == ["dataset=samm"]
    # then the folds: every one that trains or tests on SAMM's clips, and no more preprocessing
    planned = jobs_by_rule(run_snakemake(composite_run, "-n", "--cores", "2"))
    assert len(planned["train_fold_group"]) == 6  # the composite's folds all train on SAMM's clips
    assert planned["train_fold"] == ["experiment=cross, fold=samm"]  # and the cross-dataset one tests on them
    assert set(planned) == {"train_fold_group", "train_fold", "aggregate_loso", "summarize_experiments", "all"}
