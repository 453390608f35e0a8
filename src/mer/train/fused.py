"""Fused fold groups: K LOSO folds of one experiment trained in one process as one horizontally fused network.

The K models are built exactly as train_fold builds each (same seed, same timm module), then their
weights and buffers are stacked along a new leading axis (torch.func.stack_module_state), and one
forward over all K runs as vmap(functional_call(timm module)): no second copy of the architecture.
One backward of the sum of the folds' own mean losses gives each fold its own gradient (no fold's
gradient is scaled), and one masked Adam step (FusedAdam) advances every fold that still has a batch.

What stays per fold, as when it trains alone (engine.train_fold):
- initial weights, sample order and augmentation draws (seeded per fold and epoch, mer.train.augment);
- BatchNorm batch statistics (vmap computes them per fold) and running statistics (stacked buffers);
- Adam moments and step count; its own steps per epoch: a fold whose epoch is over sits out the
  group's remaining steps, and its parameters, moments and buffers do not move (masked updates);
- its own metrics.csv, inner validation, predictions.tsv, model.pt and fold.json.

On CUDA the whole step (gather, augmentation, forward, loss, backward, Adam) can be captured once as a
CUDA graph and replayed (cuda_graph), since every per-step input is a device tensor copied into place.
"""

import copy
import math
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from mer.io import atomic_path, write_csv, write_tsv
from mer.train.augment import Inputs, to_device
from mer.train.data import AUDIT_FILE, input_datasets, load_samples
from mer.train.engine import (
    audit_rows,
    determinism,
    epoch_batches,
    log,
    log_row,
    plan_fold,
    predict,
    resolve,
    run_settings,
    same_config,
    state,
    val_metrics,
    write_fold,
)
from mer.train.losses import build_loss
from mer.train.modelfile import plain
from mer.train.models import build_model


class FusedAdam:
    """Adam (Kingma & Ba; torch.optim.Adam's arithmetic) over stacked (K, ...) parameters, with one step
    count per fold and a per-step mask of the folds that step.

    Not torch.optim.Adam itself: it keeps one step count per tensor, while here a tensor holds K folds
    whose step counts differ (training sets of different sizes), and a fold sitting out a step must keep
    its moments. Every quantity is a device tensor, so the step can be captured in a CUDA graph.
    """

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params, self.lr, (self.beta1, self.beta2) = list(params), float(lr), betas
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        k, device = self.params[0].shape[0], self.params[0].device
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.step_count = torch.zeros(k, dtype=torch.float32, device=device)  # steps taken, per fold
        # each fold's views of the stacked tensors (in-place updates reach the stack)
        self.k = k
        with torch.no_grad():
            self._fold_params = list(zip(*(p.unbind(0) for p in self.params), strict=True))
            self._fold_avg = list(zip(*(m.unbind(0) for m in self.exp_avg), strict=True))
            self._fold_avg_sq = list(zip(*(v.unbind(0) for v in self.exp_avg_sq), strict=True))
        self._fold_steps = [[t] * len(self.params) for t in self.step_count.unbind(0)]

    @torch.no_grad()
    def step(self, grads, active):
        """active: (K,) float, 1 for a fold that steps now and 0 for one that sits out.

        One call per fold of torch's own fused Adam kernel (the one torch.optim.Adam(fused=True) runs:
        each tensor read and written once), over that fold's slices of the stacked tensors. A fold that
        sits out passes found_inf = 1, with which the kernel leaves its parameters and moments untouched
        (as for GradScaler's skipped steps). Nothing branches on a device value, so a CUDA graph replays it
        whatever the mask.
        """
        self.step_count += active
        skip = 1 - active  # found_inf per fold
        # contiguous: torch 2.14's fused Adam on CPU misreads a strided slice (a convolution's weight
        # gradient under vmap can come back strided)
        per_param = [g.contiguous().unbind(0) for g in grads]
        for k in range(self.k):
            torch._fused_adam_(self._fold_params[k], [g[k] for g in per_param], self._fold_avg[k],
                               self._fold_avg_sq[k], [], self._fold_steps[k], lr=self.lr, beta1=self.beta1,
                               beta2=self.beta2, weight_decay=self.weight_decay, eps=self.eps, amsgrad=False,
                               maximize=False, grad_scale=None, found_inf=skip[k])

    def fold_state_dict(self, k):
        """Fold k's state in torch.optim.Adam's state_dict format (what train_fold's model.pt holds)."""
        group = torch.optim.Adam([torch.zeros(1)], lr=self.lr, betas=(self.beta1, self.beta2), eps=self.eps,
                                 weight_decay=self.weight_decay).state_dict()["param_groups"][0]
        group["params"] = list(range(len(self.params)))
        steps = self.step_count[k].detach().cpu().clone()
        return dict(state={i: dict(step=steps.clone(), exp_avg=m[k].detach().cpu().clone(),
                                   exp_avg_sq=v[k].detach().cpu().clone())
                           for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True))},
                    param_groups=[group])

    def tensors(self):
        return [*self.exp_avg, *self.exp_avg_sq, self.step_count]


class VmapConv2d(nn.Conv2d):
    """nn.Conv2d as a fused group computes it; the same parameters and the same function.

    - A 1x1 convolution (groups 1, no padding) is a matrix product: under vmap one batched GEMM over the
      K folds, where vmap's convolution rule runs cuDNN's grouped convolution with K groups, which has no
      fast kernel for this shape (most of ResNeXt's arithmetic is in its 1x1 convolutions). The product
      is laid out so that the smaller operand is the one copied: the weight, once per image (early
      stages, large images), or the activations, as one (C, N*H*W) matrix (late stages, small images).
    - compute_dtype (bf16, say): the product in that type, fp32 in and out, the bias added in fp32. This
      is autocast's rule for convolutions, by hand, because autocast under vmap leaves some of its casts
      undone (see fused_run_settings); BatchNorm and everything else stay fp32.
    """

    compute_dtype = None

    @classmethod
    def of(cls, conv, compute_dtype=None):
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                  conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode, device="meta")
        new.compute_dtype = compute_dtype
        return new

    def forward(self, x):
        dtype = self.compute_dtype or x.dtype
        w = self.weight.to(dtype)
        if self.kernel_size == (1, 1) and self.padding == (0, 0) and self.groups == 1:
            x = x[:, :, :: self.stride[0], :: self.stride[1]]
            n, c, h, wd = x.shape
            w = w.view(w.shape[0], c)
            if w.shape[0] * c <= (w.shape[0] + c) * h * wd:  # weight copies (n x O x C) cost less
                y = torch.matmul(w, x.reshape(n, c, h * wd).to(dtype)).view(n, -1, h, wd)
            else:  # (O, C) @ (C, N*H*W): activations in and out copied once
                y = (w @ x.transpose(0, 1).reshape(c, n * h * wd).to(dtype)).view(-1, n, h, wd).transpose(0, 1)
        else:
            y = F.conv2d(x.to(dtype), w, None, self.stride, self.padding, self.dilation, self.groups)
        y = y.to(x.dtype)
        return y if self.bias is None else y + self.bias.view(-1, 1, 1)


def vmap_friendly(model, compute_dtype=None):
    """Swap `model`'s plain nn.Conv2d modules for VmapConv2d in place (state_dict keys unchanged)."""
    for m in list(model.modules()):
        for child_name, child in list(m.named_children()):
            if type(child) is nn.Conv2d and child.padding_mode == "zeros":
                setattr(m, child_name, VmapConv2d.of(child, compute_dtype))
    return model


class FusedModels:
    """K timm models as one: stacked parameters (leaves with gradients) and buffers on `device`.

    compute_dtype: the type of the convolutions' arithmetic (VmapConv2d); None keeps the parameters' type.
    """

    def __init__(self, models, device, compute_dtype=None):
        models = [m.to(device) for m in models]
        params, buffers = stack_module_state(models)
        self.keys = list(models[0].state_dict())  # state_dict order, for per-fold model.pt
        self.param_names, self.buffer_names = list(params), list(buffers)
        self.params = [params[n] for n in self.param_names]
        self.buffers = [buffers[n] for n in self.buffer_names]
        # the architecture; its tensors come from the stack
        self.base = vmap_friendly(copy.deepcopy(models[0]).to("meta"), compute_dtype)
        self.k = len(models)

    def _call(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def __call__(self, x):
        """x (K, b, 3, S, S) -> logits (K, b, C); in train mode BatchNorm updates each fold's buffers."""
        params = dict(zip(self.param_names, self.params, strict=True))
        buffers = dict(zip(self.buffer_names, self.buffers, strict=True))
        return vmap(self._call)(params, buffers, x)

    def train(self, mode=True):
        self.base.train(mode)

    def fold(self, k):
        """Fold k alone, as a callable of a batch (for prediction in eval mode)."""
        params = {n: p[k] for n, p in zip(self.param_names, self.params, strict=True)}
        buffers = {n: b[k] for n, b in zip(self.buffer_names, self.buffers, strict=True)}
        return lambda x: functional_call(self.base, (params, buffers), (x,))

    def fold_state_dict(self, k):
        named = dict(zip(self.param_names, self.params, strict=True)) | dict(
            zip(self.buffer_names, self.buffers, strict=True))
        return {n: named[n][k].detach().cpu().clone() for n in self.keys}

    def stacked(self):
        return dict(params=dict(zip(self.param_names, [p.detach().cpu() for p in self.params], strict=True)),
                    buffers=dict(zip(self.buffer_names, [b.cpu() for b in self.buffers], strict=True)))

    @torch.no_grad()
    def load_stacked(self, saved):
        for n, p in zip(self.param_names, self.params, strict=True):
            p.copy_(saved["params"][n])
        for n, b in zip(self.buffer_names, self.buffers, strict=True):
            b.copy_(saved["buffers"][n])


class _Step:
    """One fused training step over static device tensors, run eagerly or replayed as a CUDA graph."""

    def __init__(self, fused, adam, criterion, inputs, images, labels, run, k, b, compiled=False):
        """compiled: the forward and the loss (and so their backward) through torch.compile (inductor fuses
        the elementwise kernels around the products); only `mer bench-train --compile` asks for it so far."""
        self.fused, self.adam, self.criterion, self.inputs = fused, adam, criterion, inputs
        self.forward = torch.compile(self._forward, dynamic=False) if compiled else self._forward
        self.images, self.labels, self.run = images, labels, run
        device = run["device"]
        # this step's inputs, copied into place before each step (static addresses for the graph)
        self.idx = torch.zeros(k, b, dtype=torch.long, device=device)
        self.flip = torch.zeros(k, b, dtype=torch.bool, device=device)
        self.angle = torch.zeros(k, b, dtype=torch.float32, device=device)
        self.active = torch.zeros(k, dtype=torch.float32, device=device)
        # per-fold sums over the epoch: loss x samples, correct predictions, samples
        self.loss_sum, self.correct, self.seen = (torch.zeros(k, device=device) for _ in range(3))
        self.graph = None

    def __call__(self, idx, flip, angle, active):
        self._load(idx, flip, angle, active)
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()

    def _load(self, idx, flip, angle, active):
        """Copy this step's inputs into the static tensors (the graph reads them at fixed addresses)."""
        for static, value in ((self.idx, idx), (self.flip, flip), (self.angle, angle), (self.active, active)):
            static.copy_(value)

    def _step(self):
        k, b = self.idx.shape
        x = self.inputs.train(self.images[self.idx.reshape(-1)], self.flip.reshape(-1), self.angle.reshape(-1))
        x = x.view(k, b, *x.shape[1:])
        y = self.labels[self.idx]
        before = [t.clone() for t in self.fused.buffers]
        logits, losses = self.forward(x, y)
        grads = torch.autograd.grad((losses * self.active).sum(), self.fused.params)
        with torch.no_grad():
            for t, old in zip(self.fused.buffers, before, strict=True):  # a fold sitting out keeps its BN state
                t.copy_(torch.where(self.active.view((-1,) + (1,) * (t.dim() - 1)) > 0, t, old))
            self.adam.step(grads, self.active)
            self.loss_sum += losses.detach().float() * self.active * b
            self.correct += (logits.detach().argmax(-1) == y).sum(-1).float() * self.active
            self.seen += self.active * b

    def _forward(self, x, y):
        logits = self.fused(x)  # in the precision the convolutions were built for (FusedModels)
        return logits, vmap(self.criterion)(logits, y)  # and (K,): each fold's own mean loss

    def state_tensors(self):
        return [*self.fused.params, *self.fused.buffers, *self.adam.tensors(), self.loss_sum, self.correct,
                self.seen]

    def capture(self, idx, flip, angle, active):
        """Record the step as a CUDA graph: warm up on a side stream (then undo the warm-up's updates), capture."""
        self._load(idx, flip, angle, active)
        saved = [t.detach().clone() for t in self.state_tensors()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        with torch.no_grad():
            for t, v in zip(self.state_tensors(), saved, strict=True):
                t.copy_(v)
        torch.cuda.synchronize()
        self.graph = graph


def train_fused(cache_paths, held_outs, cfg, out_dirs, device="cpu", threads=None, progress=True,
                max_epochs_this_run=None, checkpoint=None, extra_info=None, audit=True, seeds=None):
    """Train the folds of `held_outs` as one fused group; write each fold's files into its out_dirs entry.

    checkpoint: the group's checkpoint file (default: beside the first fold's folder, as group.ckpt.pt).
    max_epochs_this_run: stop after this many epochs without final outputs (tests of resume).
    extra_info: more entries for every fold.json. Returns the folds' fold.json contents, or None.
    audit: write each fold's AUDIT_FILE (its held-out subject's predictions after every epoch), as train_fold.
    seeds: each fold's experiment seed (default: cfg's seed for all): one subject may then appear once per seed.
    """
    t_start = time.time()
    c = resolve(cfg)
    held_outs, out_dirs = [str(h) for h in held_outs], [Path(d) for d in out_dirs]
    seeds = [int(c["seed"])] * len(held_outs) if seeds is None else [int(s) for s in seeds]
    configs = [{**cfg, "seed": s} for s in seeds]  # each fold's own, as it would train alone
    device = torch.device(device)
    if threads:
        torch.set_num_threads(int(threads))
    if float(c["drop_rate"]) > 0:
        raise ValueError(f"{c['name']}: fused fold groups need drop_rate 0 (a fold's dropout draws under vmap "
                         "cannot match those of the fold trained alone); set fold_group: 1")
    classes, epochs, k = list(c["classes"]), int(c["epochs"]), len(held_outs)
    run = fused_run_settings(c, device)
    use_graph = device.type == "cuda" and (c["cuda_graph"] in (True, "auto"))
    products_like_convolutions(device)
    ckpt_path = Path(checkpoint) if checkpoint else out_dirs[0].parent / f".group-{held_outs[0]}.ckpt.pt"

    with determinism(bool(c["deterministic"]), warn_only=device.type == "cuda"):
        data = load_samples(cache_paths, c["task"], input_datasets(c), classes, resize=c["size"])
        folds = [plan_fold(data, h, resolve(fc), d) for h, fc, d in zip(held_outs, configs, out_dirs, strict=True)]
        b = int(c["batch_size"])
        small = [f.held_out for f in folds if len(f.train) < b]
        if small and k > 1:
            raise ValueError(f"{c['name']}: folds {small} have fewer training samples than batch_size {b}; "
                             "train them with fold_group: 1")
        b = min([b] + [len(f.train) for f in folds])  # a lone fold smaller than a batch: one batch of all
        images, labels = to_device(data.images, device), torch.from_numpy(data.labels).to(device)
        models = []
        for f in folds:
            torch.manual_seed(f.seed)  # weight init, as train_fold
            models.append(build_model(c["backbone"], len(classes), c["pretrained"], c["drop_rate"]))
        mean, std = models[0].pretrained_cfg["mean"], models[0].pretrained_cfg["std"]
        fused = FusedModels(models, device, compute_dtype(run))
        del models
        adam = FusedAdam(fused.params, lr=c["lr"], weight_decay=c["weight_decay"])
        criterion = build_loss(c["loss"], c["gamma"], c["alpha"]).to(device)
        inputs = Inputs(mean, std, c["augment"]["grayscale"], device, c["input"])
        step = _Step(fused, adam, criterion, inputs, images, labels, run, k, b)

        start, histories, audited = 0, [[] for _ in folds], [[] for _ in folds]
        if ckpt_path.exists():
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            if (list(ckpt.get("held_outs", [])) == held_outs and list(ckpt.get("seeds", seeds)) == seeds
                    and same_config(ckpt, cfg)):
                fused.load_stacked(ckpt["fused"])
                with torch.no_grad():
                    for t, v in zip(adam.tensors(), ckpt["adam"], strict=True):
                        t.copy_(v)
                start = int(ckpt["epoch"])
                histories = [list(h)[:start] for h in ckpt["histories"]]
                audited = [[r for r in a if r["epoch"] <= start] for a in ckpt.get("audits", audited)]
                log(f"resuming {c['name']} group {held_outs} from {ckpt_path} after epoch {start}")
            else:
                log(f"ignoring {ckpt_path}: written for another config or group")

        stop = epochs if max_epochs_this_run is None else min(epochs, start + int(max_epochs_this_run))
        for epoch in range(start, stop):
            fused.train()
            idx, flip, angle, active = _group_batches(folds, epoch, c, device)
            for t in (step.loss_sum, step.correct, step.seen):
                t.zero_()
            if use_graph and step.graph is None:
                step.capture(idx[0], flip[0], angle[0], active[0])
            t0 = time.perf_counter()
            for s in range(len(idx)):
                step(idx[s], flip[s], angle[s], active[s])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - t0
            loss, correct, seen = (t.cpu().numpy() for t in (step.loss_sum, step.correct, step.seen))
            fused.train(False)
            for j, f in enumerate(folds):
                row = dict(epoch=epoch + 1, loss=float(loss[j] / seen[j]), train_acc=float(correct[j] / seen[j]),
                           images_per_s=float(seen[j] / seconds), seconds=seconds)
                if len(f.val):
                    row.update(val_metrics(predict(fused.fold(j), images[f.val], inputs, run),
                                           data.labels[f.val], classes))
                histories[j].append(row)
                write_csv(pd.DataFrame(histories[j]), f.out_dir / "metrics.csv")
                if audit and len(f.test):
                    probs = predict(fused.fold(j), images[f.test], inputs, run)
                    audited[j] += audit_rows(f, data, probs, classes, epoch + 1)
                    write_tsv(pd.DataFrame(audited[j]), f.out_dir / AUDIT_FILE)
                log_row(row, c["name"], f.held_out)
            done = epoch + 1
            if done < epochs and done % int(c["checkpoint_every"]) == 0:
                ckpt = dict(fused=fused.stacked(), adam=[t.detach().cpu() for t in adam.tensors()], epoch=done,
                            config=plain(cfg), held_outs=held_outs, seeds=seeds,
                            histories=histories, audits=audited)
                with atomic_path(ckpt_path) as tmp:
                    torch.save(ckpt, tmp)
        if stop < epochs:
            return None

    fused.train(False)
    infos = []
    extra = dict(extra_info or {})
    extra.setdefault("fold_group", {})
    # fused_with: the folds that shared this process's steps (a chunk of the group under 'auto')
    extra["fold_group"] = {**extra["fold_group"], "fused_with": held_outs, "fused_seeds": seeds,
                           "cuda_graph": use_graph}
    for j, f in enumerate(folds):
        probs = predict(fused.fold(j), images[f.test], inputs, run)
        model_state = state(fused.fold_state_dict(j), adam.fold_state_dict(j), epochs, configs[j], f.held_out,
                            histories[j])
        infos.append(write_fold(f, data, probs, classes, model_state, c, run, start,
                                dict(compiled=False, **extra), time.time() - t_start))
    ckpt_path.unlink(missing_ok=True)
    return infos


def fused_run_settings(c, device):
    """A fused group's settings: `amp` (auto: bf16 on CUDA) is done by the convolutions themselves
    (VmapConv2d's compute_dtype), not by autocast, and there is no channels_last.

    Not autocast: under vmap it leaves tensors it should cast (seen on an H200 with torch 2.11):
    BatchNorm's backward rejects bf16 activations with fp32 running statistics ("Expected running_mean
    to have type BFloat16"), and with BatchNorm computed in fp32 the SE blocks' 1x1 convolutions get a
    bf16 input with an fp32 bias. Not channels_last: vmap folds the K models into grouped convolutions
    and batched products of its own layout. In fp32 on CUDA the 1x1 products use TF32, as cuDNN's
    convolutions do by default (products_like_convolutions).
    """
    return {**run_settings(c, device), "channels_last": False}


def products_like_convolutions(device):
    """On CUDA, fp32 matrix products in TF32, as cuDNN's convolutions are by default (VmapConv2d's 1x1
    products stand in for convolutions). A process-wide torch setting."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True


def compute_dtype(run):
    """The fused convolutions' arithmetic type for these run settings."""
    return torch.bfloat16 if run["amp"] else None


def _group_batches(folds, epoch, c, device):
    """The group's steps of one epoch: idx (S, K, b), flip, angle, active (S, K) on `device`.

    S is the longest fold's step count; a fold with fewer steps repeats its first batch, masked out.
    """
    per_fold = [epoch_batches(f, epoch, c) for f in folds]
    steps = max(len(o) for o, _, _ in per_fold)
    padded = []
    for order, flip, angle in per_fold:
        n = len(order)
        pad = [0] * (steps - n)
        padded.append((torch.cat([order, order[pad]]), torch.cat([flip, flip[pad]]),
                       torch.cat([angle, angle[pad]]), torch.arange(steps) < n))
    idx, flip, angle, active = (torch.stack([p[i] for p in padded], 1) for i in range(4))
    return idx.to(device), flip.to(device), angle.to(device), active.float().to(device)


def probe_fold_bytes(cfg, device):
    """GPU memory one fused fold takes, in bytes: the peak of one training step of a group of one at the
    experiment's model, batch and size (weights, gradients, Adam's moments, activations), plus 10%."""
    c = resolve(cfg)
    b, size = int(c["batch_size"]), int(c["size"])
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    model = build_model(c["backbone"], len(c["classes"]), "none", 0.0)
    run = fused_run_settings(c, device)
    fused = FusedModels([model], device, compute_dtype(run))
    adam = FusedAdam(fused.params, lr=c["lr"])
    inputs = Inputs(model.pretrained_cfg["mean"], model.pretrained_cfg["std"], True, device)
    images = torch.zeros(b, 3, size, size, dtype=torch.uint8, device=device)
    labels = torch.zeros(b, dtype=torch.long, device=device)
    step = _Step(fused, adam, build_loss(c["loss"], c["gamma"], c["alpha"]).to(device), inputs, images, labels,
                 run, 1, b)
    fused.train()
    step(torch.arange(b, device=device)[None], torch.zeros(1, b, dtype=torch.bool, device=device),
         torch.zeros(1, b, device=device), torch.ones(1, device=device))
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    del step, fused, adam, model, images
    torch.cuda.empty_cache()
    return int(1.1 * peak)


def auto_group_size(n_folds, free_bytes, per_fold_bytes, headroom=0.8):
    """How many folds fit at once in `headroom` of the free memory (at least 1, at most n_folds)."""
    return int(max(1, min(n_folds, math.floor(headroom * free_bytes / max(per_fold_bytes, 1)))))
