"""The model file, model.pt: what a trained fold or final model holds, written and read back.

A dict of tensors and plain Python only, so that torch.load(weights_only=True) reads it without running
code: `format` (MODEL_FORMAT), `model` and `optimizer` (state dicts on the CPU), `epoch` (completed),
`config` (the experiment's config as given, its `preprocess` entry included), `held_out` (the fold's
subject, or "final"), `history` (per-epoch metrics). A training checkpoint has the same layout.
"""

import json
from pathlib import Path

import torch

import mer
from mer.io import atomic_path

# The `format` entry of every model.pt and model.json this version writes; mer predict reads only this one.
MODEL_FORMAT = "mer-model/1"


class ModelFileError(ValueError):
    """A file that is not a model file this version reads; the message names the file."""


def state(model_state, optimizer_state, epoch, cfg, held_out, history):
    """Checkpoint and model.pt content: tensors and plain Python only, so torch.load(weights_only=True) reads
    it. `format` tells mer predict which layout it is (MODEL_FORMAT)."""
    return dict(format=MODEL_FORMAT, model=cpu(model_state), optimizer=cpu(optimizer_state), epoch=int(epoch),
                config=plain(cfg), held_out=str(held_out), history=history)


def plain(cfg):
    """cfg as plain dict/list/str/number, whatever mapping came in (Snakemake's config, say)."""
    return json.loads(json.dumps(cfg))


def cpu(obj):
    """Tensors (in nested dicts, lists and tuples) detached and on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(cpu(v) for v in obj)
    return obj


def save(path, content):
    """Write `content` (state's dict) to `path` atomically."""
    with atomic_path(path) as tmp:
        torch.save(content, tmp)


def read(path):
    """A model.pt's content, checked to be one this version of mer wrote (torch.load with weights_only)."""
    try:
        # mmap: only what is used is read (the weights, not Adam's moments: a third of the file)
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # a pickle of other objects, a zip of something else, text, ...: all the same to us
        raise ModelFileError(f"{path}: not a mer model file (torch.load failed: {type(e).__name__})") from None
    if not isinstance(content, dict) or not {"model", "config"} <= set(content):
        raise ModelFileError(f"{path}: not a mer model file (no 'model' and 'config' entries)")
    if content.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: model format {content.get('format')!r}, but mer {mer.__version__} reads "
                             f"{MODEL_FORMAT!r}: rerun the workflow (train_fold or train_final) with this version")
    return content


def model_files(path, ensemble=False):
    """The model.pt files that `path` names: a file; a folder holding model.pt; an experiment folder
    (its final/model.pt, or with ensemble=True or no final model, every folds/*/model.pt, and for an
    experiment trained over `seeds` every seed's: seed*/folds/*/model.pt)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ModelFileError(f"model not found: {path}")
    if (path / "model.pt").is_file() and not ensemble:
        return [path / "model.pt"]
    if (path / "final" / "model.pt").is_file() and not ensemble:
        return [path / "final" / "model.pt"]
    folds = sorted(path.glob("folds/*/model.pt")) or sorted(path.glob("seed*/folds/*/model.pt"))
    if not folds:
        raise ModelFileError(f"no model in {path}: expected model.pt, final/model.pt or [seedS/]folds/*/model.pt")
    return folds


def check_supported(c, path):
    """A ModelFileError if a clip cannot be prepared the way this model's training crops were made; c: the
    file's config with its defaults filled in (mer.train.settings.resolve)."""
    p = c.get("preprocess")
    if not p:
        raise ModelFileError(f"{path}: the model holds no preprocessing settings (config 'preprocess')")
    if c.get("input", "frame") == "flow" and "flow" not in p:
        raise ModelFileError(f"{path}: a flow model without its flow settings (config 'preprocess.flow')")
    if p["landmarks"].get("per_frame"):
        raise ModelFileError(f"{path}: trained with landmarks.per_frame: true (landmarks on every frame); mer "
                             "predict detects them once per clip, as the default workflow does")


def contract(c):
    """What models must share to be averaged as an ensemble: classes, input and how a clip becomes it."""
    keys = ("classes", "size", "input", "frame", "preprocess", "backbone")
    return json.dumps({k: c.get(k) for k in keys} | {"grayscale": c["augment"]["grayscale"]}, sort_keys=True)
