"""Section 4's theory as code: the gradient through a BatchNorm layer in closed form, and each statement of the
section evaluated on both sides for given tensors (paper Sec. 4 and App. C; `../shared/paper.md` section 3).

Notation (paper Sec. 4.1). One unit j of a layer over a batch of m examples: y in R^m its pre-normalisation
activations, mu and sigma^2 their batch mean and *biased* variance, y_hat = (y - mu) / sigma, z = gamma y_hat + beta.
A downstream loss L(z) is shared by both networks: the standard network reads it at its activations, the BN network
is L_hat(y) = L(z(y)). So g_hat = dL/dz is the standard network's gradient of Theorem 4.1 ("the standard reading")
and dL_hat/dy the BN network's. gamma and beta are constants, as in the paper.

Real BatchNorm (PyTorch) divides by sqrt(sigma^2 + eps) instead of sigma. Every function takes `eps` (0: the
theorem's BN) and computes the *layer* with it, while the theorems' right-hand sides always use the theorem's sigma
and y_hat: with eps > 0 the difference between the sides is what real BN changes (`real_bn_deviation`).

Tensors hold the batch along dim 0. The closed-form helpers (`batch_moments`, `normalize`, `project`,
`bn_input_grad`, `gain_identity`) take several units as the columns of an (m, n) tensor; the statements take one unit
y in R^m and a downstream loss, and return a dict with `lhs`, `rhs` (the statement in its proof-consistent form),
`printed` (the right side as printed in arXiv v3, where it differs) and `scale`, the size of the terms involved, to
which rounding errors are relative (tolerances are multiples of machine epsilon times `scale`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

Loss = Callable[[Tensor], Tensor]


# --- the layer and its gradient -------------------------------------------------------------------------------------

def batch_moments(y: Tensor, eps: float = 0.0) -> tuple[Tensor, Tensor]:
    """(mu, sigma) over the batch (dim 0): the mean and sqrt(biased variance + eps), per unit."""
    if y.dim() not in (1, 2) or y.shape[0] < 2:
        raise ValueError(f"y must be (m,) or (m, units) with a batch of m >= 2, got shape {tuple(y.shape)}")
    mu = y.mean(0)
    sigma = ((y - mu).pow(2).mean(0) + eps).sqrt()
    if not bool((sigma > 0).all()):
        raise ValueError("a unit is constant over the batch (sigma = 0) and eps = 0: BatchNorm is undefined there; "
                         "pass eps > 0 or a batch whose values differ")
    return mu, sigma


def normalize(y: Tensor, eps: float = 0.0) -> Tensor:
    """y_hat = (y - mu) / sqrt(sigma^2 + eps) per unit; with eps = 0 each column has mean 0 and norm sqrt(m)."""
    mu, sigma = batch_moments(y, eps)
    return (y - mu) / sigma


def bn(y: Tensor, gamma: Tensor | float, beta: Tensor | float = 0.0, eps: float = 0.0) -> Tensor:
    """z = gamma * y_hat + beta, BatchNorm in training mode (batch statistics) with constant gamma and beta."""
    return gamma * normalize(y, eps) + beta


def project(g: Tensor, y_hat: Tensor) -> Tensor:
    """(I - 1 1^T/m - y_hat y_hat^T/m) g per unit (eq. 47): g minus its mean and minus its component along y_hat.

    For the theorem's y_hat (eps = 0) this is the orthogonal projection onto the complement of span{1, y_hat},
    since 1 and y_hat are orthogonal and both have squared norm m.
    """
    return g - g.mean(0) - y_hat * (g * y_hat).mean(0)


def bn_input_grad(g: Tensor, y: Tensor, gamma: Tensor | float, eps: float = 0.0) -> Tensor:
    """dL_hat/dy from g = dL/dz in closed form, eq. 47: (gamma / sigma) (I - 1 1^T/m - y_hat y_hat^T/m) g.

    Holds for real BatchNorm too, with sigma = sqrt(var + eps) and y_hat normalised by it (then the matrix is no
    longer a projection: it keeps a fraction (eps / (var + eps)) of the component along y_hat).
    """
    _, sigma = batch_moments(y, eps)
    return gamma / sigma * project(g, normalize(y, eps))


def fact_c1_grad(g: Tensor, y: Tensor, gamma: Tensor | float, eps: float = 0.0) -> Tensor:
    """Fact C.1 exactly as printed, for B = y_hat and C = z: gamma/(m sigma) (m g_b - sum_k g_k - B_b sum_k g_k B_k).

    The same quantity as `bn_input_grad` (eq. 47 is its vector form); kept literal to check the printed formula.
    """
    m = y.shape[0]
    _, sigma = batch_moments(y, eps)
    b = normalize(y, eps)
    return gamma / (m * sigma) * (m * g - g.sum(0) - b * (g * b).sum(0))


def fact_c2_jacobian(y: Tensor, eps: float = 0.0) -> Tensor:
    """Fact C.2 as printed, for one unit y in R^m: the m x m Jacobian d y_hat_b / d y_k =
    (1/sigma) (1[b = k] - 1/m - y_hat_b y_hat_k / m)."""
    if y.dim() != 1:
        raise ValueError(f"fact_c2_jacobian takes one unit, y of shape (m,), got {tuple(y.shape)}")
    m = y.shape[0]
    _, sigma = batch_moments(y, eps)
    b = normalize(y, eps)
    eye = torch.eye(m, dtype=y.dtype, device=y.device)
    return (eye - 1 / m - torch.outer(b, b) / m) / sigma


def gain_identity(gamma: Tensor, var: Tensor, eps: float, removed_mean: Tensor, removed_yhat: Tensor) -> Tensor:
    """||dL_hat/dy||^2 / ||g_hat||^2 per unit from Theorem 4.1's decomposition, for real BatchNorm:

        (gamma^2 / (var + eps)) (1 - removed_mean - (1 - (1 - rho)^2) removed_yhat),   rho = var / (var + eps),

    where removed_mean = <1, g>^2 / (m ||g||^2) and removed_yhat = <g, e>^2 / ||g||^2 with e = (y - mu)/||y - mu||
    are the fractions of ||g||^2 along 1 and along y_hat. With eps = 0 (rho = 1) this is Theorem 4.1 with coefficient
    1/m and equality; with eps > 0 real BN removes only the fraction 1 - (1 - rho)^2 of the y_hat component and scales
    by gamma^2/(var + eps) instead of gamma^2/var.
    """
    rho = var / (var + eps)
    return gamma.pow(2) / (var + eps) * (1 - removed_mean - (1 - (1 - rho).pow(2)) * removed_yhat)


# --- the statements -------------------------------------------------------------------------------------------------

def _unit(y: Tensor, name: str) -> None:
    if y.dim() != 1:
        raise ValueError(f"{name} takes one unit, y of shape (m,), got {tuple(y.shape)}")


def layer_grads(loss: Loss, y: Tensor, gamma: float, beta: float = 0.0, eps: float = 0.0,
                create_graph: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(y as a leaf, z, dL_hat/dy, g_hat = dL/dz) by autograd, for the BN layer with `eps` at y."""
    y = y.detach().requires_grad_()
    z = bn(y, gamma, beta, eps)
    grad_y, g = torch.autograd.grad(loss(z), (y, z), create_graph=create_graph)
    return y, z, grad_y, g


def theorem_4_1(loss: Loss, y: Tensor, gamma: float, beta: float = 0.0, eps: float = 0.0) -> dict[str, Tensor]:
    """Theorem 4.1 for one unit: lhs = ||dL_hat/dy||^2 (by autograd through the layer with `eps`) and

        rhs     = gamma^2/sigma^2 (||g||^2 - <1, g>^2 / m - <g, y_hat>^2 / m)        (coefficient 1/m, as the proof has)
        printed = gamma^2/sigma^2 (||g||^2 - <1, g>^2 / m - <g, y_hat>^2 / sqrt(m))   (as printed in v3)

    with g = g_hat = dL/dz and the theorem's sigma and y_hat. With eps = 0, lhs = rhs exactly; the printed version
    falls below lhs by gamma^2/sigma^2 (1/sqrt(m) - 1/m) <g, y_hat>^2, so it fails whenever <g, y_hat> != 0, m > 1.
    """
    _unit(y, "theorem_4_1")
    m = y.shape[0]
    _, _, grad_y, g = layer_grads(loss, y, gamma, beta, eps)
    _, sigma = batch_moments(y)
    y_hat = normalize(y)
    k = gamma ** 2 / sigma ** 2
    gg, mean_part, yhat_part = g.dot(g), g.sum().pow(2), g.dot(y_hat).pow(2)
    return {"lhs": grad_y.dot(grad_y),
            "rhs": k * (gg - mean_part / m - yhat_part / m),
            "printed": k * (gg - mean_part / m - yhat_part / math.sqrt(m)),
            "scale": k * gg}


def theorem_4_2(loss: Loss, y: Tensor, gamma: float, beta: float = 0.0, eps: float = 0.0) -> dict[str, Tensor]:
    """Theorem 4.2 for one unit, with v = dL_hat/dy, g = g_hat = dL/dz and H = d^2 L / dz^2 at z:

        lhs    = v^T (d^2 L_hat / dy^2) v                                   (autograd, through the layer with `eps`)
        rhs    = gamma^2/sigma^2 v^T H v - gamma/(m sigma^2) <g, y_hat> ||v||^2          (first form; equality)
        second = gamma^2/sigma^2 (g^T H g - <g, y_hat> ||v||^2 / (m gamma))             (second form)

    The first form holds with equality for the theorem's BN: since v lies in the range of the projection, the layer's
    Jacobian maps v to (gamma/sigma) v, and the curvature of y_hat along v contributes -y_hat ||v||^2/(m sigma^2).
    The second form replaces v^T H v by g^T H g: it follows from the first only where v^T H v <= g^T H g (the
    paper's assumption that H "preserves the relative norms" of g and v gives that only if ||v|| <= ||g||).
    Also returned: `sign` = <g, y_hat> (the reduction needs it positive, for gamma > 0), `gain` = ||v||^2 / ||g||^2
    and `rayleigh` = (v^T H v / ||v||^2) / (g^T H g / ||g||^2). The second form fails exactly where v^T H v >
    g^T H g, so where gain > 1 or rayleigh > 1: the paper's assumption, read as rayleigh = 1, gives it only with
    gain <= 1.
    """
    _unit(y, "theorem_4_2")
    m = y.shape[0]
    y_leaf, z, grad_y, g = layer_grads(loss, y, gamma, beta, eps, create_graph=True)
    v = grad_y.detach()
    lhs = torch.autograd.grad(grad_y.dot(v), y_leaf)[0].dot(v)
    z0 = z.detach().requires_grad_()
    dz = torch.autograd.grad(loss(z0), z0, create_graph=True)[0]
    g = g.detach()
    hv, hg = (torch.autograd.grad(dz.dot(u), z0, retain_graph=True)[0] for u in (v, g))
    _, sigma = batch_moments(y)
    sign = g.dot(normalize(y))
    vv = v.dot(v)
    k = gamma ** 2 / sigma ** 2
    # Rounding errors in v are of size u * |gamma|/sigma * ||g|| in any direction, whatever v's size (at m = 2, v = 0
    # exactly in theory): the terms are sized with that bound on ||v||, and ||H|| estimated along v and g.
    g_norm = g.norm()
    h_norm = torch.stack([hv.norm() / v.norm(), hg.norm() / g_norm]).nan_to_num(0).amax()
    v_bound = k * g_norm ** 2
    return {"lhs": lhs,
            "rhs": k * v.dot(hv) - gamma / (m * sigma ** 2) * sign * vv,
            "second": k * (g.dot(hg) - sign * vv / (m * gamma)),
            "sign": sign,
            "gain": vv / g.dot(g),
            "rayleigh": (v.dot(hv) / vv) / (g.dot(hg) / g.dot(g)),
            "scale": k * h_norm * v_bound + abs(gamma) / (m * sigma ** 2) * g_norm * math.sqrt(m) * v_bound}


def observation_4_3(y: Tensor, eps: float = 0.0) -> dict[str, Tensor]:
    """Observation 4.3 for one or more units: with gamma = sqrt(var + eps) (gamma = sigma for the theorem's BN) and
    beta = mu, BatchNorm returns its input. lhs = the layer's output z, rhs = y, plus the `gamma` and `beta` used."""
    mu, sigma = batch_moments(y, eps)
    return {"lhs": bn(y, sigma, mu, eps), "rhs": y, "gamma": sigma, "beta": mu, "scale": y.abs().amax(0)}


def worst_input(u: Tensor, lam: float, d: int) -> Tensor:
    """An input X (m x d) with ||X|| = lam maximising ||X^T u||^2 (the value is lam^2 ||u||^2): X = lam u e_1^T/||u||.
    Rank one, so its spectral and Frobenius norms agree and it is the maximiser under either."""
    x = torch.zeros(u.shape[0], d, dtype=u.dtype, device=u.device)
    norm = u.norm()
    if norm > 0:
        x[:, 0] = lam * u / norm
    else:  # u = 0 (e.g. BN's gradient at m = 2): every X attains the maximum, 0
        x[0, 0] = lam
    return x


def theorem_4_4(loss: Loss, y: Tensor, gamma: float, lam: float, d: int = 3, beta: float = 0.0,
                eps: float = 0.0) -> dict[str, Tensor]:
    """Theorem 4.4 for one unit, with y = X W_j held fixed as in the proof: the worst-case squared weight gradient
    max_{||X|| <= lam} ||X^T dL/dy||^2 of each network, evaluated at its maximiser (`worst_input`), and

        lhs       = max ||X^T dL_hat/dy||^2                     (= lam^2 ||dL_hat/dy||^2)
        rhs       = gamma^2/sigma^2 (g_j - lam^2 m mu_g^2 - lam^2/m <g, y_hat>^2)   (proof-consistent; equality)
        printed   = gamma^2/sigma^2 (g_j^2 - m mu_g^2 - lam^2 <g, y_hat>^2)          (as printed in v3)
        unsquared = gamma^2/sigma^2 (g_j - m mu_g^2 - lam^2 <g, y_hat>^2)            (printed, g_j^2 read as g_j)

    where g_j = max ||X^T g||^2 = lam^2 ||g||^2 and mu_g is the mean of g = g_hat. Read literally, the printed form
    squares g_j (so it changes with the loss's scale as c^4 while lhs does as c^2); read with g_j^2 as the squared
    norm the definition already squares (`unsquared`), it keeps the printed lam^2 and 1/m elsewhere.
    """
    _unit(y, "theorem_4_4")
    m = y.shape[0]
    _, _, grad_y, g = layer_grads(loss, y, gamma, beta, eps)
    lhs = (worst_input(grad_y, lam, d).T @ grad_y).pow(2).sum()
    g_j = (worst_input(g, lam, d).T @ g).pow(2).sum()
    _, sigma = batch_moments(y)
    k = gamma ** 2 / sigma ** 2
    mu_g, yhat_part = g.mean(), g.dot(normalize(y)).pow(2)
    return {"lhs": lhs,
            "rhs": k * (g_j - lam ** 2 * m * mu_g ** 2 - lam ** 2 / m * yhat_part),
            "printed": k * (g_j ** 2 - m * mu_g ** 2 - lam ** 2 * yhat_part),
            "unsquared": k * (g_j - m * mu_g ** 2 - lam ** 2 * yhat_part),
            "scale": k * g_j}


def lemma_4_5(w0: Tensor, w_star: Tensor) -> dict[str, Tensor]:
    """Lemma 4.5 at its proof's construction: the BN optimum k W* with k = <W*, W0>/||W*||^2 (an optimum of the BN
    network by scale invariance, since k > 0). lhs = ||W0 - k W*||^2, rhs = ||W0 - W*||^2 - (||W*||^2 -
    <W*, W0>)^2 / ||W*||^2; also `k` and `standard` = ||W0 - W*||^2. Needs <W0, W*> > 0, the lemma's hypothesis."""
    w0, ws = w0.flatten(), w_star.flatten()
    inner, nn_ = ws.dot(w0), ws.dot(ws)
    if not inner > 0:
        raise ValueError(f"Lemma 4.5 needs <W0, W*> > 0 (got {float(inner):.3g}): otherwise k <= 0 and k W* is not an "
                         "optimum of the BN network")
    k = inner / nn_
    standard = (w0 - ws).pow(2).sum()
    return {"lhs": (w0 - k * ws).pow(2).sum(), "rhs": standard - (nn_ - inner) ** 2 / nn_, "k": k,
            "standard": standard, "scale": w0.dot(w0) + nn_}


@torch.no_grad()
def match_standard(bn_model: torch.nn.Module, std_model: torch.nn.Module, x: Tensor) -> None:
    """Observation 4.3 on a whole network, in place: give `bn_model` the weights of `std_model` (the same
    architecture with BatchNorm) and set every BatchNorm's gamma = sqrt(var + eps) and beta = mean of the standard
    network's pre-normalisation activations on the batch `x`. In training mode the BN network then computes the
    standard network's activations on `x`, layer by layer. Both models come from `bnrepro.models`."""
    loaded = bn_model.load_state_dict(std_model.state_dict(), strict=False)
    norm_names = {n for n, mod in bn_model.named_modules() if isinstance(mod, _BatchNorm)}
    if not norm_names or loaded.unexpected_keys or any(k.rsplit(".", 1)[0] not in norm_names
                                                       for k in loaded.missing_keys):
        raise ValueError("match_standard needs a bn_model with BatchNorm layers and otherwise std_model's "
                         "architecture (build both with bnrepro.models.build_model, norm='batch' and 'none')")
    std_layers, bn_layers = std_model.layers(), bn_model.layers()
    stats: dict[int, tuple[Tensor, Tensor]] = {}

    def record(k: int):
        def hook(module, inputs, output):
            t = output.movedim(1, -1).reshape(-1, output.shape[1])  # units (channels) last; conv: batch x H x W
            stats[k] = t.mean(0), t.var(0, unbiased=False)
        return hook

    norms = {k: layer.norm for k, layer in enumerate(bn_layers) if isinstance(getattr(layer, "norm", None), _BatchNorm)}
    handles = [std_layers[k].linear.register_forward_hook(record(k)) for k in norms]
    try:
        std_model(x)
    finally:
        for h in handles:
            h.remove()
    for k, norm in norms.items():
        mean, var = stats[k]
        norm.weight.copy_((var + norm.eps).sqrt())
        norm.bias.copy_(mean)


# --- real BatchNorm against the theorem's ----------------------------------------------------------------------------

def random_loss(m: int, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> Loss:
    """A random smooth convex downstream loss on R^m: L(z) = sum_i w_i softplus(<a_i, z> + c_i) with 2m Gaussian
    rows a_i / sqrt(m), offsets c_i and positive weights w_i, so its Hessian is positive semi-definite (the case the
    paper's Theorem 4.2 discusses) and couples the batch entries."""
    a = torch.randn(2 * m, m, generator=generator, dtype=dtype) / math.sqrt(m)
    c = torch.randn(2 * m, generator=generator, dtype=dtype)
    w = torch.rand(2 * m, generator=generator, dtype=dtype) + 0.5
    return lambda z: (w * torch.nn.functional.softplus(a @ z + c)).sum()


#: The random draws' ranges: a unit's standard deviation (log-uniform), |gamma| / sigma (log-uniform, kept 5% away
#: from 1) and the share of draws with negative gamma.
DRAW_STD = (1e-2, 1e2)
DRAW_GAMMA_RATIO = (0.1, 10.0)
DRAW_NEGATIVE_GAMMA = 0.3


def _log_uniform(bounds: tuple[float, float], generator: torch.Generator) -> float:
    lo, hi = (math.log10(b) for b in bounds)
    return 10 ** (lo + (hi - lo) * float(torch.rand(1, generator=generator)))


def random_batch(m: int, generator: torch.Generator, var: float | None = None,
                 dtype: torch.dtype = torch.float64) -> Tensor:
    """A unit's activations over a batch of m: Gaussian with a random offset (of the order of its spread), scaled
    to biased variance `var` (None: a random standard deviation, log-uniform over DRAW_STD)."""
    y = torch.randn(m, generator=generator, dtype=dtype)
    y = (y - y.mean()) / y.std(unbiased=False)
    sd = math.sqrt(var) if var is not None else _log_uniform(DRAW_STD, generator)
    return sd * y + sd * float(torch.randn(1, generator=generator, dtype=dtype))


def random_problem(m: int, generator: torch.Generator) -> tuple[Tensor, Loss, float, float]:
    """(y, loss, gamma, beta) for checking the statements: a unit over a batch of m (`random_batch`), a random
    downstream loss (`random_loss`), gamma with |gamma| / sigma log-uniform over DRAW_GAMMA_RATIO but at least 5%
    away from 1 (the theorems are about gamma != sigma), negative in a share DRAW_NEGATIVE_GAMMA of draws, and a
    Gaussian beta."""
    y = random_batch(m, generator)
    _, sigma = batch_moments(y)
    ratio = _log_uniform(DRAW_GAMMA_RATIO, generator)
    if abs(ratio - 1) < 0.05:
        ratio *= 2
    sign = -1 if float(torch.rand(1, generator=generator)) < DRAW_NEGATIVE_GAMMA else 1
    return y, random_loss(m, generator), sign * ratio * float(sigma), float(torch.randn(1, generator=generator))


#: Tolerance of an identity between two float computations, in units of TOLERANCE_UNITS * m * u * cond * scale.
TOLERANCE_UNITS = 8


def rounding_tolerance(m: int, scale: Tensor | float, y: Tensor | None = None) -> float:
    """How far two computations of one quantity built from length-m sums may differ by rounding alone:
    TOLERANCE_UNITS * m * u * cond * scale, with u the unit roundoff of float64, m u the standard bound on a
    length-m sum's relative error (relative to the sum of its terms' magnitudes), cond = 1 + |mu|/sigma over the
    units of y (centring y loses that factor of relative accuracy; 1 without y), `scale` the size of the terms
    (each statement returns it) and TOLERANCE_UNITS = 8 for the handful of chained sums, products and square
    roots in each side."""
    cond = 1.0
    if y is not None:
        mu, sigma = batch_moments(y)
        cond = float((1 + mu.abs() / sigma).amax())
    u = torch.finfo(torch.float64).eps / 2
    return TOLERANCE_UNITS * m * u * cond * float(torch.as_tensor(scale).detach().abs().amax())


def real_bn_deviation(var: float, eps: float = 1e-5, m: int = 128, draws: int = 16, k: float = 0.5,
                      seed: int = 0) -> dict[str, float]:
    """How far real BatchNorm (variance + eps) is from each identity, for a unit of batch variance `var`: the median
    over `draws` random units and losses of |lhs - rhs| / |rhs|, the left side computed through the layer with eps and
    the right side with the theorem's sigma and y_hat (gamma = 1.5).

    Keys: "thm41" (gradient norm), "thm42" (curvature along the gradient), "thm44" (worst-case weight gradient),
    "obs43" (activations reproduced with gamma = sigma, relative to the centred activations) and "lemma45" (scale
    invariance: the change of y_hat when the weights are scaled by `k`, relative to y_hat). Theorem 4.1's
    deviation is exactly rho (1 + (1 - rho)^2 b) - 1 with rho = var/(var+eps) and b the ratio of g's component along
    y_hat to its component outside span{1, y_hat} (`gain_identity`); Observation 4.3's is 1 - sqrt(rho).
    """
    gen = torch.Generator().manual_seed(seed)
    rel = {key: [] for key in ("thm41", "thm42", "thm44", "obs43", "lemma45")}
    for _ in range(draws):
        y, loss = random_batch(m, gen, var), random_loss(m, gen)
        for key, fn in (("thm41", theorem_4_1), ("thm42", theorem_4_2)):
            s = fn(loss, y, 1.5, eps=eps)
            rel[key].append(float((s["lhs"] - s["rhs"]).abs() / s["rhs"].abs()))
        s = theorem_4_4(loss, y, 1.5, lam=2.0, eps=eps)
        rel["thm44"].append(float((s["lhs"] - s["rhs"]).abs() / s["rhs"].abs()))
        mu, sigma = batch_moments(y)
        z = bn(y, sigma, mu, eps)  # the theorem's construction gamma = sigma, applied to the real layer
        rel["obs43"].append(float((z - y).norm() / (y - mu).norm()))
        y_hat = normalize(y, eps)
        rel["lemma45"].append(float((normalize(k * y, eps) - y_hat).norm() / y_hat.norm()))
    return {key: statistics.median(v) for key, v in rel.items()}


# --- the step-size link ---------------------------------------------------------------------------------------------

def gd_on_quadratic(curvatures: Tensor, w0: Tensor, lr: float, steps: int) -> dict[str, Tensor]:
    """Exact gradient descent on f(w) = 1/2 sum_i lambda_i w_i^2 (any quadratic, in its eigenbasis) from w0.

    Returns per step t: `loss` f(w_t) (steps + 1 values), `curvature` g^T A g / ||g||^2, the curvature along the step
    taken at t, and `beta` ||A g|| / ||g||, the paper's effective beta-smoothness measured along g (on a quadratic
    grad f(w - eta g) = g - eta A g at every eta). Since f(w - lr g) - f(w) = -lr ||g||^2 (1 - lr curvature / 2), a
    step lowers the loss exactly when the curvature along it is below 2/lr; the iteration converges from every w0
    exactly when every lambda_i lies in (0, 2/lr), since each coordinate is multiplied by (1 - lr lambda_i) per step.
    """
    a, w = curvatures, w0.clone()
    loss, curv, beta = [0.5 * (a * w * w).sum()], [], []
    for _ in range(steps):
        g = a * w
        gg = g.dot(g)
        curv.append((a * g).dot(g) / gg)
        beta.append((a * g).norm() / gg.sqrt())
        w = w - lr * g
        loss.append(0.5 * (a * w * w).sum())
    return {"loss": torch.stack(loss), "curvature": torch.stack(curv), "beta": torch.stack(beta)}
