"""`mer predict`: the micro-expression in a user's own clip, from a model the workflow trained.

A clip goes through the library's per-clip steps that made the training crops, with the settings stored in the
model file (the experiment's `preprocess` entry): dlib landmarks on the onset frame (mer.preprocess.landmarks),
apex spotting over onset..offset (mer.preprocess.apex.spot_clip), the face check at the spotted apex
(apex.check_face), the frame choice (apex.frame_choices), the aligned crops (mer.preprocess.crops.crop_clip),
the model's input from them (mer.train.data.clip_input), then its test-time input (mer.train.augment.Inputs)
and softmax (mer.train.inference.predict).

A model is a final model (train_final: results/{experiment}/final/model.pt) or the LOSO fold models of an
experiment as an ensemble (the mean of their probabilities).
"""

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mer.datasets.frames import FrameError, open_clip
from mer.preprocess.apex import FRAMES, check_face, frame_choices, spot_clip
from mer.preprocess.crops import crop_clip
from mer.preprocess.landmarks import detect, landmark_row
from mer.train import modelfile
from mer.train.augment import Inputs, to_device
from mer.train.data import clip_input, prepare
from mer.train.inference import predict
from mer.train.models import build_model
from mer.train.settings import device_settings, resolve


class PredictError(ValueError):
    """Bad input or model; the message names the input and the frame. `mer predict` exits with status 2."""


@dataclass
class Model:
    """One network or an ensemble, with the experiment config it was trained with."""
    nets: list  # torch modules in eval mode; more than one: an ensemble
    cfg: dict  # the experiment's config (mer.train.settings.resolve), with its `preprocess` entry
    paths: list  # the model.pt files
    device: torch.device
    inputs: Inputs = field(repr=False)
    settings: dict = field(repr=False)  # device settings (mer.train.settings.device_settings)

    @property
    def classes(self):
        return list(self.cfg["classes"])


def model_files(path, ensemble=False):
    """The model.pt files that `path` names (mer.train.modelfile.model_files); a PredictError if none."""
    with _model_errors():
        return modelfile.model_files(path, ensemble)


@contextlib.contextmanager
def _model_errors():
    """A model file's error (mer.train.modelfile.ModelFileError) as a PredictError."""
    try:
        yield
    except modelfile.ModelFileError as e:
        raise PredictError(str(e)) from None


def load_model(path, device=None, ensemble=False):
    """A Model from a model.pt, a final/ folder or an experiment folder (see model_files).
    device: default cuda when there is one, else the CPU."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    files = model_files(path, ensemble)
    configs, nets = [], []
    for f in files:
        with _model_errors():
            ckpt = modelfile.read(f)
            c = resolve(ckpt["config"])
            modelfile.check_supported(c, f)
        if c["frame"] not in FRAMES:
            raise PredictError(f"{f}: unknown frame choice {c['frame']!r}")
        # Built on the meta device (no memory and no random init, a fraction of a plain build's time), then
        # given the file's tensors; anything the file did not fill would stay meta, so that is checked.
        with torch.device("meta"):
            net = build_model(c["backbone"], len(c["classes"]))
        try:
            net.load_state_dict(ckpt["model"], assign=True)
        except RuntimeError as e:
            raise PredictError(f"{f}: weights do not fit {c['backbone']} ({str(e).splitlines()[0]})") from None
        if any(t.is_meta for t in [*net.parameters(), *net.buffers()]):
            raise PredictError(f"{f}: the file leaves some of {c['backbone']}'s tensors unset")
        configs.append(c)
        nets.append(net)
    c = configs[0]
    for f, other in zip(files[1:], configs[1:], strict=True):
        if modelfile.contract(other) != modelfile.contract(c):
            raise PredictError(f"{f}: not the same kind of model as {files[0]} (classes, input or preprocessing "
                               "differ): an ensemble needs models of one experiment")
    settings = device_settings(c, device)
    for k, net in enumerate(nets):
        net = net.to(device).eval()
        nets[k] = net.to(memory_format=torch.channels_last) if settings["channels_last"] else net
    inputs = Inputs(nets[0].pretrained_cfg["mean"], nets[0].pretrained_cfg["std"], c["augment"]["grayscale"],
                    device, c["input"])
    return Model(nets, c, files, device, inputs, settings)


@dataclass
class Prediction:
    input: str
    onset: int  # frame numbers of the input (a video's from 0; a folder's from its names where they hold them)
    offset: int
    apex_spotted: int  # argmax of M_i (mer.preprocess.apex)
    apex: int  # the apex used: the spotted one, or the one given
    frame: int  # the frame whose crop the model saw (the model's frame choice: apex, mid, onset)
    label: str
    probabilities: dict  # class -> probability (an ensemble's: the mean over its models)
    curve: list  # M_i for frames onset..offset
    face_shift: float  # eye shift between the onset and the apex frame, in inter-ocular distances
    model: list  # model.pt paths
    seconds: float  # this clip's preprocessing and inference, model load not included
    crops: dict = field(repr=False, default_factory=dict)  # 'onset' and 'frame' crops (RGB uint8), not in JSON

    def to_json(self):
        d = {k: v for k, v in self.__dict__.items() if k != "crops"}
        d["model"] = [str(p) for p in self.model]
        d["face_shift"] = None if np.isnan(self.face_shift) else self.face_shift  # not checked: null, not NaN
        return d


def predict_clip(source, model, onset=None, offset=None, apex=None, device=None, ensemble=False, threads=2):
    """The micro-expression of one clip: `source` a video file, a folder of frames or an open clip
    (mer.datasets.frames.open_clip); `model` a Model or what load_model takes. onset, offset: frame numbers (default:
    the whole input); apex: use this apex frame instead of the spotted one. Raises PredictError."""
    t0 = time.perf_counter()
    if not isinstance(model, Model):
        model = load_model(model, device, ensemble)
    try:
        clip = source if hasattr(source, "numbers") else open_clip(source)
        return _predict(clip, model, onset, offset, apex, threads, t0)
    except FrameError as e:
        raise PredictError(str(e)) from None


def _predict(clip, model, onset, offset, apex, threads, t0):
    c, p = model.cfg, model.cfg["preprocess"]
    eps = int(p["apex"]["eps"])
    name, frames = clip.name, clip.numbers
    onset = frames[0] if onset is None else int(onset)
    offset = frames[-1] if offset is None else int(offset)
    for what, f in (("onset", onset), ("offset", offset), ("apex", apex)):
        if f is not None and f not in clip:
            raise PredictError(f"{name}: {what} {f} is not a frame of the input (frames {frames[0]}..{frames[-1]})")
    first, last = clip.position(onset), clip.position(offset)
    if last < first:
        raise PredictError(f"{name}: offset {offset} comes before onset {onset}")
    if last - first + 1 < 2 * eps + 1:
        raise PredictError(f"{name}: frames {onset}..{offset} are {last - first + 1} frames; apex spotting "
                           f"with eps {eps} needs at least {2 * eps + 1}")
    if apex is not None and not onset <= apex <= offset:
        raise PredictError(f"{name}: apex {apex} lies outside onset..offset {onset}..{offset}")
    if c["frame"] == "annotated" and apex is None:
        raise PredictError(f"{name}: the model was trained on the coding sheet's apex frames (frame: annotated): "
                           "give the apex frame (--apex N)")
    window = frames[first: last + 1]

    spotting = _spot(clip, window, p, threads)
    if spotting is None:
        raise PredictError(f"{name}: no face found in the onset frame {onset}")
    found, _, _, curve, k = spotting
    mark = landmark_row({"frame": onset}, found)
    points, lm, a = found[1], p["landmarks"], p["apex"]
    spotted = window[k]
    shift = float("nan")
    if a["max_face_shift"] is not None:
        problem, shift = check_face(clip.gray(spotted), mark, spotted, a["max_face_shift"], int(lm["upsample"]))
        if problem:
            raise PredictError(f"{name}: {problem}")
    # A given apex stands for the spotted one and the sheet's alike (the model's frame choice then uses it).
    apex = spotted if apex is None else int(apex)
    frame = frame_choices(window, apex, apex)[c["frame"]]

    # The aligned crops at the crop cache's size and the model's input from them, as the workflow makes them.
    full = crop_clip({"onset": onset, c["frame"]: frame}, clip.color, points, int(p["crop"]["size"]),
                     p["crop"]["align"])
    crops = {k: prepare(full[f], int(c["size"])) for k, f in (("onset", "onset"), ("frame", c["frame"]))}
    x = to_device(clip_input(c, full, p.get("flow"))[None], model.device)
    probs = np.mean([predict(net, x, model.inputs, model.settings)[0] for net in model.nets], axis=0)
    classes = model.classes
    return Prediction(
        input=name, onset=onset, offset=offset, apex_spotted=int(spotted), apex=int(apex), frame=int(frame),
        label=classes[int(np.argmax(probs))], probabilities={k: float(v) for k, v in zip(classes, probs, strict=True)},
        curve=[float(v) for v in curve], face_shift=float(shift), model=model.paths,
        seconds=round(time.perf_counter() - t0, 3), crops=crops,
    )


def _spot(clip, span, p, threads):
    """Landmarks once, on the span's first frame (mer.preprocess.landmarks.detect_clip without its retries), then apex
    spotting over the span as mer.preprocess.apex.spot_subject does it for a dataset's clip, with the model's settings
    `p` (its `preprocess`). Returns (detect's result, grey stack, region boxes, M_i curve, apex index in the
    span), or None if the first frame has no face."""
    lm, a = p["landmarks"], p["apex"]
    found = detect(clip.gray(span[0]), lm.get("model"), int(lm["upsample"]))
    if found is None:
        return None
    stack = clip.gray_stack(span, int(a["reduce"]), threads)
    curve, k, boxes = spot_clip(stack, found[1], eps=int(a["eps"]), use_offset=a["use_offset"],
                                region_scale=a["region_scale"], reduce=int(a["reduce"]))
    return found, stack, boxes, curve, k


def spot_windows(source, model, window, stride=None, threshold=2.5, rest=0.8, threads=2):
    """A simple detector for a long input, not MEGC spotting: windows of `window` frames every `stride`
    (default window // 4) are spotted as clips. A window is a candidate where
    - its peak M_i exceeds `threshold` (M is about 2 where nothing moves: each of its two terms is then a
      ratio of noise to noise), and
    - it holds a whole expression, starting and ending at rest: its first and last frames differ by less
      than `rest` times the smaller difference between the apex and either end (region means of |F_a - F_b|).
      A window that ends mid-expression fails this; so does one where nothing moves (all three differ by
      noise alone), whatever a video codec's keyframes do to M_i.
    Of candidates whose apexes lie within window / 2 frames of each other the higher peak stays, and each is
    predicted as the clip start..end. Returns (table of start, apex, end, peak_m, rest, label, probability,
    reason; the Predictions). A window without a face in its first frame is skipped, and said so."""
    clip = source if hasattr(source, "numbers") else open_clip(source)
    if not isinstance(model, Model):
        model = load_model(model)
    p = model.cfg["preprocess"]
    eps, frames = int(p["apex"]["eps"]), clip.numbers
    window, stride = int(window), int(stride or max(1, window // 4))
    if window < 2 * eps + 1 or window > len(frames):
        raise PredictError(f"{clip.name}: window {window} must hold {2 * eps + 1} to {len(frames)} frames")
    starts = list(range(0, len(frames) - window + 1, stride))
    if starts[-1] != len(frames) - window:
        starts.append(len(frames) - window)  # the input's end gets a window too
    candidates, skipped = [], []
    for s in starts:
        span = frames[s: s + window]
        spotting = _spot(clip, span, p, threads)
        if spotting is None:
            skipped.append(dict(start=span[0], end=span[-1], reason=f"no face found in frame {span[0]}"))
            continue
        _, stack, boxes, curve, k = spotting
        ends = _region_change(stack, boxes, 0, -1) / min(_region_change(stack, boxes, k, 0),
                                                           _region_change(stack, boxes, k, -1))
        if curve[k] > threshold and ends < rest:
            candidates.append(dict(start=span[0], apex=span[k], end=span[-1], peak_m=float(curve[k]),
                                   rest=float(ends)))
    kept = []
    for cand in sorted(candidates, key=lambda d: -d["peak_m"]):
        if all(abs(clip.position(cand["apex"]) - clip.position(o["apex"])) > window / 2 for o in kept):
            kept.append(cand)
    rows, predictions = [], []
    for cand in sorted(kept, key=lambda d: d["start"]):
        try:
            pred = predict_clip(clip, model, cand["start"], cand["end"], threads=threads)
        except PredictError as e:  # the face check at the apex, say: one window, not the whole input
            rows.append({**cand, "label": "", "probability": float("nan"), "reason": str(e)})
            continue
        predictions.append(pred)
        rows.append({**cand, "apex": pred.apex, "label": pred.label,
                     "probability": pred.probabilities[pred.label], "reason": ""})
    rows += [{**s, "apex": None, "peak_m": float("nan"), "rest": float("nan"), "label": "",
              "probability": float("nan")} for s in skipped]
    table = pd.DataFrame(rows, columns=["start", "apex", "end", "peak_m", "rest", "label", "probability",
                                        "reason"])
    table["apex"] = table["apex"].astype("Int64")
    return table.sort_values("start", kind="stable").reset_index(drop=True), predictions


def _region_change(stack, boxes, a, b):
    """Mean |F_a - F_b| over the pixels of the spotting regions (grey levels, > 0)."""
    diffs = [np.abs(stack[a, y0:y1, x0:x1].astype(np.float32) - stack[b, y0:y1, x0:x1]).mean()
             for x0, y0, x1, y1 in boxes]
    return max(float(np.mean(diffs)), 1e-6)


def plot_prediction(pred, path):
    """A picture for a person: the onset and model-frame crops side by side, the M_i curve with the apex
    marked, and the class probabilities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mer.io import atomic_path

    fig, (ax_img, ax_curve, ax_prob) = plt.subplots(1, 3, figsize=(12, 3.4),
                                                    gridspec_kw=dict(width_ratios=[1.6, 1.6, 1.2]))
    ax_img.imshow(np.hstack([pred.crops["onset"], pred.crops["frame"]]))
    ax_img.set_title(f"onset {pred.onset}  |  frame {pred.frame}", fontsize=10)
    ax_img.axis("off")
    frames = np.arange(pred.onset, pred.onset + len(pred.curve))
    ax_curve.plot(frames, pred.curve, color="0.3", lw=1.2)
    ax_curve.axvline(pred.apex_spotted, color="tab:red", ls="--", lw=1, label=f"spotted apex {pred.apex_spotted}")
    if pred.apex != pred.apex_spotted:
        ax_curve.axvline(pred.apex, color="tab:blue", ls=":", lw=1, label=f"given apex {pred.apex}")
    ax_curve.set_xlabel("frame")
    ax_curve.set_ylabel("$M_i$")
    ax_curve.set_title("apex spotting", fontsize=10)
    ax_curve.legend(fontsize=8, loc="upper left")
    names = list(pred.probabilities)
    values = [pred.probabilities[k] for k in names]
    colors = ["tab:red" if k == pred.label else "0.6" for k in names]
    ax_prob.barh(names[::-1], values[::-1], color=colors[::-1])
    ax_prob.set_xlim(0, 1)
    ax_prob.set_xlabel("probability")
    ax_prob.set_title(f"{pred.label} ({pred.probabilities[pred.label]:.2f})", fontsize=10)
    fig.suptitle(Path(pred.input).name, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
