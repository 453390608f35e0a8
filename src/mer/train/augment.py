"""Batched augmentation of uint8 crops on the device, with per-sample parameters drawn up front.

One data path for one-fold and fused training: a fold's crops sit on the device as a uint8 tensor
(N, 3, S, S); each step gathers its batch by index and augments it there (grayscale, horizontal flip,
rotation within +-`rotate` degrees, normalisation). No DataLoader and no host copy run inside the step
loop, so a CUDA graph can capture the whole step.

Hand-rolled on torch.nn.functional (affine_grid, grid_sample) because torchvision's transforms v2
draw one set of parameters per call, shared by a whole batch, from the global RNG; here every sample
has its own flip and angle, drawn per epoch from its fold's seeded generator (`draw_epoch`), so a
fold's augmentation is the same whether it trains alone or fused with other folds.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from mer.train.data import INPUTS, epoch_seed

GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale


def to_device(images, device):
    """(N, S, S, C) numpy -> (N, C, S, S) tensor on `device`, same dtype (a 224 px uint8 RGB crop: 150 kB)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)


def steps_per_epoch(n, batch_size):
    """Full batches of an epoch; the last partial batch is dropped, since a batch of one sample breaks
    BatchNorm (one value per channel at 1x1 in the last stage). A set smaller than a batch is one batch."""
    return max(n // batch_size, 1)


def draw_epoch(n, seed, epoch, batch_size, hflip=True, rotate=15.0):
    """One epoch's sample order and augmentation draws for a training set of `n` samples.

    Drawn on the CPU from a torch.Generator seeded from (seed, epoch), so they depend only on the fold's
    seed and the epoch: the same on any device, for a resumed run, alone or fused.
    Returns order (steps, b) int64 indices into the training set, flip (steps, b) bool, and
    angle (steps, b) float32 degrees, with b = min(batch_size, n).
    """
    g = torch.Generator().manual_seed(epoch_seed(seed, epoch, stream=1))
    order = torch.randperm(n, generator=g)
    flip = torch.rand(n, generator=g, dtype=torch.float32) < 0.5
    angle = (torch.rand(n, generator=g, dtype=torch.float32) * 2 - 1) * float(rotate)
    flip = flip if hflip else torch.zeros_like(flip)
    b = min(batch_size, n)
    steps = steps_per_epoch(n, batch_size)
    return order[: steps * b].view(steps, b), flip[: steps * b].view(steps, b), angle[: steps * b].view(steps, b)


class Inputs:
    """Turns a batch (M, C, S, S) of a fold's samples on the device into the model's float32 input.

    input: the experiment's `input` (mer.train.data.input_datasets): 'frame', a uint8 RGB crop; 'difference', a
    crop and the onset crop (6 uint8 channels), entering as their difference (both get the same grayscale,
    flip and rotation, and these are linear, so differencing first is the same and cheaper); 'flow', float32
    u, v (px) and strain, whose vectors turn with the image: a flip negates u, a rotation rotates (u, v).
    mean, std: per-channel normalisation of frames, from the timm model's pretrained_cfg; a difference is
    centred on 0 and divided by std; flow enters in its own units (px, and strain's ratio), not normalised.
    grayscale: luminance copied to all 3 channels (keeps the 3-input stem); not for flow.
    The constants are device tensors made once, so a CUDA graph can capture `train` (no host copy in it).
    """

    def __init__(self, mean, std, grayscale=True, device="cpu", input="frame"):
        if input not in INPUTS:
            raise ValueError(f"input {input!r} is not one of {INPUTS}")
        self.input = input
        self.grayscale = bool(grayscale) and input != "flow"
        self.gray = torch.tensor(GRAY, device=device).view(1, 3, 1, 1)
        mean = [0.0, 0.0, 0.0] if input != "frame" else mean
        std = [1.0, 1.0, 1.0] if input == "flow" else std
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def test(self, x):
        """No augmentation: the input as the model sees it (difference, grayscale, normalisation)."""
        return (self._unit(x) - self.mean) / self.std

    def train(self, x, flip, angle):
        """flip (M,) bool, angle (M,) degrees. Order as torchvision's pipeline had it: grayscale, flip,
        rotation about the centre (bilinear, zeros outside: black corners, as RandomRotation fills),
        then normalisation."""
        x = self._unit(x)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        rad = angle.to(x.dtype) * (math.pi / 180)
        cos, sin = torch.cos(rad), torch.sin(rad)
        zero = torch.zeros_like(cos)
        # affine_grid maps each output pixel's (x, y) in [-1, 1], y pointing down, to where it samples the
        # input; this matrix turns the image by +angle counter-clockwise on screen, as torchvision's rotate
        theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.input == "flow":
            # the content at p moves to R^T p (R = theta's 2x2, x right, y down), so does each displacement;
            # a flipped sample's u changes sign first
            u = torch.where(flip, -1.0, 1.0).to(x.dtype).view(-1, 1, 1) * x[:, 0]
            v, c, s = x[:, 1], cos.view(-1, 1, 1), sin.view(-1, 1, 1)
            x = torch.stack([c * u + s * v, -s * u + c * v, x[:, 2]], 1)
        return (x - self.mean) / self.std

    def _unit(self, x):
        if self.input == "flow":
            return x.to(torch.get_default_dtype())
        x = x.to(torch.get_default_dtype()) / 255  # 0..1 (float32 unless a test asks for float64)
        if self.input == "difference":
            x = x[:, :3] - x[:, 3:]  # the crop minus the onset crop, -1..1
        return (x * self.gray).sum(1, keepdim=True).expand(-1, 3, -1, -1) if self.grayscale else x
