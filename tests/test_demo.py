"""The generated CASME II-shaped demo dataset (mer.demo)."""

import hashlib
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest

from mer import demo
from mer.datasets.sheet import load_raw
from mer.demo import render, sheets
from mer.preprocess.dlibmodels import model_path

HEADER = "Subject,Filename,,OnsetFrame,ApexFrame,OffsetFrame,,Action Units,Estimated Emotion"
CASME_SHEET = Path(__file__).resolve().parents[1].parent / "shared/data/casme2/CASME2-coding-20140508.csv"


def hashes(root):
    """{relative path: sha1} of every file under root."""
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def frame_file(root, subject, filename, frame):
    return Path(root) / "frames" / f"sub{subject}" / filename / f"img{frame}.jpg"


def gray_clip(root, row):
    """(T, H, W) float32 grey frames onset..offset of one sheet row."""
    frames = range(int(row.onset), int(row.offset) + 1)
    return np.stack([cv2.imread(str(frame_file(root, row.subject, row.filename, f)), cv2.IMREAD_GRAYSCALE)
                     for f in frames]).astype(np.float32)


def face_energy(root, row, seed=0):
    """Per frame: sum over the face (landmark box of the subject's neutral face) of |frame - onset|."""
    _, points, _, _ = render.neutral(seed, int(row.subject))
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    clip = gray_clip(root, row)[:, y0:y1, x0:x1]
    return np.abs(clip - clip[0]).sum(axis=(1, 2))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """2 subjects x 5 clips (each class once per subject), default amplitude, seed 0."""
    out = tmp_path_factory.mktemp("demo")
    demo.make_demo(out, subjects=2, clips_per_subject=5, seed=0, workers=2)
    return out


def test_layout_and_header(small):
    sheet = small / "coding.csv"
    assert sheet.read_text().splitlines()[0] == HEADER
    rows = load_raw(sheet)
    assert len(rows) == 10
    assert sorted(set(rows.subject)) == ["01", "02"]
    for subject, group in rows.groupby("subject"):
        assert sorted(group.emotion) == sorted(sheets.CLASSES), subject
    for r in rows.itertuples():
        onset, apex, offset = int(r.onset), int(r.apex), int(r.offset)
        assert 1 <= onset <= 60 and 24 <= offset - onset + 1 <= 40
        assert 0.35 * (offset - onset) - 1 <= apex - onset <= 0.65 * (offset - onset) + 1
        assert r.filename.startswith("EP") and r.action_units
        for f in range(onset, offset + 1):
            assert frame_file(small, r.subject, r.filename, f).exists()
        img = cv2.imread(str(frame_file(small, r.subject, r.filename, apex)), cv2.IMREAD_COLOR)
        assert img.shape == (480, 640, 3)
    n_files = sum(1 for _ in (small / "frames").rglob("*.jpg"))
    assert n_files == sum(int(r.offset) - int(r.onset) + 1 for r in rows.itertuples())


def test_determinism(tmp_path):
    args = dict(subjects=1, clips_per_subject=2)
    demo.make_demo(tmp_path / "a", seed=3, workers=2, **args)
    demo.make_demo(tmp_path / "b", seed=3, workers=1, **args)  # worker count must not matter
    demo.make_demo(tmp_path / "c", seed=4, workers=2, **args)
    a, b, c = hashes(tmp_path / "a"), hashes(tmp_path / "b"), hashes(tmp_path / "c")
    assert len(a) > 40 and a == b
    assert a != c


def test_time_profile():
    p = render.time_profile(range(10, 31), 10, 16, 30)
    assert p[0] == pytest.approx(0) and p[6] == pytest.approx(1) and p[-1] == pytest.approx(0)
    assert np.all(np.diff(p[:7]) > 0) and np.all(np.diff(p[6:]) < 0)
    q = render.time_profile(range(5, 9), 5, 5, 8)  # apex at onset (a quirk of the real sheet)
    assert q[0] == pytest.approx(1) and q[-1] == pytest.approx(0)


def test_true_apex_has_peak_motion(small):
    for r in load_raw(small / "coding.csv").itertuples():
        energy = face_energy(small, r)
        spotted = int(r.onset) + int(np.argmax(energy))
        assert abs(spotted - int(r.apex)) <= 1, (r.subject, r.filename, spotted, r.apex)


def peak_change(root, row, seed=0):
    """Largest local change from the onset over the clip: 99.5th percentile over the face of
    |frame - onset| (grey levels, blurred with sigma 2 px to average out the sensor noise)."""
    _, points, _, _ = render.neutral(seed, int(row.subject))
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    clip = gray_clip(root, row)[:, y0:y1, x0:x1]
    return max(np.percentile(cv2.GaussianBlur(np.abs(f - clip[0]), (0, 0), 2), 99.5) for f in clip)


def test_amplitude_zero_is_noise_only(small, tmp_path):
    demo.make_demo(tmp_path, subjects=2, clips_per_subject=5, seed=0, amplitude=0, workers=2)
    moving = load_raw(small / "coding.csv")
    null = load_raw(tmp_path / "coding.csv")
    assert list(null.filename) == list(moving.filename)
    for r_null, r_move in zip(null.itertuples(), moving.itertuples(), strict=True):
        # Noise and sub-pixel jitter alone change a few grey levels; the AU motion tens.
        change_null, change_move = peak_change(tmp_path, r_null), peak_change(small, r_move)
        assert change_null < 20 and change_null < 0.4 * change_move, (r_null.filename, change_null,
                                                                      change_move)


def test_dlib_finds_one_face(tmp_path):
    demo.make_demo(tmp_path, subjects=6, clips_per_subject=1, workers=2)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_path()))
    for r in load_raw(tmp_path / "coding.csv").itertuples():
        path = frame_file(tmp_path, r.subject, r.filename, int(r.onset))
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        faces = detector(gray, 0)
        assert len(faces) == 1, r.subject
        assert predictor(gray, faces[0]).num_parts == 68
        assert 150 <= faces[0].height() <= 300  # px: a face about as large as CASME II's


def test_mirror_reproduces_rows_and_quirks(tmp_path):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        HEADER + "\n"
        "3,EP06_02_01,,10,/,40,,4+L10,disgust\n"  # subject as a number, irregular name, no apex
        "3,EP01_2,,5,20,30,,R2+15,sadness\n"
        "12,EP09f,,1,1,25,,?,fear\n"  # apex at onset
        "12,EP02_01,,20,44,44,,12,happiness\n"  # apex at offset
    )
    out = demo.make_demo(tmp_path / "out", mirror=sheet, workers=2)
    lines = out.read_text().splitlines()
    assert lines == [
        HEADER,
        "03,EP06_02_01,,10,/,40,,4+L10,disgust",
        "03,EP01_2,,5,20,30,,R2+15,sadness",
        "12,EP09f,,1,1,25,,?,fear",
        "12,EP02_01,,20,44,44,,12,happiness",
    ]
    rows = load_raw(out)
    for r in rows.itertuples():
        for f in range(int(r.onset), int(r.offset) + 1):
            assert frame_file(tmp_path / "out", r.subject, r.filename, f).exists()
    # The missing apex is rendered mid-span.
    energy = face_energy(tmp_path / "out", rows.iloc[0])
    assert abs(10 + int(np.argmax(energy)) - 25) <= 1


def test_shuffle_labels(small, tmp_path):
    demo.make_demo(tmp_path, subjects=2, clips_per_subject=5, seed=0, shuffle_labels=True, workers=2)
    assert hashes(tmp_path / "frames") == hashes(small / "frames")
    plain, shuffled = load_raw(small / "coding.csv"), load_raw(tmp_path / "coding.csv")
    same = ["subject", "filename", "onset", "apex", "offset"]
    assert plain[same].equals(shuffled[same])
    for subject in plain.subject.unique():
        a, b = plain[plain.subject == subject], shuffled[shuffled.subject == subject]
        assert sorted(a.emotion) == sorted(b.emotion)
    assert list(plain.emotion) != list(shuffled.emotion)


def test_mirror_casme_sheet_head(tmp_path):
    if not CASME_SHEET.exists():
        pytest.skip(f"CASME II coding sheet not present at {CASME_SHEET}")
    head = CASME_SHEET.read_text().splitlines()[:11]
    sheet = tmp_path / "head.csv"
    sheet.write_text("\n".join(head) + "\n")
    out = demo.make_demo(tmp_path / "out", mirror=sheet, workers=2)
    assert out.read_text().splitlines() == head
    for r in load_raw(out).itertuples():
        assert frame_file(tmp_path / "out", r.subject, r.filename, int(r.offset)).exists()


# SHA-256 of the 2-subject demo of seed 0 (`small`), recorded on 2026-11-27 with the pinned OpenCV, numpy and
# libjpeg-turbo. The demo must be byte-identical on every machine for a seed: if a dependency or a CPU's
# kernels change the data, this fails, and the demo's figures in the README no longer apply.
PINNED = {
    "coding.csv": "6cc4f393208233f18639dd0b2a547fe9f1fc4ed0dede45bc0b0837026d91c523",
    "frames/sub01/EP01_11f/img14.jpg": "13e621b52f0a723d1efb5beefcc2a0931a83f17015d1a982f68e82ad4102fada",
    "frames/sub01/EP01_11f/img27.jpg": "7834575dc754719c4e3bd437bfb0c72ba7fd410e70615a199c3941329501e73a",
    "frames/sub01/EP01_11f/img50.jpg": "8226c7e60b48b94b151f1aa84430518dfeaf9d1fd6cf15703fbb8f452b64ee6e",
    "frames/sub02/EP03_08/img16.jpg": "e1929fc972637b5a3f1b8c87532053097d48b80e7856ae9812357a7b16bfe9b0",
    "frames/sub02/EP03_08/img30.jpg": "45407fe64d71c9d1fe234894412a4a92d7a3600f7c86e64d8289569bc0c6cb2f",
    "frames/sub02/EP03_08/img45.jpg": "6c5d88f3faf0504f7da425242e4a6bfcfd06b8f2eb6c7685637c88b7ffd4ac7e",
}


def test_demo_bytes_are_pinned(small):
    got = {name: hashlib.sha256((small / name).read_bytes()).hexdigest() for name in PINNED}
    changed = [name for name in PINNED if got[name] != PINNED[name]]
    assert not changed, (
        f"the generated demo changed on this machine or with these packages (cv2 {cv2.__version__}, numpy "
        f"{np.__version__}): {changed}"
    )
