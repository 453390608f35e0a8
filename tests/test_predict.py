"""`mer predict` and `train_final` on the tiny demo's trained models: the same prediction as the workflow's,
from frames or a video, the windowed detector on a long video, and a clear error for each bad input."""

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_snakemake

from mer.cli import main
from mer.demo import make_demo
from mer.predict import PredictError, load_model, predict_clip, spot_windows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def final_run(tiny_run):
    """The tiny demo run (conftest.tiny_run) plus experiment tiny's final model (target train_final)."""
    run_snakemake(tiny_run.parent, "--cores", "2", "results/tiny/final/model.json", "--resources", "gpu=1")
    return tiny_run


def clips(results, subject=None):
    s = pd.read_csv(results / "samples" / "demo.tsv", sep="\t", dtype={"subject": str})
    return s[s.subject == subject] if subject else s


def clip_dir(results, row):
    return results / "demo" / "frames" / f"sub{row.subject}" / row.filename


def write_video(frames, path, fps=200):
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert out.isOpened()
    for f in frames:
        out.write(f)
    out.release()
    return path


def read_frames(folder, onset, offset):
    return [cv2.imread(str(folder / f"img{f}.jpg")) for f in range(onset, offset + 1)]


def test_final_model_and_its_description(final_run):
    final = final_run / "tiny" / "final"
    info = json.loads((final / "model.json").read_text())
    loso = json.loads((final_run / "tiny" / "metrics.json").read_text())
    assert info["format"] == "mer-model/1" and info["input"] == "frame" and info["frame"] == "apex"
    assert info["classes"] == ["happiness", "disgust", "repression", "surprise", "others"]
    assert info["input_size"] == 64 and info["preprocess"]["crop"] == {"size": 64, "align": "eyes"}
    assert info["preprocess"]["apex"]["eps"] == 3 and "upsample" in info["preprocess"]["landmarks"]
    assert info["n_train"] == 15 and info["train_subjects"] == ["demo-01", "demo-02", "demo-03"]  # every subject
    assert {k: info["loso"][k] for k in ("accuracy", "uf1", "uar")} == {k: loso[k] for k in ("accuracy", "uf1", "uar")}
    assert {"mer", "torch", "timm"} <= set(info["versions"])
    ckpt = torch.load(final / "model.pt", weights_only=True)
    assert ckpt["format"] == "mer-model/1" and ckpt["held_out"] == "final" and ckpt["epoch"] == 2
    # not part of the default target: a dry run of `all` has nothing to do
    assert "Nothing to be done" in run_snakemake(final_run.parent, "-n").stdout


def test_predict_agrees_with_the_fold_models_predictions(final_run):
    """Each held-out subject's clips through mer predict with its fold's model: the workflow's predictions."""
    for subject in ("01", "02", "03"):
        fold = final_run / "tiny" / "folds" / f"demo-{subject}"
        model = load_model(fold)
        expected = pd.read_csv(fold / "predictions.tsv", sep="\t", dtype={"subject": str}).set_index("filename")
        apex = pd.read_csv(final_run / "apex" / "demo" / f"sub{subject}.tsv", sep="\t").set_index("filename")
        for row in clips(final_run, subject).itertuples():
            pred = predict_clip(clip_dir(final_run, row), model, row.onset, row.offset)
            assert pred.apex_spotted == apex.loc[row.filename, "apex_spotted"]
            want = expected.loc[row.filename]
            assert pred.label == want.y_pred
            got = [pred.probabilities[c] for c in model.classes]
            np.testing.assert_allclose(got, [want[f"prob_{c}"] for c in model.classes], atol=1e-5)


@pytest.mark.parametrize("kind", ["difference", "flow"])
def test_predict_prepares_motion_inputs_as_training_does(final_run, tmp_path, kind):
    """A fold trained on a motion input (from the workflow's crop caches, flow computed as compute_flow does),
    then its held-out clips through mer predict: the fold's own predictions."""
    from mer.preprocess.flow import flow_subject
    from mer.train.loop import train_fold

    cfg = torch.load(final_run / "tiny" / "folds" / "demo-01" / "model.pt", weights_only=True)["config"]
    cfg = {**cfg, "name": kind, "input": kind, "backbone": "resnet18", "size": 32, "epochs": 1}
    caches = sorted((final_run / "crops" / "demo").glob("sub*.h5"))
    if kind == "flow":
        cfg["preprocess"] = {**cfg["preprocess"], "flow": {"method": "tvl1", "lambda": 0.15}}
        for c in caches:
            flow_subject(c, tmp_path / c.name, "tvl1", 0.15)
        caches = [tmp_path / c.name for c in caches]
    train_fold(caches, "demo-02", cfg, tmp_path / "fold", threads=2, progress=False)
    model = load_model(tmp_path / "fold")
    expected = pd.read_csv(tmp_path / "fold" / "predictions.tsv", sep="\t").set_index("filename")
    for row in clips(final_run, "02").itertuples():
        pred = predict_clip(clip_dir(final_run, row), model, row.onset, row.offset)
        want = expected.loc[row.filename]
        np.testing.assert_allclose([pred.probabilities[c] for c in model.classes],
                                   [want[f"prob_{c}"] for c in model.classes], atol=1e-5)


def test_video_and_frame_folder_give_the_same_prediction(final_run, tmp_path):
    row = next(clips(final_run, "02").itertuples())
    folder = clip_dir(final_run, row)
    video = write_video(read_frames(folder, row.onset, row.offset), tmp_path / "clip.mp4")
    model = load_model(final_run / "tiny")  # the experiment folder: its final model
    assert model.paths == [final_run / "tiny" / "final" / "model.pt"]
    from_frames = predict_clip(folder, model)  # the whole folder: onset..offset from the names
    from_video = predict_clip(video, model)
    assert (from_frames.onset, from_frames.offset) == (row.onset, row.offset)
    assert (from_video.onset, from_video.offset) == (0, row.offset - row.onset)  # a video counts from 0
    assert abs((from_video.apex_spotted + row.onset) - from_frames.apex_spotted) <= 1
    assert from_video.label == from_frames.label
    got = np.array([from_video.probabilities[c] for c in model.classes])
    want = np.array([from_frames.probabilities[c] for c in model.classes])
    np.testing.assert_allclose(got, want, atol=0.02)


def test_cli_text_json_out_and_ensemble(final_run, tmp_path, capsys):
    row = next(clips(final_run, "01").itertuples())
    folder = clip_dir(final_run, row)
    assert main(["predict", str(folder), "--model", str(final_run / "tiny"), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["onset"] == row.onset and body["offset"] == row.offset and body["label"] in body["probabilities"]
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-5 and len(body["curve"]) == row.offset - row.onset + 1
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--model", str(final_run / "tiny"), "--ensemble", "--out", str(out),
                 "--verbose"]) == 0
    text = capsys.readouterr()
    assert "class:" in text.out and f"apex {body['apex']}" in text.out and "time:" in text.err
    saved = json.loads((out / "prediction.json").read_text())
    assert len(saved["model"]) == 3  # the three fold models
    assert (out / "prediction.png").read_bytes()[:4] == b"\x89PNG"
    # the ensemble's probabilities: the mean of its folds'
    folds = [predict_clip(folder, final_run / "tiny" / "folds" / f"demo-{s}") for s in ("01", "02", "03")]
    mean = {c: np.mean([p.probabilities[c] for p in folds]) for c in saved["probabilities"]}
    assert saved["probabilities"] == pytest.approx(mean, abs=1e-6)


def test_windowed_mode_finds_three_apexes_in_a_long_video(final_run, tmp_path, capsys):
    """Three demo clips of one subject joined by neutral frames (the same face rendered without motion:
    head jitter and sensor noise only), as one mp4."""
    neutral = tmp_path / "neutral"
    make_demo(neutral, subjects=1, clips_per_subject=4, amplitude=0, seed=1, workers=2)  # tiny_run: seed 1
    calm = pd.read_csv(neutral / "coding.csv", dtype={"Subject": str})
    frames, apexes = [], []
    moving = list(clips(final_run, "01").itertuples())[:3]
    for k, row in enumerate(moving):
        c = calm.iloc[k]
        frames += read_frames(neutral / "frames" / "sub01" / c.Filename, c.OnsetFrame, c.OffsetFrame)
        apexes.append(len(frames) + row.apex - row.onset)
        frames += read_frames(clip_dir(final_run, row), row.onset, row.offset)
    c = calm.iloc[3]
    frames += read_frames(neutral / "frames" / "sub01" / c.Filename, c.OnsetFrame, c.OffsetFrame)
    video = write_video(frames, tmp_path / "long.mp4")
    table, preds = spot_windows(video, final_run / "tiny", window=48)
    found = table[table.reason == ""]
    assert len(found) == 3 and len(preds) == 3, table
    assert np.abs(found.apex.to_numpy(int) - np.array(apexes)).max() <= 5, (table, apexes)
    # the same through the command line, as JSON, and as files
    assert main(["predict", str(video), "--model", str(final_run / "tiny"), "--window", "48", "--json",
                 "--out", str(tmp_path / "out")]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [w["apex"] for w in body["windows"]] == found.apex.tolist() and len(body["predictions"]) == 3
    assert len(pd.read_csv(tmp_path / "out" / "windows.tsv", sep="\t")) == len(table)
    assert sorted(p.name for p in (tmp_path / "out").glob("window*.png")) == [f"window00{k}.png" for k in (1, 2, 3)]


def test_bad_inputs_exit_2_with_a_message_naming_them(final_run, tmp_path, capsys):
    model = str(final_run / "tiny")
    row = next(clips(final_run, "01").itertuples())
    folder = clip_dir(final_run, row)

    def fails(args, *needles):
        assert main(["predict", *map(str, args), "--model", model]) == 2
        err = capsys.readouterr().err
        for needle in needles:
            assert needle in err, err

    (tmp_path / "text.mp4").write_text("not a video")
    fails([tmp_path / "text.mp4"], "video unreadable or empty", "text.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    fails([tmp_path / "empty.mp4"], "video unreadable or empty", "empty.mp4")
    (tmp_path / "nothing").mkdir()
    fails([tmp_path / "nothing"], "no images", "nothing")
    fails([tmp_path / "absent.mp4"], "input not found", "absent.mp4")
    # no face in the onset frame: a grey first frame
    noface = shutil.copytree(folder, tmp_path / "noface")
    cv2.imwrite(str(noface / f"img{row.onset}.jpg"), np.full((480, 640, 3), 128, np.uint8))
    fails([noface], f"no face found in the onset frame {row.onset}", "noface")
    # the face lost mid-clip: grey frames in the middle, where the spotted apex then falls
    lost = shutil.copytree(folder, tmp_path / "lost")
    mid = (row.onset + row.offset) // 2
    for f in range(mid - 2, mid + 3):
        cv2.imwrite(str(lost / f"img{f}.jpg"), np.full((480, 640, 3), 128, np.uint8))
    fails([lost], "face lost at apex frame", "lost")
    # a clip shorter than 2 * eps + 1 frames, and frames outside the input
    fails([folder, "--onset", row.onset, "--offset", row.onset + 5], "needs at least 7", str(folder))
    fails([folder, "--onset", row.offset + 100], f"onset {row.offset + 100} is not a frame of the input")
    fails([folder, "--offset", 9999], "offset 9999 is not a frame")
    fails([folder, "--onset", row.offset, "--offset", row.onset], f"offset {row.onset} comes before onset")
    fails([folder, "--apex", 9999], "apex 9999 is not a frame")
    # a corrupt JPEG in the clip is named
    broken = shutil.copytree(folder, tmp_path / "broken")
    (broken / f"img{row.onset + 4}.jpg").write_bytes((broken / f"img{row.onset + 4}.jpg").read_bytes()[:500])
    fails([broken], "corrupt JPEG", f"img{row.onset + 4}.jpg")


def test_bad_models_are_refused_clearly(final_run, tmp_path):
    good = final_run / "tiny" / "final" / "model.pt"
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(PredictError, match="text.pt: not a mer model file"):
        load_model(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")  # a torch file, not mer's
    with pytest.raises(PredictError, match="other.pt: not a mer model file"):
        load_model(tmp_path / "other.pt")
    ckpt = torch.load(good, weights_only=True)
    torch.save({**ckpt, "format": "mer-model/0"}, tmp_path / "old.pt")
    with pytest.raises(PredictError, match="old.pt: model format 'mer-model/0'.*reads 'mer-model/1'"):
        load_model(tmp_path / "old.pt")
    no_format = {k: v for k, v in ckpt.items() if k != "format"}
    torch.save(no_format, tmp_path / "older.pt")
    with pytest.raises(PredictError, match="model format None"):
        load_model(tmp_path / "older.pt")
    # weights_only: a file that would run code when unpickled is not loaded
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"model": Evil(), "config": {}}, f, protocol=2)
    with pytest.raises(PredictError, match="evil.pt: not a mer model file"):
        load_model(tmp_path / "evil.pt")
    # preprocessing the input cannot meet
    per_frame = json.loads(json.dumps(ckpt["config"]))
    per_frame["preprocess"]["landmarks"]["per_frame"] = True
    torch.save({**ckpt, "config": per_frame}, tmp_path / "per_frame.pt")
    with pytest.raises(PredictError, match="per_frame"):
        load_model(tmp_path / "per_frame.pt")
    annotated = {**ckpt["config"], "frame": "annotated"}
    torch.save({**ckpt, "config": annotated}, tmp_path / "annotated.pt")
    row = next(clips(final_run, "01").itertuples())
    with pytest.raises(PredictError, match="--apex"):
        predict_clip(clip_dir(final_run, row), tmp_path / "annotated.pt")
    pred = predict_clip(clip_dir(final_run, row), tmp_path / "annotated.pt", apex=row.apex)
    assert pred.apex == pred.frame == row.apex
    wrong = {**ckpt["config"], "backbone": "resnet18"}
    torch.save({**ckpt, "config": wrong}, tmp_path / "wrong.pt")
    with pytest.raises(PredictError, match="weights do not fit resnet18"):
        load_model(tmp_path / "wrong.pt")


def test_a_video_too_large_to_hold_is_refused_by_name(tmp_path):
    from mer.datasets.frames import FrameError, VideoClip

    frames = [np.full((48, 64, 3), k, np.uint8) for k in range(10)]
    video = write_video(frames, tmp_path / "long.mp4")
    assert len(VideoClip(video)) == 10
    with pytest.raises(FrameError, match=r"long.mp4: more than 4 frames of 64x48.*cut it into parts"):
        VideoClip(video, max_bytes=5 * 48 * 64 * 3 - 1)


def test_model_files_of_an_experiment_trained_over_seeds(tmp_path):
    from mer.predict import model_files

    for s in (0, 1):
        for subject in ("01", "02"):
            (tmp_path / f"seed{s}" / "folds" / subject).mkdir(parents=True)
            (tmp_path / f"seed{s}" / "folds" / subject / "model.pt").write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in model_files(tmp_path)] == [
        "seed0/folds/01/model.pt", "seed0/folds/02/model.pt", "seed1/folds/01/model.pt", "seed1/folds/02/model.pt"]
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "model.pt").write_bytes(b"")
    assert model_files(tmp_path) == [tmp_path / "final" / "model.pt"]
    with pytest.raises(PredictError, match=r"\[seedS/\]folds"):
        model_files(tmp_path / "seed0" / "folds")
