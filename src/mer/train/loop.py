"""The training loop, written once: one fold alone, a fused group of folds, and the final model.

Set-up (samples, folds, device tensors), resume, the per-epoch bookkeeping (metrics.csv, inner validation, the
leakage audit's held-out predictions, the checkpoint cadence) and the fold outputs are the same for every way
of training; the ways differ only in the step object that trains an epoch (mer.train.single.SingleFold: one
fold eager; mer.train.fused.FusedFolds: a fused group, eager or as a CUDA graph).

Checkpoint and resume: every `checkpoint_every` epochs the step object's state (weights, optimizer), the
completed epoch count, the per-epoch metrics and the audit's rows go to one checkpoint file, atomically. A
rerun of a killed job resumes from it; with deterministic=True on the CPU a resumed run ends with weights
equal to an uninterrupted one. The checkpoint is deleted once the outputs are written (for SE-ResNeXt-50 it
holds ~300 MB a fold).

Data path: the task's samples go to the device once as uint8; each step gathers its batch by index and
augments it there (mer.train.augment).
"""

import json
import time
from pathlib import Path

import pandas as pd
import torch

from mer.io import atomic_path, log, write_csv, write_tsv
from mer.train.augment import to_device
from mer.train.data import AUDIT_FILE, input_datasets, load_samples, subject_key
from mer.train.folds import FINAL, plan_fold
from mer.train.inference import predict
from mer.train.modelfile import plain, state
from mer.train.outputs import audit_rows, write_final, write_fold
from mer.train.settings import RUNTIME_KEYS, determinism, resolve


def train_fold(cache_paths, held_out, cfg, out_dir, device="cpu", threads=None, progress=True,
               max_epochs_this_run=None, extra_info=None, audit=True):
    """Train cfg's model without `held_out`, then write model.pt, metrics.csv, predictions.tsv, the leakage
    audit (AUDIT_FILE) and fold.json into out_dir. held_out FINAL: train on every subject and write model.pt,
    metrics.csv and model.json (write_final).

    max_epochs_this_run: stop after this many epochs in this call without writing the final outputs,
    as if the job were killed there (for tests of resume). Returns fold.json's content, or None then.
    extra_info: more entries for fold.json (a fused group's record, say).
    audit: write AUDIT_FILE, the held-out subject's predictions after every epoch (tests turn it off to
    show that it changes nothing else).
    """
    from mer.train.single import SingleFold

    out_dir = Path(out_dir)
    infos = train(SingleFold, cache_paths, [held_out], cfg, [cfg], [out_dir], out_dir / "checkpoint.pt",
                  device=device, threads=threads, progress=progress, max_epochs_this_run=max_epochs_this_run,
                  extra_info=extra_info, audit=audit)
    return None if infos is None else infos[0]


def train_fused(cache_paths, held_outs, cfg, out_dirs, device="cpu", threads=None, progress=True,
                max_epochs_this_run=None, checkpoint=None, extra_info=None, audit=True, seeds=None):
    """Train the folds of `held_outs` as one fused group; write each fold's files into its out_dirs entry,
    as train_fold does. Returns the folds' fold.json contents, or None (max_epochs_this_run).

    checkpoint: the group's checkpoint file (default: beside the first fold's folder, .group-FIRST.ckpt.pt).
    seeds: each fold's experiment seed (default: cfg's seed for all): one subject may then appear once per seed.
    """
    from mer.train.fused import FusedFolds

    held_outs, out_dirs = [str(h) for h in held_outs], [Path(d) for d in out_dirs]
    if seeds is None:
        seeds = [int(resolve(cfg)["seed"])] * len(held_outs)
    configs = [{**cfg, "seed": int(s)} for s in seeds]  # each fold's own, as it would train alone
    checkpoint = Path(checkpoint) if checkpoint else out_dirs[0].parent / f".group-{held_outs[0]}.ckpt.pt"
    return train(FusedFolds, cache_paths, held_outs, cfg, configs, out_dirs, checkpoint, device=device,
                 threads=threads, progress=progress, max_epochs_this_run=max_epochs_this_run,
                 extra_info=extra_info, audit=audit)


def train(stepper, cache_paths, held_outs, cfg, configs, out_dirs, ckpt_path, device="cpu", threads=None,
          progress=True, max_epochs_this_run=None, extra_info=None, audit=True):
    """Train the folds `held_outs` (each with its config in `configs`: cfg with its seed) with the step object
    class `stepper`, writing each fold's outputs into its out_dirs entry. Returns their fold.json (model.json
    for FINAL) contents, or None when max_epochs_this_run stopped it early."""
    t_start = time.time()
    c = resolve(cfg)
    resolved = [resolve(fc) for fc in configs]
    seeds = [int(r["seed"]) for r in resolved]
    device = torch.device(device)
    if threads:
        torch.set_num_threads(int(threads))
    classes, epochs = list(c["classes"]), int(c["epochs"])

    with determinism(bool(c["deterministic"]), warn_only=device.type == "cuda"):
        data = load_samples(cache_paths, c["task"], input_datasets(c), classes, resize=c["size"])
        folds = [plan_fold(data, h, r, d) for h, r, d in zip(held_outs, resolved, out_dirs, strict=True)]
        for f in folds:
            f.out_dir.mkdir(parents=True, exist_ok=True)
        images, labels = to_device(data.images, device), torch.from_numpy(data.labels).to(device)
        steps = stepper(c, folds, images, labels, device)
        settings, inputs = steps.settings, steps.inputs

        start, histories, audited = resume(ckpt_path, steps, cfg, held_outs, seeds)
        stop = epochs if max_epochs_this_run is None else min(epochs, start + int(max_epochs_this_run))
        for epoch in range(start, stop):  # 0-based; reported as epoch + 1
            rows = steps.epoch(epoch, progress)
            for j, f in enumerate(folds):
                row = {"epoch": epoch + 1, **rows[j]}
                if len(f.val):
                    row.update(val_metrics(predict(steps.network(j), images[f.val], inputs, settings),
                                           data.labels[f.val], classes))
                histories[j].append(row)
                write_csv(pd.DataFrame(histories[j]), f.out_dir / "metrics.csv")
                if audit and len(f.test):
                    probs = predict(steps.network(j), images[f.test], inputs, settings)
                    audited[j] += audit_rows(f, data, probs, classes, epoch + 1)
                    write_tsv(pd.DataFrame(audited[j]), f.out_dir / AUDIT_FILE)
                log_row(row, c["name"], f.held_out)
            done = epoch + 1
            if done < epochs and done % int(c["checkpoint_every"]) == 0:
                ckpt = dict(steps=steps.checkpoint(), epoch=done, config=plain(cfg), held_outs=held_outs,
                            seeds=seeds, histories=histories, audits=audited)
                with atomic_path(ckpt_path) as tmp:
                    torch.save(ckpt, tmp)
        if stop < epochs:
            return None

    extra = {"compiled": steps.compiled, **steps.record(dict(extra_info or {}), held_outs, seeds)}
    infos = []
    for j, f in enumerate(folds):
        model_state = state(*steps.fold_state(j), epochs, configs[j], f.held_out, histories[j])
        seconds = time.time() - t_start
        if f.held_out == FINAL:
            infos.append(write_final(f, data, model_state, c, settings, extra, seconds))
        else:
            probs = predict(steps.network(j), images[f.test], inputs, settings)
            infos.append(write_fold(f, data, probs, classes, model_state, c, settings, start, extra, seconds))
    ckpt_path.unlink(missing_ok=True)
    return infos


def resume(ckpt_path, steps, cfg, held_outs, seeds):
    """(first epoch, per-fold metric rows, per-fold audit rows) of a run that resumes from ckpt_path when it was
    written for these folds, seeds and config (RUNTIME_KEYS aside); a fresh start otherwise."""
    fresh = 0, [[] for _ in held_outs], [[] for _ in held_outs]
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.exists():
        return fresh
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if not (ckpt.get("steps") is not None and [subject_key(h) for h in ckpt.get("held_outs", [])]
            == [subject_key(h) for h in held_outs] and list(ckpt.get("seeds", [])) == seeds
            and same_config(ckpt, cfg)):
        log(f"ignoring {ckpt_path}: written for another config or other folds")
        return fresh
    steps.restore(ckpt["steps"])
    start = int(ckpt["epoch"])
    log(f"resuming {cfg['name']} folds {held_outs} from {ckpt_path} after epoch {start}")
    return (start, [list(h)[:start] for h in ckpt["histories"]],
            [[r for r in a if r["epoch"] <= start] for a in ckpt["audits"]])


def same_config(saved, cfg):
    """Does a checkpoint's or model file's config equal cfg, ignoring RUNTIME_KEYS?"""
    def norm(d):
        return json.dumps({k: v for k, v in d.items() if k not in RUNTIME_KEYS}, sort_keys=True, default=str)

    return norm(saved.get("config", {})) == norm(cfg)


def val_metrics(probs, labels, classes):
    """Inner validation accuracy and UF1 of one epoch."""
    from mer.metrics import classification_metrics  # here: scikit-learn's slow import stays out of mer predict

    m = classification_metrics([classes[i] for i in labels], [classes[i] for i in probs.argmax(1)], classes)
    return dict(val_acc=m["accuracy"], val_uf1=m["uf1"])


def log_row(row, name, held_out):
    log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        + f"  [{name} held out {held_out}]")
