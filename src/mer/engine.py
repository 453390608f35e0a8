"""Train and test one leave-one-subject-out fold: fit on every other subject, predict the held-out one.

No model selection touches the held-out subject: its predictions come from the final-epoch weights.

Checkpoint and resume: every `checkpoint_every` epochs the model, optimizer, completed epoch count and
per-epoch metrics go to out_dir/checkpoint.pt (atomically). A rerun of a killed job resumes from it.
Resume is exact without saving RNG state because nothing random carries over between epochs: at
the start of epoch e the model RNG (dropout) is reseeded from (seed, e), and the sampler draws the
shuffle and a per-sample augmentation seed from a generator seeded from (seed, e). With
deterministic=True on CPU a resumed run ends with weights equal to an uninterrupted one.
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
from pathlib import Path

import numpy as np
import pandas as pd
import timm
import torch
import torchvision
from torch.utils.data import DataLoader
from tqdm import tqdm

from mer.data import (
    InMemoryDataset,
    SeededSampler,
    build_transforms,
    epoch_seed,
    fold_subjects,
    load_split,
    subject_key,
)
from mer.io import atomic_path, write_csv, write_json, write_tsv
from mer.losses import build_loss
from mer.metrics import classification_metrics
from mer.models import build_model

REQUIRED = ("name", "backbone", "task", "classes", "frame", "size")
DEFAULTS = dict(
    pretrained="none", drop_rate=0.0, loss="focal", gamma=2.0, alpha=None, optimizer="adam", lr=1e-4,
    weight_decay=0.0, batch_size=2, epochs=100, seed=0, deterministic=False, checkpoint_every=10,
    augment=dict(grayscale=True, hflip=True, rotate=15), num_workers=0, amp="auto", channels_last="auto",
    compile=False, inner_val=0.0,
)
# Settings that cannot change the trained weights; a checkpoint written under other values still resumes.
RUNTIME_KEYS = ("num_workers", "checkpoint_every")


def fold_seed(seed, held_out):
    """Seed of one experiment's fold: seed * 1000 + subject number (crc32 of the id if not a number)."""
    key = subject_key(held_out)
    return int(seed) * 1000 + (int(key) if key.isdigit() else zlib.crc32(key.encode()) % 1000)


def train_fold(cache_paths, held_out, cfg, out_dir, device="cpu", threads=None, progress=True,
               max_epochs_this_run=None):
    """Train cfg's model without `held_out`, then write model.pt, metrics.csv, predictions.tsv, fold.json.

    max_epochs_this_run: stop after this many epochs in this call without writing the final outputs,
    as if the job were killed there (for tests of resume). Returns fold.json's content, or None then.
    """
    t_start = time.time()
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise ValueError(f"experiment config lacks {missing}")
    c = {**DEFAULTS, **cfg, "augment": {**DEFAULTS["augment"], **(cfg.get("augment") or {})}}
    out_dir, device = Path(out_dir), torch.device(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(int(threads))
    if c["optimizer"] != "adam":
        raise ValueError(f"optimizer {c['optimizer']!r} not supported (only 'adam')")
    classes, seed, epochs = list(c["classes"]), fold_seed(c["seed"], held_out), int(c["epochs"])
    on_cuda = device.type == "cuda"
    amp = _auto(c["amp"], on_cuda and torch.cuda.is_bf16_supported())  # bf16 autocast
    channels_last = _auto(c["channels_last"], on_cuda)

    with _determinism(bool(c["deterministic"]), warn_only=on_cuda):
        train, test = load_split(cache_paths, c["task"], c["frame"], held_out, classes, resize=c["size"])
        train, val = _inner_val_split(train, float(c["inner_val"]), seed)
        if len(train) == 0:
            raise ValueError(f"no training samples left without subject {held_out!r}")

        torch.manual_seed(seed)  # weight init
        model = build_model(c["backbone"], len(classes), c["pretrained"], c["drop_rate"]).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        criterion = build_loss(c["loss"], c["gamma"], c["alpha"]).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
        step_model = torch.compile(model) if (c["compile"] and on_cuda) else model

        ckpt_path, start, history = out_dir / "checkpoint.pt", 0, []
        if ckpt_path.exists():
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            if _same_run(ckpt, cfg, held_out):
                model.load_state_dict(ckpt["model"])
                optimizer.load_state_dict(ckpt["optimizer"])
                start, history = int(ckpt["epoch"]), list(ckpt["history"])[: int(ckpt["epoch"])]
                _log(f"resuming {c['name']} fold {held_out} from {ckpt_path} after epoch {start}")
            else:
                _log(f"ignoring {ckpt_path}: written for another config or fold")

        mean, std = model.pretrained_cfg["mean"], model.pretrained_cfg["std"]
        train_tf = build_transforms(True, mean, std, **c["augment"])
        test_tf = build_transforms(False, mean, std, grayscale=c["augment"]["grayscale"])
        sampler = SeededSampler(len(train), seed)
        nw = int(c["num_workers"])
        loader = DataLoader(
            InMemoryDataset(train.images, train.labels, train_tf), batch_size=int(c["batch_size"]),
            sampler=sampler, num_workers=nw, persistent_workers=nw > 0, pin_memory=on_cuda,
            # a last batch of one sample breaks BatchNorm (1 value per channel at 1x1 in the last stage)
            drop_last=len(train) >= int(c["batch_size"]),
        )
        run = dict(device=device, amp=amp, channels_last=channels_last)

        stop = epochs if max_epochs_this_run is None else min(epochs, start + int(max_epochs_this_run))
        for epoch in range(start, stop):  # 0-based; reported as epoch + 1
            torch.manual_seed(epoch_seed(seed, epoch))  # model RNG (dropout), independent of earlier epochs
            sampler.set_epoch(epoch)
            row = _train_epoch(step_model, loader, criterion, optimizer, run,
                               desc=f"{c['name']} {held_out} {epoch + 1}/{epochs}", progress=progress)
            row = {"epoch": epoch + 1, **row}
            if len(val):
                probs = predict(model, val.images, test_tf, run, int(c["batch_size"]))
                m = classification_metrics([classes[i] for i in val.labels],
                                           [classes[i] for i in probs.argmax(1)], classes)
                row.update(val_acc=m["accuracy"], val_uf1=m["uf1"])
            history.append(row)
            write_csv(pd.DataFrame(history), out_dir / "metrics.csv")
            _log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
                 + f"  [{c['name']} held out {held_out}]")
            done = epoch + 1
            if done < epochs and done % int(c["checkpoint_every"]) == 0:
                with atomic_path(ckpt_path) as tmp:
                    torch.save(_state(model, optimizer, done, cfg, held_out, history), tmp)
        if stop < epochs:
            return None

    probs = predict(model, test.images, test_tf, run, int(c["batch_size"]))
    pred = pd.DataFrame({
        "subject": test.subjects, "filename": test.filenames,
        "y_true": [classes[i] for i in test.labels], "y_pred": [classes[i] for i in probs.argmax(1)],
        **{f"prob_{cls}": probs[:, i] for i, cls in enumerate(classes)},
    })
    write_tsv(pred, out_dir / "predictions.tsv")  # metrics.csv is complete: written after every epoch
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save(_state(model, optimizer, epochs, cfg, held_out, history), tmp)
    info = dict(
        held_out=str(held_out), train_subjects=fold_subjects(train.subjects),
        val_subjects=fold_subjects(val.subjects), n_train=len(train), n_val=len(val), n_test=len(test),
        epochs_run=epochs, resumed_from_epoch=start, epochs_this_run=epochs - start, seed=seed,
        device=str(device), amp_bf16=amp, channels_last=channels_last, compiled=step_model is not model,
        deterministic=bool(c["deterministic"]), threads=torch.get_num_threads(),
        versions=dict(python=platform.python_version(), torch=torch.__version__,
                      torchvision=torchvision.__version__, timm=timm.__version__, numpy=np.__version__),
        seconds=round(time.time() - t_start, 3),
    )
    write_json(info, out_dir / "fold.json")
    ckpt_path.unlink(missing_ok=True)
    return info


def _train_epoch(model, loader, criterion, optimizer, run, desc, progress):
    """One pass over the training set; returns mean loss, accuracy, images/s and seconds."""
    device, amp, channels_last = run["device"], run["amp"], run["channels_last"]
    model.train()
    # sums stay on the device: reading them every step would wait for the GPU each batch
    loss_sum, correct, n = torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long), 0
    t0 = time.perf_counter()
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False, file=sys.stderr, mininterval=2.0)
    for step, (x, y) in enumerate(bar):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
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


@torch.no_grad()
def predict(model, images, transform, run, batch_size=32):
    """Softmax class probabilities (N, C) float32 numpy for uint8 images, in eval mode."""
    device = run["device"]
    model.eval()
    loader = DataLoader(InMemoryDataset(images, np.zeros(len(images), np.int64), transform),
                        batch_size=max(batch_size, 32), shuffle=False)
    out = []
    for x, _ in loader:
        x = x.to(device)
        if run["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=run["amp"]):
            logits = model(x)
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out).numpy()


def _state(model, optimizer, epoch, cfg, held_out, history):
    """Checkpoint content: tensors and plain Python only, so torch.load(weights_only=True) reads it."""
    return dict(model=_cpu(model.state_dict()), optimizer=_cpu(optimizer.state_dict()), epoch=int(epoch),
                config=json.loads(json.dumps(cfg)),  # plain dict/list/str/number, whatever mapping came in
                held_out=str(held_out), history=history)


def _cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def _same_run(ckpt, cfg, held_out):
    """Was the checkpoint written by this experiment (ignoring RUNTIME_KEYS) for this fold?"""
    def norm(d):
        return json.dumps({k: v for k, v in d.items() if k not in RUNTIME_KEYS}, sort_keys=True, default=str)

    return (subject_key(ckpt.get("held_out", "")) == subject_key(held_out)
            and norm(ckpt.get("config", {})) == norm(cfg))


def _inner_val_split(train, fraction, seed):
    """Hold `fraction` of the training subjects (at least one, never all) out as an inner validation set."""
    if fraction <= 0:
        return train, train.select(np.zeros(len(train), bool))
    subjects = fold_subjects(train.subjects)
    k = min(max(1, round(fraction * len(subjects))), len(subjects) - 1)
    chosen = set(random.Random(seed).sample(subjects, k)) if k > 0 else set()
    is_val = np.array([s in chosen for s in train.subjects])
    return train.select(~is_val), train.select(is_val)


@contextlib.contextmanager
def _determinism(on, warn_only=False):
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


def _auto(value, default):
    return default if value == "auto" else bool(value)


def _log(msg):
    print(msg, file=sys.stderr, flush=True)
