"""Weight norms and scale invariance (Part IV, "Beyond the paper").

A weight W whose layer feeds a BatchNorm layer is scale-invariant: L(aW) = L(W) for a > 0, so <grad_W L, W> = 0,
and one plain SGD step W' = W - lr grad_W L gives ||W'||^2 = ||W||^2 + lr^2 ||grad_W L||^2 exactly: the norm only
grows, and the effective learning rate lr / ||W||^2 falls. `WeightNormRecorder` keeps ||W_t||^2 (before the update)
and ||grad_W L||^2 of every training step for every paper layer's conv/linear weight, and
`scale_invariance_residuals` checks the identity on a record.

A record straight from `train` holds those float64 norms; a stored one holds what the readers read of them
(`bnrepro.records.FORMAT`): the residuals of the layers a normalisation follows, the gradient growth and the step-0
gradients. `residuals`, `gradient_growth` and `initial_grad_sq_norms` read either.

Two things keep the identity from holding to the last bit in a real run: BatchNorm's eps (it divides by
sqrt(var + eps), so <grad_W L, W> is of the order eps / var rather than 0) and the rounding of the update in the
weights' dtype. The layers without a normalisation after them (VGG's classifier, the DLN's last map, every layer of
a standard network) are not scale-invariant at all.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bnrepro.probes import layer_weight


class WeightNormRecorder:
    """||W_t||^2 and ||grad_W L(w_t)||^2 of each paper layer's weight at every step, in float64 on the device
    (`values[step, 0 | 1, layer]`, no device sync). Call `record(step)` after the backward pass and before the
    update; it reads the weights and their .grad and changes nothing."""

    def __init__(self, model: nn.Module, steps: int, device: torch.device | str):
        self.weights = [layer_weight(layer) for layer in model.layers()]
        self.values = torch.zeros(steps, 2, len(self.weights), dtype=torch.float64, device=device)

    @torch.no_grad()
    def row(self) -> torch.Tensor:
        """The current step's values, [0 | 1, layer]: ||W||^2 and ||grad_W L||^2."""
        sq = [torch.linalg.vector_norm(t, dtype=torch.float64) for w in self.weights for t in (w, w.grad)]
        return torch.stack(sq).view(-1, 2).T.square()

    def record(self, step: int) -> None:
        self.values[step] = self.row()


def scale_invariance_residuals(record) -> np.ndarray:
    """Relative residuals of ||W_{t+1}||^2 = ||W_t||^2 + lr^2 ||grad_W L||^2 on a record trained with
    `weight_norms=True`: [step t, layer] for every step but the last recorded one.

    The residual is (||W_{t+1}||^2 - ||W_t||^2 - lr^2 ||g_t||^2) / (2 lr ||W_t|| ||g_t||), which for plain SGD is
    exactly -cos(W_t, g_t): 0 for a scale-invariant weight, up to rounding and BatchNorm's eps (see the module
    docstring), and of order one where the identity fails. NaN where the gradient is zero.
    """
    lr = record.config["lr"]
    w, g = _norms(record, "weight norms")
    with np.errstate(divide="ignore", invalid="ignore"):
        return (w[1:] - w[:-1] - lr ** 2 * g[:-1]) / (2 * lr * np.sqrt(w[:-1] * g[:-1]))


def _norms(record, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The float64 (||W_t||^2, ||grad_W L||^2) of a record straight from `train`, or an error naming `what` is
    missing."""
    if "weight_grad_sq_norm" not in record.arrays:
        raise ValueError(f"the record has no {what}: train it with RunConfig(weight_norms=True) (a stored record "
                         "keeps them where bnrepro.records.FORMAT says)")
    return record["weight_sq_norm"], record["weight_grad_sq_norm"]


def residuals(record) -> np.ndarray:
    """`scale_invariance_residuals` of every layer but the output layer (the layers a normalisation follows in a BN
    network; the output layer feeds none), [step t, layer]: stored (`weight_residual`) or from the norms."""
    if "weight_residual" in record.arrays:
        return record["weight_residual"]
    return scale_invariance_residuals(record)[:, :-1]


def growth(norms: np.ndarray) -> np.ndarray:
    """The first layer's gradient norm ÷ the last normalised layer's (the one before the output layer, which no
    normalisation follows), over the last axis (the layers)."""
    norms = np.asarray(norms, float)
    with np.errstate(divide="ignore", invalid="ignore"):  # a diverged run's
        return norms[..., 0] / norms[..., -2]


def gradient_growth(record) -> np.ndarray:
    """`growth` of the weight-gradient norms at every step: stored (`weight_grad_growth`) or from the norms."""
    if "weight_grad_growth" in record.arrays:
        return record["weight_grad_growth"]
    return growth(np.sqrt(_norms(record, "weight-gradient norms")[1]))


def initial_grad_sq_norms(record) -> np.ndarray:
    """||grad_W L||^2 of every layer at step 0, on the run's first batch: stored (`init_grad_sq_norm`) or from the
    norms."""
    if "init_grad_sq_norm" in record.arrays:
        return record["init_grad_sq_norm"]
    return _norms(record, "weight-gradient norms")[1][0]
