"""A trained fold's files: predictions.tsv, the leakage audit's per-epoch predictions, model.pt, fold.json;
and a final model's model.pt and model.json (what `mer predict` reads)."""

import json
import platform

import numpy as np
import pandas as pd
import timm
import torch
import torchvision

import mer
from mer.io import atomic_path, write_json, write_tsv
from mer.train.data import fold_subjects

# The `format` entry of every model.pt and model.json this version writes; mer predict reads only this one.
MODEL_FORMAT = "mer-model/1"


def prediction_table(fold, data, probs, classes):
    """The held-out subject's predictions: subject, filename, y_true, y_pred, prob_<class> per clip."""
    test = fold.test
    return pd.DataFrame({
        "subject": [data.subjects[i] for i in test], "filename": [data.filenames[i] for i in test],
        "y_true": [classes[i] for i in data.labels[test]], "y_pred": [classes[i] for i in probs.argmax(1)],
        **{f"prob_{cls}": probs[:, i] for i, cls in enumerate(classes)},
    })


def audit_rows(fold, data, probs, classes, epoch):
    """One epoch's rows of the leakage audit (AUDIT_FILE), as plain Python values (a checkpoint keeps them;
    resumed and uninterrupted runs then write the same text)."""
    return [{"epoch": int(epoch), **r} for r in prediction_table(fold, data, probs, classes).to_dict("records")]


def reproducibility(device, deterministic):
    """What a rerun of this fold reproduces, as fold.json states it."""
    if torch.device(device).type == "cpu":
        return ("bit-identical when rerun on this machine with the same thread count and package versions "
                "(tested); another CPU may round differently (oneDNN picks kernels by CPU features), so "
                "results differ across machines within the run-to-run spread")
    return ("not bit-identical on CUDA: "
            + ("cuDNN and cuBLAS run deterministic kernels, but the global average pool's backward has no "
               "deterministic CUDA kernel (atomic adds), so reruns agree to rounding only"
               if deterministic else
               "cuDNN picks its fastest kernels per run (train.deterministic: false), so reruns agree to "
               "rounding only"))


def versions():
    return dict(mer=mer.__version__, python=platform.python_version(), torch=torch.__version__,
                torchvision=torchvision.__version__, timm=timm.__version__, numpy=np.__version__)


def write_fold(fold, data, probs, classes, model_state, c, settings, start, extra, seconds):
    """A finished fold's predictions.tsv, model.pt and, last, fold.json (metrics.csv is written per epoch).

    settings: the device settings it trained with; start: the epoch this run resumed from; extra: more
    fold.json entries."""
    test = fold.test
    write_tsv(prediction_table(fold, data, probs, classes), fold.out_dir / "predictions.tsv")
    save_model(model_state, fold.out_dir / "model.pt")
    epochs = int(c["epochs"])
    info = dict(
        held_out=fold.held_out, train_subjects=fold_subjects(data.subjects[i] for i in fold.train),
        val_subjects=fold_subjects(data.subjects[i] for i in fold.val), n_train=len(fold.train),
        n_val=len(fold.val), n_test=len(test), epochs_run=epochs, resumed_from_epoch=start,
        epochs_this_run=epochs - start, seed=fold.seed, device=str(settings["device"]), amp_bf16=settings["amp"],
        channels_last=settings["channels_last"], deterministic=bool(c["deterministic"]),
        reproducibility=reproducibility(settings["device"], bool(c["deterministic"])),
        threads=torch.get_num_threads(), versions=versions(), seconds=round(seconds, 3), **extra,
    )
    write_json(info, fold.out_dir / "fold.json")
    return info


def write_final(fold, data, model_state, c, settings, extra, seconds):
    """The final model's model.pt and, last, model.json: what `mer predict` needs to prepare a clip as the
    training crops were (classes, input size and kind, frame choice, preprocessing settings) and what a user
    should know of it (training samples, versions; the LOSO scores come in `extra`)."""
    save_model(model_state, fold.out_dir / "model.pt")
    info = dict(
        format=MODEL_FORMAT, experiment=c["name"], backbone=c["backbone"], task=c["task"],
        classes=list(c["classes"]), input=c["input"], frame=c["frame"], input_size=int(c["size"]),
        grayscale=bool(c["augment"]["grayscale"]), preprocess=c.get("preprocess"),
        n_train=len(fold.train), n_val=len(fold.val),
        train_subjects=fold_subjects(data.subjects[i] for i in fold.train),
        train_per_class={cls: int((data.labels[fold.train] == i).sum()) for i, cls in enumerate(c["classes"])},
        epochs=int(c["epochs"]), seed=fold.seed, device=str(settings["device"]), versions=versions(),
        seconds=round(seconds, 3), **extra,
    )
    write_json(info, fold.out_dir / "model.json")
    return info


def save_model(model_state, path):
    with atomic_path(path) as tmp:
        torch.save(model_state, tmp)


def state(model_state, optimizer_state, epoch, cfg, held_out, history):
    """model.pt's content: tensors and plain Python only, so torch.load(weights_only=True) reads it.
    `format` tells mer predict which layout it is (MODEL_FORMAT)."""
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
