"""Adam over the stacked parameters of a fused fold group: one step count per fold and a per-step mask."""

import torch


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
