"""Fused fold groups: K LOSO folds of one experiment trained in one process as one horizontally fused network.

The K models are built exactly as a fold alone builds its own (same seed, same timm module), then their
weights and buffers are stacked along a new leading axis (torch.func.stack_module_state), and one
forward over all K runs as vmap(functional_call(timm module)): no second copy of the architecture.
One backward of the sum of the folds' own mean losses gives each fold its own gradient (no fold's
gradient is scaled), and one masked Adam step (FusedAdam) advances every fold that still has a batch.

What stays per fold, as when it trains alone (mer.train.single):
- initial weights, sample order and augmentation draws (seeded per fold and epoch, mer.train.augment);
- BatchNorm batch statistics (vmap computes them per fold) and running statistics (stacked buffers);
- Adam moments and step count; its own steps per epoch: a fold whose epoch is over sits out the
  group's remaining steps, and its parameters, moments and buffers do not move (masked updates);
- its own metrics.csv, inner validation, predictions.tsv, model.pt and fold.json (mer.train.loop writes
  them, as for a fold alone).

On CUDA the whole step (gather, augmentation, forward, loss, backward, Adam) can be captured once as a
CUDA graph and replayed (cuda_graph), since every per-step input is a device tensor copied into place.
"""

import math
import time

import torch
from torch.func import vmap

from mer.train.augment import Inputs
from mer.train.folds import epoch_batches
from mer.train.fused_adam import FusedAdam
from mer.train.fused_models import FusedModels
from mer.train.losses import build_loss
from mer.train.models import build_model
from mer.train.settings import device_settings, resolve


class _Step:
    """One fused training step over static device tensors, run eagerly or replayed as a CUDA graph."""

    def __init__(self, fused, adam, criterion, inputs, images, labels, settings, k, b, compiled=False):
        """compiled: the forward and the loss (and so their backward) through torch.compile (inductor fuses
        the elementwise kernels around the products); only `mer bench-train --compile` asks for it so far."""
        self.fused, self.adam, self.criterion, self.inputs = fused, adam, criterion, inputs
        self.forward = torch.compile(self._forward, dynamic=False) if compiled else self._forward
        self.images, self.labels = images, labels
        device = settings["device"]
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


class FusedFolds:
    """The step object of mer.train.loop for a fused group: K folds stepped as one network, eagerly or
    replayed as a CUDA graph (train.cuda_graph, on CUDA)."""

    def __init__(self, c, folds, images, labels, device):
        if float(c["drop_rate"]) > 0:
            raise ValueError(f"{c['name']}: fused fold groups need drop_rate 0 (a fold's dropout draws under vmap "
                             "cannot match those of the fold trained alone); set fold_group: 1")
        b, k = int(c["batch_size"]), len(folds)
        small = [f.held_out for f in folds if len(f.train) < b]
        if small and k > 1:
            raise ValueError(f"{c['name']}: folds {small} have fewer training samples than batch_size {b}; "
                             "train them with fold_group: 1")
        b = min([b] + [len(f.train) for f in folds])  # a lone fold smaller than a batch: one batch of all
        self.c, self.folds, self.device = c, folds, device
        self.settings = fused_settings(c, device)
        self.use_graph = device.type == "cuda" and (c["cuda_graph"] in (True, "auto"))
        products_like_convolutions(device)
        models = []
        for f in folds:
            torch.manual_seed(f.seed)  # weight init, as the fold alone
            models.append(build_model(c["backbone"], len(c["classes"]), c["pretrained"], c["drop_rate"]))
        mean, std = models[0].pretrained_cfg["mean"], models[0].pretrained_cfg["std"]
        self.fused = FusedModels(models, device, compute_dtype(self.settings))
        del models
        self.adam = FusedAdam(self.fused.params, lr=c["lr"], weight_decay=c["weight_decay"])
        criterion = build_loss(c["loss"], c["gamma"], c["alpha"]).to(device)
        self.inputs = Inputs(mean, std, c["augment"]["grayscale"], device, c["input"])
        self.step = _Step(self.fused, self.adam, criterion, self.inputs, images, labels, self.settings, k, b)
        self.compiled = False

    def epoch(self, epoch, progress=False):
        """Train one epoch of every fold; returns each fold's row (mean loss, accuracy, images/s, seconds)."""
        step, device = self.step, self.device
        self.fused.train()
        idx, flip, angle, active = _group_batches(self.folds, epoch, self.c, device)
        for t in (step.loss_sum, step.correct, step.seen):
            t.zero_()
        if self.use_graph and step.graph is None:
            step.capture(idx[0], flip[0], angle[0], active[0])
        t0 = time.perf_counter()
        for s in range(len(idx)):
            step(idx[s], flip[s], angle[s], active[s])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        loss, correct, seen = (t.cpu().numpy() for t in (step.loss_sum, step.correct, step.seen))
        self.fused.train(False)
        return [dict(loss=float(loss[j] / seen[j]), train_acc=float(correct[j] / seen[j]),
                     images_per_s=float(seen[j] / seconds), seconds=seconds) for j in range(len(self.folds))]

    def network(self, j):
        """Fold j's network, for predictions."""
        return self.fused.fold(j)

    def fold_state(self, j):
        """(model state_dict, optimizer state_dict) of fold j, as the fold alone would have them."""
        return self.fused.fold_state_dict(j), self.adam.fold_state_dict(j)

    def checkpoint(self):
        return dict(fused=self.fused.stacked(), adam=[t.detach().cpu() for t in self.adam.tensors()])

    @torch.no_grad()
    def restore(self, saved):
        self.fused.load_stacked(saved["fused"])
        for t, v in zip(self.adam.tensors(), saved["adam"], strict=True):
            t.copy_(v)

    def record(self, extra, held_outs, seeds):
        """fold.json's entries of this way of training, added to `extra`: the folds that shared this process's
        steps (a chunk of the group under fold_group 'auto'), their seeds, and whether a CUDA graph ran."""
        extra = dict(extra)
        extra["fold_group"] = {**extra.get("fold_group", {}), "fused_with": held_outs, "fused_seeds": seeds,
                               "cuda_graph": self.use_graph}
        return extra


def fused_settings(c, device):
    """A fused group's settings: `amp` (auto: bf16 on CUDA) is done by the convolutions themselves
    (VmapConv2d's compute_dtype), not by autocast, and there is no channels_last.

    Not autocast: under vmap it leaves tensors it should cast (seen on an H200 with torch 2.11):
    BatchNorm's backward rejects bf16 activations with fp32 running statistics ("Expected running_mean
    to have type BFloat16"), and with BatchNorm computed in fp32 the SE blocks' 1x1 convolutions get a
    bf16 input with an fp32 bias. Not channels_last: vmap folds the K models into grouped convolutions
    and batched products of its own layout. In fp32 on CUDA the 1x1 products use TF32, as cuDNN's
    convolutions do by default (products_like_convolutions).
    """
    return {**device_settings(c, device), "channels_last": False}


def products_like_convolutions(device):
    """On CUDA, fp32 matrix products in TF32, as cuDNN's convolutions are by default (VmapConv2d's 1x1
    products stand in for convolutions). A process-wide torch setting."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True


def compute_dtype(settings):
    """The fused convolutions' arithmetic type for these device settings."""
    return torch.bfloat16 if settings["amp"] else None


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
    settings = fused_settings(c, device)
    fused = FusedModels([model], device, compute_dtype(settings))
    adam = FusedAdam(fused.params, lr=c["lr"])
    inputs = Inputs(model.pretrained_cfg["mean"], model.pretrained_cfg["std"], True, device)
    images = torch.zeros(b, 3, size, size, dtype=torch.uint8, device=device)
    labels = torch.zeros(b, dtype=torch.long, device=device)
    step = _Step(fused, adam, build_loss(c["loss"], c["gamma"], c["alpha"]).to(device), inputs, images, labels,
                 settings, 1, b)
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
