"""Activation distributions (Figures 1c, 2, 6, 8, 9): one random unit per chosen layer, read off the training pass.

For each chosen layer the recorder follows one unit (a channel for convolutions, whose height and width count as
batch, as in the paper's Appendix A.2.1), chosen at random from the run's seed, at two points: the output of the
layer's normalisation ("post": what BatchNorm, noisy BatchNorm or l_p normalisation produce) and its input ("pre":
the conv or linear output, the distribution BatchNorm is handed). For the standard network the two coincide. It
reads both through one forward hook on the *training* forward pass, so it costs no extra pass and cannot change the
trajectory. Every step it keeps the unit's mean and variance (Figure 8); at probe steps it also keeps quantiles of
the unit's distribution, from which the ridge plots draw densities.
"""

from __future__ import annotations

import torch
from torch import nn

N_QUANTILES = 65


class ActivationRecorder:
    def __init__(self, model: nn.Module, layers: tuple[int, ...], steps: int, seed: int,
                 device: torch.device | str, n_quantiles: int = N_QUANTILES):
        all_layers = model.layers()
        for i in layers:
            if not 1 <= i <= len(all_layers):
                raise ValueError(f"activation layer {i} out of range: the model has layers 1..{len(all_layers)}")
        g = torch.Generator().manual_seed(seed + 7919)
        self.layers = tuple(layers)
        self.units = [int(torch.randint(all_layers[i - 1].linear.out_features
                                        if isinstance(all_layers[i - 1].linear, nn.Linear)
                                        else all_layers[i - 1].linear.out_channels, (1,), generator=g))
                      for i in layers]
        self.moments = torch.zeros(steps, len(layers), 2, device=device)  # post: [step, layer, (mean, var)]
        self.pre_moments = torch.zeros(steps, len(layers), 2, device=device)
        self.qs = torch.linspace(0, 1, n_quantiles, device=device)
        self.quantiles: list[torch.Tensor] = []  # post, one [layer, quantile] tensor per probe step
        self.pre_quantiles: list[torch.Tensor] = []
        self.step, self.active, self.keep_quantiles = 0, False, False
        self._targets = (self.moments[0], self.pre_moments[0])  # where this pass's (post, pre) moments go
        self._row: list[torch.Tensor] = []
        self._pre_row: list[torch.Tensor] = []
        self._handles = [all_layers[i - 1].norm.register_forward_hook(self._hook(k)) for k, i in enumerate(layers)]

    def _hook(self, k: int):
        def hook(module, inputs, output):
            if not self.active:
                return
            (post, pre) = self._targets
            for t, moments, row in ((output, post, self._row), (inputs[0], pre, self._pre_row)):
                x = t.detach()[:, self.units[k]].reshape(-1).float()
                moments[k, 0] = x.mean()
                moments[k, 1] = x.var(unbiased=False)
                if self.keep_quantiles:
                    row.append(torch.quantile(x, self.qs))
        return hook

    def observe(self, step: int, keep_quantiles: bool, rows: tuple[torch.Tensor, torch.Tensor] | None = None):
        """Arm the hooks for the training forward pass of `step`; use as a context manager. With `rows`, the moments
        go to those two [layer, 2] tensors (post, pre) instead of step `step`'s (a CUDA graph's static outputs)."""
        self.step, self.keep_quantiles = step, keep_quantiles
        self._targets = rows or (self.moments[step], self.pre_moments[step])
        return self

    def __enter__(self):
        self.active, self._row, self._pre_row = True, [], []
        return self

    def __exit__(self, *exc):
        self.active = False
        if self.keep_quantiles and len(self._row) == len(self.layers):
            self.quantiles.append(torch.stack(self._row))
            self.pre_quantiles.append(torch.stack(self._pre_row))

    def close(self) -> None:
        for h in self._handles:
            h.remove()
