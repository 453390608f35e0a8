"""The coding-sheet reader: the real sheet, each quirk, and each bad-input case."""

import pandas as pd
import pytest
from conftest import EMOTIONS, SHARED_SHEET, TASKS, fake_frames

from mer.datasets.frames import FrameError, frame_path, read_clip
from mer.datasets.sheet import SheetError, read_sheet, task_subjects, write_samples

HEADER = "Subject,Filename,,OnsetFrame,ApexFrame,OffsetFrame,,Action Units,Estimated Emotion\n"
PATTERN = "sub{subject}/{filename}/img{frame}.jpg"


def sheet(tmp_path, rows, header=HEADER, name="coding.csv"):
    p = tmp_path / name
    p.write_text(header + "".join(r + "\n" for r in rows))
    return p


@pytest.mark.skipif(not SHARED_SHEET.exists(), reason="../shared/data/casme2 is not beside the repo")
@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_shared_casme2_sheet_counts(suffix):
    s = read_sheet(SHARED_SHEET.with_suffix(suffix), tasks=TASKS, emotions=EMOTIONS)
    assert len(s) == 255 and s.included.all()
    five = s[s.label_5class != ""]
    three = s[s.label_3class != ""]
    assert len(five) == 246 and five.subject.nunique() == 26
    assert len(three) == 156 and three.subject.nunique() == 25 and "18" not in set(three.subject)
    assert sorted(s.subject.unique()) == [f"{k:02d}" for k in range(1, 27)]
    # Quirks named in the sheet's README.
    missing = s[s.apex_missing]
    assert list(zip(missing.subject, missing.filename, strict=True)) == [("04", "EP12_01f")]
    assert pd.isna(missing.apex.iloc[0])
    assert {"EP01_2", "EP08_1", "EP06_02_01", "EP06_02_02", "EP09f"} <= set(s.filename)
    assert ((s.apex == s.onset).sum(), (s.apex == s.offset).sum()) == (1, 4)
    assert s.onset.dtype == "Int64" and (s.offset - s.onset + 1).sum() == 17138
    # LOSO folds: 26 for 5 classes, 25 for 3 classes (subject 18 has no sample there).
    assert len(task_subjects(s, "5class")) == 26 and task_subjects(s, "3class") == [
        f"{k:02d}" for k in range(1, 27) if k != 18]


def test_numeric_subjects_and_other_headers(tmp_path):
    # Another release: numeric subject, no spacer columns, other header spelling, apex blank.
    p = sheet(tmp_path, ["3,EP01_2,10,,20,surprise", "12.0,EP09f,5,7,9,Happiness"],
              header="subject,filename,Onset Frame,Apex Frame,Offset Frame,Estimated emotion\n")
    s = read_sheet(p, tasks=TASKS, emotions=EMOTIONS)
    assert list(s.subject) == ["03", "12"] and s.included.all()
    assert s.apex_missing.tolist() == [True, False] and list(s.label_5class) == ["surprise", "happiness"]


def test_apex_outside_its_clip_is_spotted_and_noted(tmp_path):
    # SAMM and CAS(ME)^3 have such cells, and the MEGC 2019 composite keeps those clips: the annotation is
    # unusable, not the clip
    s = read_sheet(sheet(tmp_path, ["01,EP01_01,,10,25,20,,4,others"]), tasks=TASKS, emotions=EMOTIONS)
    assert s.included.iloc[0] and s.apex_missing.iloc[0] and pd.isna(s.apex.iloc[0])
    assert s.note.iloc[0] == "coding.csv line 2 sub01 EP01_01: ApexFrame 25 outside onset..offset 10..20: apex spotted"


@pytest.mark.parametrize(
    "row, column",
    [
        ("xx,EP01_01,,10,12,20,,4,others", "Subject"),
        ("01,EP01_01,,ten,12,20,,4,others", "OnsetFrame"),
        ("01,EP01_01,,30,31,20,,4,others", "OnsetFrame/OffsetFrame"),
        ("01,EP01_01,,10,12,20,,4,angry", "Estimated Emotion"),
        ("01,,,10,12,20,,4,others", "Filename"),
    ],
)
def test_bad_row_message_names_subject_filename_column(tmp_path, row, column):
    p = sheet(tmp_path, [row])
    s = read_sheet(p, tasks=TASKS, emotions=EMOTIONS)
    assert not s.included.iloc[0]
    reason = s.reason.iloc[0]
    assert f"column {column}" in reason and "coding.csv line 2" in reason
    if column != "Subject":
        assert "sub01" in reason
    if column != "Filename":
        assert "EP01_01" in reason


def test_missing_column_and_missing_file(tmp_path):
    p = sheet(tmp_path, ["01,EP01,1,2,3"], header="Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame\n")
    with pytest.raises(SheetError, match=r"lacks column\(s\) \['Estimated Emotion'\]"):
        read_sheet(p, tasks=TASKS, emotions=EMOTIONS)
    with pytest.raises(SheetError, match="coding sheet not found"):
        read_sheet(tmp_path / "nope.xlsx", tasks=TASKS, emotions=EMOTIONS)
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SheetError, match="broken.xlsx: cannot read"):
        read_sheet(bad, tasks=TASKS, emotions=EMOTIONS)


def test_duplicate_row(tmp_path):
    p = sheet(tmp_path, ["01,EP01,,1,2,3,,4,others", "01,EP01,,5,6,7,,4,others"])
    s = read_sheet(p, tasks=TASKS, emotions=EMOTIONS)
    assert s.included.tolist() == [True, False] and "duplicate of sheet line 2" in s.reason.iloc[1]


def _frames_case(tmp_path):
    root = tmp_path / "frames"
    for sub, fn in (("01", "EP01_01"), ("01", "EP02_01"), ("02", "EP03_01")):
        fake_frames(root, sub, fn, 1, 6)
    p = sheet(tmp_path, ["01,EP01_01,,1,3,6,,12,happiness", "01,EP02_01,,1,/,6,,4,disgust",
                         "02,EP03_01,,1,4,6,,1+2,surprise"])
    return root, p


def test_missing_and_corrupt_frames_are_excluded_and_named(tmp_path):
    root, p = _frames_case(tmp_path)
    (root / "sub01/EP01_01/img4.jpg").unlink()
    corrupt = root / "sub02/EP03_01/img5.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # truncated JPEG
    out = tmp_path / "samples.tsv"
    s = write_samples(p, root, PATTERN, out, tasks=TASKS, emotions=EMOTIONS)
    assert s.included.tolist() == [False, True, False]
    assert "sub01 EP01_01: frame 4: frame missing" in s.reason.iloc[0] and "img4.jpg" in s.reason.iloc[0]
    assert "sub02 EP03_01: frame 5: corrupt JPEG" in s.reason.iloc[2]
    written = pd.read_csv(out, sep="\t", dtype={"subject": str}, keep_default_na=False)
    assert list(written.columns[:7]) == ["subject", "filename", "onset", "apex", "offset", "apex_missing",
                                         "emotion"]
    assert {"label_5class", "label_3class", "included", "reason"} <= set(written.columns)
    assert written.reason.tolist() == s.reason.tolist()


def test_fail_policy_raises_and_keeps_previous_output(tmp_path):
    root, p = _frames_case(tmp_path)
    out = tmp_path / "samples.tsv"
    write_samples(p, root, PATTERN, out, tasks=TASKS, emotions=EMOTIONS, bad_rows="fail")
    before = out.read_bytes()
    (root / "sub01/EP02_01/img2.jpg").write_bytes(b"garbage")
    with pytest.raises(SheetError, match=r"(?s)1 bad row.*sub01 EP02_01: frame 2: corrupt JPEG"):
        write_samples(p, root, PATTERN, out, tasks=TASKS, emotions=EMOTIONS, bad_rows="fail")
    assert out.read_bytes() == before  # the earlier, complete samples.tsv is untouched
    assert not list(tmp_path.glob(".samples.tsv.*"))  # and no half-written file lies beside it


@pytest.mark.parametrize(
    "subject, filename, why",
    [
        ("01", "../02/EP03_01", "path separator"),  # another subject's frames: cross-subject leakage
        ("01", "..", "'..'"),
        ("01", "/etc", "path separator"),  # an absolute path
        ("01", "EP01\\..\\x", "path separator"),
        ("01", "EP01\x07_01", "control character"),
        ("../02", "EP03_01", "path separator"),
    ],
)
def test_traversal_in_a_cell_is_rejected_naming_line_and_cell(tmp_path, subject, filename, why):
    root, _ = _frames_case(tmp_path)
    p = sheet(tmp_path, ["01,EP01_01,,1,3,6,,12,happiness", f'"{subject}","{filename}",,1,3,6,,12,happiness'])
    out = tmp_path / "samples.tsv"
    s = write_samples(p, root, PATTERN, out, tasks=TASKS, emotions=EMOTIONS)
    assert s.included.tolist() == [True, False]
    column = "Subject" if subject != "01" else "Filename"
    assert "coding.csv line 3" in s.reason.iloc[1] and f"column {column}: " in s.reason.iloc[1]
    assert why in s.reason.iloc[1] and "\x07" not in s.reason.iloc[1]


def test_symlink_out_of_the_root_is_refused(tmp_path):
    root, p = _frames_case(tmp_path)
    outside = tmp_path / "elsewhere"
    fake_frames(outside, "09", "EP09_01", 1, 6)
    # a clip folder that is a symlink out of the root, and one frame of another clip that is
    (root / "sub01/EP01_01").rename(tmp_path / "moved")
    (root / "sub01/EP01_01").symlink_to(outside / "sub09/EP09_01")
    frame = root / "sub02/EP03_01/img2.jpg"
    frame.unlink()
    frame.symlink_to(outside / "sub09/EP09_01/img2.jpg")
    # a symlink that stays inside the root is fine
    (root / "sub01/EP02_01/img3.jpg").unlink()
    (root / "sub01/EP02_01/img3.jpg").symlink_to(root / "sub01/EP02_01/img4.jpg")
    s = write_samples(p, root, PATTERN, tmp_path / "samples.tsv", tasks=TASKS, emotions=EMOTIONS)
    assert s.included.tolist() == [False, True, False]
    for i, name in ((0, "sub01/EP01_01/img1.jpg"), (2, "sub02/EP03_01/img2.jpg")):
        assert name in s.reason.iloc[i] and "outside the data root" in s.reason.iloc[i]
    with pytest.raises(FrameError, match="outside the data root"):
        frame_path(root, PATTERN, "02", "EP03_01", 2)
    # the readers of whole clips resolve a clip's folder once, then look only at each frame: both links found
    for sub, clip in (("01", "EP01_01"), ("02", "EP03_01")):
        for threads in (1, 2):
            with pytest.raises(FrameError, match="outside the data root"):
                read_clip(root, PATTERN, sub, clip, 1, 6, threads=threads)
    assert read_clip(root, PATTERN, "01", "EP02_01", 1, 6, threads=1).shape[0] == 6


def test_frames_fingerprint_follows_the_frames_not_the_root(tmp_path):
    import os
    import shutil

    from mer.datasets.frames import fingerprint

    root, _ = _frames_case(tmp_path)
    clips = [("01", "EP01_01", 1, 6), ("01", "EP02_01", 1, 6)]
    before = fingerprint(root, PATTERN, clips)
    moved = shutil.copytree(root, tmp_path / "moved")  # contents and times, as cp -a
    assert fingerprint(moved, PATTERN, clips) == before
    frame = root / "sub01/EP02_01/img3.jpg"
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    assert fingerprint(root, PATTERN, clips) != before
    frame.unlink()
    assert fingerprint(root, PATTERN, clips) not in (before, fingerprint(moved, PATTERN, clips[:1]))
