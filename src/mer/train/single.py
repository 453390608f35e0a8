"""One fold stepped alone: its timm model and torch.optim.Adam, eager (or torch.compile'd on CUDA).

The step object of mer.train.loop for train.fold_group 1 and for the final model. Resume is exact without
saving RNG state because nothing random carries over between epochs: at the start of epoch e the model RNG
(dropout) is reseeded from (seed, e), and the epoch's shuffle and each sample's flip and rotation come from a
generator seeded from (seed, e) (mer.train.augment).
"""

import sys
import time

import torch
from tqdm import tqdm

from mer.train.augment import Inputs
from mer.train.data import epoch_seed
from mer.train.folds import epoch_batches
from mer.train.losses import build_loss
from mer.train.modelfile import cpu
from mer.train.models import build_model
from mer.train.settings import device_settings


class SingleFold:
    """Trains one fold; the interface every step object of mer.train.loop has (fused.FusedFolds too)."""

    def __init__(self, c, folds, images, labels, device):
        (self.fold,) = folds
        self.c, self.images, self.labels = c, images, labels
        self.settings = device_settings(c, device)
        torch.manual_seed(self.fold.seed)  # weight init
        self.model = build_model(c["backbone"], len(c["classes"]), c["pretrained"], c["drop_rate"]).to(device)
        if self.settings["channels_last"]:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.criterion = build_loss(c["loss"], c["gamma"], c["alpha"]).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
        self.step_model = torch.compile(self.model) if (c["compile"] and device.type == "cuda") else self.model
        self.compiled = self.step_model is not self.model
        self.inputs = Inputs(self.model.pretrained_cfg["mean"], self.model.pretrained_cfg["std"],
                             c["augment"]["grayscale"], device, c["input"])

    def epoch(self, epoch, progress=False):
        """Train one epoch; returns the fold's row (mean loss, accuracy, images/s, seconds) in a list."""
        c, device = self.c, self.settings["device"]
        torch.manual_seed(epoch_seed(self.fold.seed, epoch))  # model RNG (dropout), independent of earlier epochs
        batches = [t.to(device) for t in epoch_batches(self.fold, epoch, c)]
        desc = f"{c['name']} {self.fold.held_out} {epoch + 1}/{c['epochs']}"
        return [self._train_epoch(batches, desc, progress)]

    def _train_epoch(self, batches, desc, progress):
        model, optimizer, criterion, inputs = self.step_model, self.optimizer, self.criterion, self.inputs
        device, amp, channels_last = (self.settings[k] for k in ("device", "amp", "channels_last"))
        order, flip, angle = batches
        model.train()
        # sums stay on the device: reading them every step would wait for the GPU each batch
        loss_sum, correct, n = torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long), 0
        t0 = time.perf_counter()
        bar = tqdm(range(len(order)), desc=desc, disable=not progress, leave=False, file=sys.stderr,
                   mininterval=2.0)
        for step in bar:
            idx = order[step]
            x, y = inputs.train(self.images[idx], flip[step], angle[step]), self.labels[idx]
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

    def network(self, j=0):
        """The fold's network, for predictions."""
        return self.model

    def fold_state(self, j=0):
        """(model state_dict, optimizer state_dict) of the fold."""
        return self.model.state_dict(), self.optimizer.state_dict()

    def checkpoint(self):
        return dict(model=cpu(self.model.state_dict()), optimizer=cpu(self.optimizer.state_dict()))

    def restore(self, saved):
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])

    def record(self, extra, held_outs, seeds):
        """fold.json's entries of this way of training, added to `extra` (none of its own)."""
        return extra
