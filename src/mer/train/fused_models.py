"""K timm models of one architecture as one: stacked weights and buffers, one vmap'd forward."""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap


class VmapConv2d(nn.Conv2d):
    """nn.Conv2d as a fused group computes it; the same parameters and the same function.

    - A 1x1 convolution (groups 1, no padding) is a matrix product: under vmap one batched GEMM over the
      K folds, where vmap's convolution rule runs cuDNN's grouped convolution with K groups, which has no
      fast kernel for this shape (most of ResNeXt's arithmetic is in its 1x1 convolutions). The product
      is laid out so that the smaller operand is the one copied: the weight, once per image (early
      stages, large images), or the activations, as one (C, N*H*W) matrix (late stages, small images).
    - compute_dtype (bf16, say): the product in that type, fp32 in and out, the bias added in fp32. This
      is autocast's rule for convolutions, by hand, because autocast under vmap leaves some of its casts
      undone (see mer.train.fused.fused_settings); BatchNorm and everything else stay fp32.
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
