"""A trained fold's files: predictions.tsv, the leakage audit's per-epoch predictions, model.pt, fold.json;
and a final model's model.pt and model.json (what `mer predict` reads)."""

import platform

import numpy as np
import pandas as pd
import timm
import torch
import torchvision

import mer
from mer.io import write_json, write_tsv
from mer.train.data import distinct_subjects
from mer.train.modelfile import MODEL_FORMAT, save


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
    save(fold.out_dir / "model.pt", model_state)
    epochs = int(c["epochs"])
    info = dict(
        held_out=fold.held_out, train_subjects=distinct_subjects(data.subjects[i] for i in fold.train),
        val_subjects=distinct_subjects(data.subjects[i] for i in fold.val), n_train=len(fold.train),
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
    save(fold.out_dir / "model.pt", model_state)
    info = dict(
        format=MODEL_FORMAT, experiment=c["name"], backbone=c["backbone"], task=c["task"],
        classes=list(c["classes"]), input=c["input"], frame=c["frame"], input_size=int(c["size"]),
        grayscale=bool(c["augment"]["grayscale"]), preprocess=c.get("preprocess"),
        n_train=len(fold.train), n_val=len(fold.val),
        train_subjects=distinct_subjects(data.subjects[i] for i in fold.train),
        train_per_class={cls: int((data.labels[fold.train] == i).sum()) for i, cls in enumerate(c["classes"])},
        epochs=int(c["epochs"]), seed=fold.seed, device=str(settings["device"]), versions=versions(),
        seconds=round(seconds, 3), **extra,
    )
    write_json(info, fold.out_dir / "model.json")
    return info
