"""The preprocessing stages as library calls on a tiny demo: per-frame landmarks, the annotated-apex
fallback, the crops' attributes and checksums."""

import hashlib
import shutil

import cv2
import h5py
import numpy as np
import pandas as pd
from conftest import EMOTIONS, TASKS

from mer.datasets.frames import DEFAULT_PATTERN, frame_path
from mer.datasets.sheet import write_samples
from mer.preprocess.apex import spot_subject
from mer.preprocess.crops import crop_subject
from mer.preprocess.landmarks import detect_subject


def table(rows, path):
    """The TSV a stage wrote, as pandas reads it; checked against the rows the stage returned."""
    df = pd.read_csv(path, sep="\t", dtype={"subject": str})
    assert len(df) == len(rows) and df.filename.tolist() == [r["filename"] for r in rows]
    return df


def test_stages_per_frame_and_annotated_fallback(tmp_path, tiny_demo):
    sheet = pd.read_csv(tiny_demo / "coding.csv", dtype=str, keep_default_na=False)
    sheet.loc[0, "ApexFrame"] = "/"  # as sub04 EP12_01f in CASME II
    sheet_path = tmp_path / "coding.csv"
    sheet.to_csv(sheet_path, index=False)
    root, sub, fn = tiny_demo / "frames", sheet.Subject[0], sheet.Filename[0]
    samples = write_samples(sheet_path, root, DEFAULT_PATTERN, tmp_path / "samples.tsv", tasks=TASKS,
                            emotions=EMOTIONS)
    assert samples.apex_missing.tolist()[0] and samples.included.all()

    marks = table(detect_subject(tmp_path / "samples.tsv", sub, root, DEFAULT_PATTERN, tmp_path / "lm.tsv",
                                 per_frame=True), tmp_path / "lm.tsv")
    clips = samples[samples.subject == sub]
    assert len(marks) == int((clips.offset - clips.onset + 1).sum()) and marks.ok.all()  # one row per frame

    apex = table(spot_subject(tmp_path / "samples.tsv", tmp_path / "lm.tsv", sub, root, DEFAULT_PATTERN,
                              tmp_path / "apex.tsv", tmp_path / "curves.tsv", eps=3), tmp_path / "apex.tsv")
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


def test_face_lost_or_moved_after_the_onset_is_excluded_with_its_reason(tmp_path, tiny_demo):
    # Clips of one subject: in the first a hand covers the face from mid-clip, in the second the head moves
    # away by two inner-eye-corner distances from mid-clip; the others are untouched.
    root = tmp_path / "frames"
    sheet = pd.read_csv(tiny_demo / "coding.csv", dtype=str, keep_default_na=False)
    sub = sheet.Subject[0]
    clips = sheet[sheet.Subject == sub]
    shutil.copytree(tiny_demo / "frames" / f"sub{sub}", root / f"sub{sub}")
    write_samples(tiny_demo / "coding.csv", root, DEFAULT_PATTERN, tmp_path / "samples.tsv", tasks=TASKS,
                  emotions=EMOTIONS)
    marks = table(detect_subject(tmp_path / "samples.tsv", sub, root, DEFAULT_PATTERN, tmp_path / "lm.tsv"),
                  tmp_path / "lm.tsv")
    assert marks.ok.all() and len(marks) == len(clips)
    covered, moved = clips.iloc[0], clips.iloc[1]
    for clip, change in ((covered, "cover"), (moved, "move")):
        m = marks[marks.filename == clip.Filename].iloc[0]
        iod = np.linalg.norm(np.subtract(*[[m[f"x{k}"], m[f"y{k}"]] for k in (39, 42)]))  # inner eye corners
        onset, offset = int(clip.OnsetFrame), int(clip.OffsetFrame)
        for f in range((onset + offset) // 2, offset + 1):
            path = frame_path(root, DEFAULT_PATTERN, sub, clip.Filename, f)
            img = cv2.imread(str(path))
            if change == "cover":  # a skin-coloured hand over the face box
                cv2.rectangle(img, (int(m.left) - 10, int(m.top) - 10), (int(m.right) + 10, int(m.bottom) + 10),
                              (120, 150, 200), -1)
            else:
                img = cv2.warpAffine(img, np.float32([[1, 0, 2 * iod], [0, 1, 0]]), img.shape[1::-1],
                                     borderMode=cv2.BORDER_REPLICATE)
            cv2.imwrite(str(path), img)
    apex = table(spot_subject(tmp_path / "samples.tsv", tmp_path / "lm.tsv", sub, root, DEFAULT_PATTERN,
                              tmp_path / "apex.tsv", tmp_path / "curves.tsv", eps=3, max_face_shift=0.3),
                 tmp_path / "apex.tsv")
    rows = apex.set_index("filename")
    c, v = rows.loc[covered.Filename], rows.loc[moved.Filename]
    assert not c.ok and f"sub{sub} {covered.Filename}: face lost at apex frame {c.apex_spotted}" in c.reason
    assert not v.ok and f"sub{sub} {moved.Filename}: face moved" in v.reason and "apex.max_face_shift 0.3" in v.reason
    rest = apex[~apex.filename.isin([covered.Filename, moved.Filename])]
    assert rest.ok.all() and (rest.face_shift < 0.1).all()  # untouched clips: the eyes barely move
    # no check asked for: every clip is kept
    kept = table(spot_subject(tmp_path / "samples.tsv", tmp_path / "lm.tsv", sub, root, DEFAULT_PATTERN,
                              tmp_path / "apex2.tsv", tmp_path / "curves2.tsv", eps=3, max_face_shift=None),
                 tmp_path / "apex2.tsv")
    assert kept.ok.all()


def test_clips_sharing_a_filename_stay_apart(tmp_path, tiny_demo):
    """CAS(ME)^3's way: two clips of one (subject, filename) at different onsets. Landmarks, apex, crops and
    training keep them apart by their clip key filename@onset."""
    from mer.datasets.catalog import entry, write_dataset_samples
    from mer.train.data import load_samples

    sheet = pd.read_csv(tiny_demo / "coding.csv", dtype=str, keep_default_na=False)
    first = sheet.iloc[0]
    onset, offset = int(first.OnsetFrame), int(first.OffsetFrame)
    cut = (onset + offset) // 2
    halves = pd.DataFrame([{**first, "OnsetFrame": onset, "ApexFrame": (onset + cut) // 2, "OffsetFrame": cut},
                           {**first, "OnsetFrame": cut + 1, "ApexFrame": (cut + 1 + offset) // 2,
                            "OffsetFrame": offset}])
    halves.to_csv(tmp_path / "sheet.csv", index=False)
    e = entry("twice", {"root": str(tiny_demo / "frames"), "sheet": str(tmp_path / "sheet.csv"),
                        "frame_pattern": DEFAULT_PATTERN, "tasks": TASKS, "emotions": EMOTIONS,
                        "clip_key": ["subject", "filename", "onset"]})
    samples = write_dataset_samples("twice", e, tmp_path / "samples.tsv")
    clips = [f"{first.Filename}@{onset}", f"{first.Filename}@{cut + 1}"]
    assert samples.included.all() and samples["clip"].tolist() == clips

    sub, root = first.Subject, tiny_demo / "frames"
    marks = table(detect_subject(tmp_path / "samples.tsv", sub, root, DEFAULT_PATTERN, tmp_path / "lm.tsv"),
                  tmp_path / "lm.tsv")
    assert marks["clip"].tolist() == clips and marks.frame.tolist() == [onset, cut + 1]
    apex = table(spot_subject(tmp_path / "samples.tsv", tmp_path / "lm.tsv", sub, root, DEFAULT_PATTERN,
                              tmp_path / "apex.tsv", tmp_path / "curves.tsv", eps=3), tmp_path / "apex.tsv")
    assert apex.ok.all() and apex["clip"].tolist() == clips
    assert apex.apex_spotted[0] <= cut < apex.apex_spotted[1]  # each within its own half
    assert crop_subject(tmp_path / "samples.tsv", tmp_path / "lm.tsv", tmp_path / "apex.tsv", sub, root,
                        DEFAULT_PATTERN, tmp_path / "crops.h5", size=32, dataset="twice") == 2
    with h5py.File(tmp_path / "crops.h5") as h5:
        assert sorted(h5) == sorted(clips) and h5.attrs["dataset"] == "twice"
        assert [h5[c].attrs["frame_onset"] for c in clips] == [onset, cut + 1]
    data = load_samples([tmp_path / "crops.h5"], "5class", "apex", list(TASKS["5class"]))
    assert sorted(data.filenames) == sorted(clips) and set(data.subjects) == {f"twice-{sub}"}
