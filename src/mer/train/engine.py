"""Train and test one leave-one-subject-out fold: fit on every other subject, predict the held-out one.

No model selection touches the held-out subject: its predictions come from the final-epoch weights.

Checkpoint and resume: every `checkpoint_every` epochs the model, optimizer, completed epoch count and
per-epoch metrics go to out_dir/checkpoint.pt (atomically). A rerun of a killed job resumes from it.
Resume is exact without saving RNG state because nothing random carries over between epochs: at
the start of epoch e the model RNG (dropout) is reseeded from (seed, e), and the epoch's shuffle and
each sample's flip and rotation come from a generator seeded from (seed, e) (mer.train.augment). With
deterministic=True on CPU a resumed run ends with weights equal to an uninterrupted one.

Data path: the task's crops go to the device once as uint8; each step gathers its batch by index and
augments it there (mer.train.augment), the same code as a fused group of folds runs (mer.train.fused).
After model.pt is written, checkpoint.pt is deleted (it holds the same weights plus Adam's state,
~300 MB for SE-ResNeXt-50, per fold).
"""

import contextlib
import json
import os
import platform
import random
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import timm
import torch
import torchvision
from tqdm import tqdm

import mer
from mer.datasets.catalog import split_fold
from mer.io import atomic_path, write_csv, write_json, write_tsv
from mer.train.augment import Inputs, draw_epoch, to_device
from mer.train.data import (
    AUDIT_FILE,
    epoch_seed,
    fold_subjects,
    held_out_mask,
    input_datasets,
    load_samples,
    subject_key,
)
from mer.train.inference import predict
from mer.train.losses import build_loss
from mer.train.modelfile import MODEL_FORMAT, save, state
from mer.train.models import build_model
from mer.train.settings import resolve, run_settings

# Settings that cannot change the trained weights; a checkpoint written under other values still resumes.
RUNTIME_KEYS = ("checkpoint_every", "fold_group", "cuda_graph")


def fold_seed(seed, held_out):
    """Seed of one experiment's fold: seed * 1000 + subject number (crc32 of the id if not a number). The
    subject's own id: 'casme2-01' seeds as '01' did before folds carried their dataset."""
    key = subject_key(split_fold(str(held_out))[1])
    return int(seed) * 1000 + (int(key) if key.isdigit() else zlib.crc32(key.encode()) % 1000)


@dataclass
class Fold:
    """One LOSO fold: indices into the task's samples (load_samples), and where its files go."""
    held_out: str
    seed: int
    train: np.ndarray  # int64 indices of the training samples
    val: np.ndarray  # inner validation samples (training subjects held back; empty unless inner_val)
    test: np.ndarray  # the held-out subject's samples
    out_dir: Path


# held_out of the final model (train_final): every subject trains, none is held out.
FINAL = "final"


def plan_fold(data, held_out, c, out_dir):
    """The Fold of `held_out` over `data` (a Split of every sample of the task); held_out FINAL: every
    sample trains (an empty test set). With c['test_datasets'] (cross-dataset), held_out is a dataset:
    its samples are the test set and the samples of c['datasets'] train."""
    seed = fold_seed(c["seed"], held_out)
    trains = np.ones(len(data.subjects), dtype=bool)
    if c.get("test_datasets"):  # cross-dataset: train on `datasets`, test on the held-out dataset
        dataset = np.array([split_fold(s)[0] for s in data.subjects])
        trains = np.isin(dataset, list(c["datasets"]))
    if held_out == FINAL:
        is_test = np.zeros(len(data.subjects), dtype=bool)
    elif c.get("test_datasets"):
        is_test = dataset == held_out
        if not is_test.any():
            raise ValueError(f"test dataset {held_out!r} has no samples for task {c['task']!r}")
    else:
        is_test = held_out_mask(data, held_out, c["task"])
    train = np.flatnonzero(trains & ~is_test)
    train, val = _inner_val_split(train, [data.subjects[i] for i in train], float(c["inner_val"]), seed)
    if len(train) == 0:
        raise ValueError(f"no training samples left without subject {held_out!r}")
    tested = {subject_key(data.subjects[i]) for i in np.flatnonzero(is_test)}
    assert not tested & {subject_key(data.subjects[i]) for i in train}, "held-out subject in train"
    return Fold(str(held_out), seed, train, val, np.flatnonzero(is_test), Path(out_dir))


def epoch_batches(fold, epoch, c):
    """The fold's batches of one epoch: sample indices (steps, b) into the task's samples, flip, angle."""
    order, flip, angle = draw_epoch(len(fold.train), fold.seed, epoch, int(c["batch_size"]),
                                    c["augment"]["hflip"], c["augment"]["rotate"])
    return torch.from_numpy(fold.train)[order], flip, angle


def train_fold(cache_paths, held_out, cfg, out_dir, device="cpu", threads=None, progress=True,
               max_epochs_this_run=None, extra_info=None, audit=True):
    """Train cfg's model without `held_out`, then write model.pt, metrics.csv, predictions.tsv, fold.json.
    held_out FINAL: train on every subject and write model.pt, metrics.csv and model.json (write_final).

    max_epochs_this_run: stop after this many epochs in this call without writing the final outputs,
    as if the job were killed there (for tests of resume). Returns fold.json's content, or None then.
    extra_info: more entries for fold.json (a fused group's record, say).
    audit: also write AUDIT_FILE, the held-out subject's predictions after every epoch (tests turn it off to
    show that it changes nothing else).
    """
    t_start = time.time()
    c = resolve(cfg)
    out_dir, device = Path(out_dir), torch.device(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(int(threads))
    classes, epochs = list(c["classes"]), int(c["epochs"])
    run = run_settings(c, device)
    on_cuda = device.type == "cuda"

    with determinism(bool(c["deterministic"]), warn_only=on_cuda):
        data = load_samples(cache_paths, c["task"], input_datasets(c), classes, resize=c["size"])
        fold = plan_fold(data, held_out, c, out_dir)
        seed = fold.seed
        images, labels = to_device(data.images, device), torch.from_numpy(data.labels).to(device)

        torch.manual_seed(seed)  # weight init
        model = build_model(c["backbone"], len(classes), c["pretrained"], c["drop_rate"]).to(device)
        if run["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        criterion = build_loss(c["loss"], c["gamma"], c["alpha"]).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
        step_model = torch.compile(model) if (c["compile"] and on_cuda) else model
        inputs = Inputs(model.pretrained_cfg["mean"], model.pretrained_cfg["std"], c["augment"]["grayscale"],
                        device, c["input"])

        ckpt_path, start, history, audited = out_dir / "checkpoint.pt", 0, [], []
        if ckpt_path.exists():
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            if same_run(ckpt, cfg, held_out):
                model.load_state_dict(ckpt["model"])
                optimizer.load_state_dict(ckpt["optimizer"])
                start, history = int(ckpt["epoch"]), list(ckpt["history"])[: int(ckpt["epoch"])]
                audited = [r for r in ckpt.get("audit", []) if r["epoch"] <= start]
                log(f"resuming {c['name']} fold {held_out} from {ckpt_path} after epoch {start}")
            else:
                log(f"ignoring {ckpt_path}: written for another config or fold")

        stop = epochs if max_epochs_this_run is None else min(epochs, start + int(max_epochs_this_run))
        for epoch in range(start, stop):  # 0-based; reported as epoch + 1
            torch.manual_seed(epoch_seed(seed, epoch))  # model RNG (dropout), independent of earlier epochs
            batches = [t.to(device) for t in epoch_batches(fold, epoch, c)]
            row = _train_epoch(step_model, images, labels, batches, inputs, criterion, optimizer, run,
                               desc=f"{c['name']} {held_out} {epoch + 1}/{epochs}", progress=progress)
            row = {"epoch": epoch + 1, **row}
            if len(fold.val):
                row.update(val_metrics(predict(model, images[fold.val], inputs, run), data.labels[fold.val],
                                       classes))
            history.append(row)
            write_csv(pd.DataFrame(history), out_dir / "metrics.csv")
            if audit and len(fold.test):
                audited += audit_rows(fold, data, predict(model, images[fold.test], inputs, run), classes, epoch + 1)
                write_tsv(pd.DataFrame(audited), out_dir / AUDIT_FILE)
            log_row(row, c["name"], held_out)
            done = epoch + 1
            if done < epochs and done % int(c["checkpoint_every"]) == 0:
                with atomic_path(ckpt_path) as tmp:
                    torch.save({**state(model.state_dict(), optimizer.state_dict(), done, cfg, held_out, history),
                                "audit": audited}, tmp)
        if stop < epochs:
            return None

    model_state = state(model.state_dict(), optimizer.state_dict(), epochs, cfg, held_out, history)
    extra = dict(compiled=step_model is not model, **(extra_info or {}))
    if held_out == FINAL:
        info = write_final(fold, data, model_state, c, run, extra, time.time() - t_start)
    else:
        probs = predict(model, images[fold.test], inputs, run)
        info = write_fold(fold, data, probs, classes, model_state, c, run, start, extra, time.time() - t_start)
    ckpt_path.unlink(missing_ok=True)
    return info


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


def prediction_table(fold, data, probs, classes):
    """The held-out subject's predictions: subject, filename, y_true, y_pred, prob_<class> per clip."""
    test = fold.test
    return pd.DataFrame({
        "subject": [data.subjects[i] for i in test], "filename": [data.filenames[i] for i in test],
        "y_true": [classes[i] for i in data.labels[test]], "y_pred": [classes[i] for i in probs.argmax(1)],
        **{f"prob_{cls}": probs[:, i] for i, cls in enumerate(classes)},
    })


def audit_rows(fold, data, probs, classes, epoch):
    """One epoch's rows of AUDIT_FILE, as plain Python values (a checkpoint keeps them; resumed and
    uninterrupted runs then write the same text)."""
    return [{"epoch": int(epoch), **r} for r in prediction_table(fold, data, probs, classes).to_dict("records")]


def write_fold(fold, data, probs, classes, model_state, c, run, start, extra, seconds):
    """A finished fold's predictions.tsv, model.pt and, last, fold.json (metrics.csv is written per epoch).

    start: the epoch this run resumed from; extra: more fold.json entries."""
    test = fold.test
    write_tsv(prediction_table(fold, data, probs, classes), fold.out_dir / "predictions.tsv")
    save(fold.out_dir / "model.pt", model_state)
    epochs = int(c["epochs"])
    info = dict(
        held_out=fold.held_out, train_subjects=fold_subjects(data.subjects[i] for i in fold.train),
        val_subjects=fold_subjects(data.subjects[i] for i in fold.val), n_train=len(fold.train),
        n_val=len(fold.val), n_test=len(test), epochs_run=epochs, resumed_from_epoch=start,
        epochs_this_run=epochs - start, seed=fold.seed, device=str(run["device"]), amp_bf16=run["amp"],
        channels_last=run["channels_last"], deterministic=bool(c["deterministic"]),
        reproducibility=reproducibility(run["device"], bool(c["deterministic"])),
        threads=torch.get_num_threads(), versions=versions(), seconds=round(seconds, 3), **extra,
    )
    write_json(info, fold.out_dir / "fold.json")
    return info


def versions():
    return dict(mer=mer.__version__, python=platform.python_version(), torch=torch.__version__,
                torchvision=torchvision.__version__, timm=timm.__version__, numpy=np.__version__)


def write_final(fold, data, model_state, c, run, extra, seconds):
    """The final model's model.pt and, last, model.json: what `mer predict` needs to prepare a clip as the
    training crops were (classes, input size and kind, frame choice, preprocessing settings) and what a user
    should know of it (training samples, versions; the LOSO scores come in `extra`)."""
    save(fold.out_dir / "model.pt", model_state)
    info = dict(
        format=MODEL_FORMAT, experiment=c["name"], backbone=c["backbone"], task=c["task"],
        classes=list(c["classes"]), input=c["input"], frame=c["frame"], input_size=int(c["size"]),
        grayscale=bool(c["augment"]["grayscale"]), preprocess=c.get("preprocess"),
        n_train=len(fold.train), n_val=len(fold.val),
        train_subjects=fold_subjects(data.subjects[i] for i in fold.train),
        train_per_class={cls: int((data.labels[fold.train] == i).sum()) for i, cls in enumerate(c["classes"])},
        epochs=int(c["epochs"]), seed=fold.seed, device=str(run["device"]), versions=versions(),
        seconds=round(seconds, 3), **extra,
    )
    write_json(info, fold.out_dir / "model.json")
    return info


def _train_epoch(model, images, labels, batches, inputs, criterion, optimizer, run, desc, progress):
    """One pass over the epoch's batches (device tensors); returns mean loss, accuracy, images/s, seconds."""
    device, amp, channels_last = run["device"], run["amp"], run["channels_last"]
    order, flip, angle = batches
    model.train()
    # sums stay on the device: reading them every step would wait for the GPU each batch
    loss_sum, correct, n = torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long), 0
    t0 = time.perf_counter()
    bar = tqdm(range(len(order)), desc=desc, disable=not progress, leave=False, file=sys.stderr, mininterval=2.0)
    for step in bar:
        idx = order[step]
        x, y = inputs.train(images[idx], flip[step], angle[step]), labels[idx]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
            loss = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        n += len(y)
        if progress and step % 20 == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / n:.4f}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    n = max(n, 1)
    return dict(loss=loss_sum.item() / n, train_acc=correct.item() / n, images_per_s=n / seconds,
                seconds=seconds)


def val_metrics(probs, labels, classes):
    """Inner validation accuracy and UF1 of one epoch."""
    from mer.metrics import classification_metrics  # here: scikit-learn's import (1 s) stays out of mer predict

    m = classification_metrics([classes[i] for i in labels], [classes[i] for i in probs.argmax(1)], classes)
    return dict(val_acc=m["accuracy"], val_uf1=m["uf1"])


def log_row(row, name, held_out):
    log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        + f"  [{name} held out {held_out}]")


def same_run(ckpt, cfg, held_out):
    """Was the checkpoint written by this experiment (ignoring RUNTIME_KEYS) for this fold?"""
    return subject_key(ckpt.get("held_out", "")) == subject_key(held_out) and same_config(ckpt, cfg)


def same_config(ckpt, cfg):
    """Does the checkpoint's config equal cfg, ignoring RUNTIME_KEYS?"""
    def norm(d):
        return json.dumps({k: v for k, v in d.items() if k not in RUNTIME_KEYS}, sort_keys=True, default=str)

    return norm(ckpt.get("config", {})) == norm(cfg)


def _inner_val_split(train, subjects, fraction, seed):
    """Hold `fraction` of the training subjects (at least one, never all) out as an inner validation set.

    train: sample indices; subjects: their subject ids. Returns (train, val) index arrays.
    """
    if fraction <= 0:
        return train, train[:0]
    distinct = fold_subjects(subjects)
    k = min(max(1, round(fraction * len(distinct))), len(distinct) - 1)
    chosen = set(random.Random(seed).sample(distinct, k)) if k > 0 else set()
    is_val = np.array([s in chosen for s in subjects], dtype=bool)
    return train[~is_val], train[is_val]


@contextlib.contextmanager
def determinism(on, warn_only=False):
    """Deterministic kernels while training (restored after).

    On CUDA `warn_only`: adaptive_avg_pool2d's backward (ResNet's global pool) has no deterministic
    CUDA kernel and would otherwise stop the run with an error; it warns instead.
    """
    prev = (torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.use_deterministic_algorithms(on, warn_only=warn_only)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = on, not on
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[2], prev[3]


def log(msg):
    print(msg, file=sys.stderr, flush=True)
