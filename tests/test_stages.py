"""The preprocessing stages as library calls on a tiny demo: per-frame landmarks, the annotated-apex
fallback, the crops' attributes and checksums."""

import hashlib

import h5py
import pandas as pd
from conftest import EMOTIONS, TASKS

from mer.apex import spot_subject
from mer.crops import crop_subject
from mer.frames import DEFAULT_PATTERN, frame_path
from mer.landmarks import detect_subject
from mer.sheet import write_samples


def test_stages_per_frame_and_annotated_fallback(tmp_path, tiny_demo):
    sheet = pd.read_csv(tiny_demo / "coding.csv", dtype=str, keep_default_na=False)
    sheet.loc[0, "ApexFrame"] = "/"  # as sub04 EP12_01f in CASME II
    sheet_path = tmp_path / "coding.csv"
    sheet.to_csv(sheet_path, index=False)
    root, sub, fn = tiny_demo / "frames", sheet.Subject[0], sheet.Filename[0]
    samples = write_samples(sheet_path, root, DEFAULT_PATTERN, tmp_path / "samples.tsv", tasks=TASKS,
                            emotions=EMOTIONS)
    assert samples.apex_missing.tolist()[0] and samples.included.all()

    marks = detect_subject(tmp_path / "samples.tsv", sub, root, DEFAULT_PATTERN, tmp_path / "lm.tsv", per_frame=True)
    clips = samples[samples.subject == sub]
    assert len(marks) == int((clips.offset - clips.onset + 1).sum()) and marks.ok.all()  # one row per frame

    apex = spot_subject(tmp_path / "samples.tsv", tmp_path / "lm.tsv", sub, root, DEFAULT_PATTERN,
                        tmp_path / "apex.tsv", tmp_path / "curves.tsv", eps=3)
    row = apex.set_index("filename").loc[fn]
    assert row.annotated_fallback and row.apex_annotated == row.apex_spotted and pd.isna(row.apex_sheet)
    others = apex[apex.filename != fn]
    assert not others.annotated_fallback.any() and (others.apex_annotated == others.apex_sheet).all()
    assert (apex.mid == (apex.onset + apex.apex_spotted) // 2).all()
    curves = pd.read_csv(tmp_path / "curves.tsv", sep="\t")
    assert len(curves) == len(marks)  # one M_i value per frame

    n = crop_subject(tmp_path / "samples.tsv", tmp_path / "lm.tsv", tmp_path / "apex.tsv", sub, root,
                     DEFAULT_PATTERN, tmp_path / "crops.h5", size=48, align="all68")
    assert n == len(clips)
    with h5py.File(tmp_path / "crops.h5") as h5:
        g = h5[fn]
        assert g.attrs["frame_apex"] == row.apex_spotted and g.attrs["frame_mid"] == row.mid
        src = frame_path(root, DEFAULT_PATTERN, sub, fn, int(g.attrs["frame_apex"]))
        assert g.attrs["sha1_apex"] == hashlib.sha1(src.read_bytes()).hexdigest()
        assert g["onset"].shape == g["apex"].shape == g["mid"].shape == g["annotated"].shape == (48, 48, 3)
        assert h5.attrs["align"] == "all68"
