"""bnrepro.theory: the closed-form gradient through BatchNorm against autograd, and each statement of Section 4 on
many random draws (float64, batch sizes from 2 to 1024, gamma != sigma).

Tolerances follow from the computation's conditioning, never from what passed once: an identity is tested to
`theory.rounding_tolerance` (a small multiple of m u cond times the size of the terms; see its docstring).
"""

import math

import pytest
import torch
import torch.nn.functional as F

from bnrepro import theory as T
from bnrepro.models import build_model

U = torch.finfo(torch.float64).eps / 2
BATCHES = [2, 3, 8, 128, 1024]
DRAWS = 40
tol = T.rounding_tolerance


def draws(m: int, n: int = DRAWS, seed: int = 0):
    """`theory.random_problem` n times: (y, loss, gamma, beta) with gamma != sigma."""
    gen = torch.Generator().manual_seed(1000 * m + seed)
    for _ in range(n):
        yield T.random_problem(m, gen)


# --- the gradient through the layer ----------------------------------------------------------------------------------

@pytest.mark.parametrize("eps", [0.0, 1e-5])
@pytest.mark.parametrize("m", BATCHES)
def test_closed_form_gradient_matches_autograd_and_pytorch_batchnorm(m, eps):
    """Eq. 47 (`bn_input_grad`) and Fact C.1 as printed agree with autograd through our layer and through PyTorch's
    own F.batch_norm (training mode, the same eps): `bn` with eps is real BatchNorm."""
    gen = torch.Generator().manual_seed(m)
    n = 5
    var = torch.tensor([1e-6, 1e-4, 1.0, 30.0, 1e3], dtype=torch.float64)
    y = torch.randn(m, n, generator=gen, dtype=torch.float64) * var.sqrt() + torch.randn(n, generator=gen,
                                                                                       dtype=torch.float64)
    gamma = torch.randn(n, generator=gen, dtype=torch.float64)
    beta = torch.randn(n, generator=gen, dtype=torch.float64)
    g = torch.randn(m, n, generator=gen, dtype=torch.float64)
    y_leaf = y.clone().requires_grad_()
    ours = torch.autograd.grad((T.bn(y_leaf, gamma, beta, eps) * g).sum(), y_leaf)[0]
    theirs = None
    if eps > 0:
        y_leaf = y.clone().requires_grad_()
        z = F.batch_norm(y_leaf, None, None, gamma, beta, training=True, eps=eps)
        assert torch.allclose(z, T.bn(y, gamma, beta, eps), rtol=0, atol=tol(m, z.abs().amax(), y))
        theirs = torch.autograd.grad((z * g).sum(), y_leaf)[0]
    _, sigma = T.batch_moments(y, eps)
    scale = gamma.abs() / sigma * g.abs().amax(0)
    for closed in (T.bn_input_grad(g, y, gamma, eps), T.fact_c1_grad(g, y, gamma, eps)):
        for reference in (ours, theirs):
            if reference is not None:
                err = (closed - reference).abs().amax(0)
                assert (err <= tol(m, 1, y) * scale).all(), (err / scale).max()


@pytest.mark.parametrize("eps", [0.0, 1e-3])
@pytest.mark.parametrize("m", [2, 3, 8, 128])
def test_fact_c2_jacobian_matches_autograd(m, eps):
    gen = torch.Generator().manual_seed(m)
    y = T.random_batch(m, gen, var=1e-3)
    jac = torch.autograd.functional.jacobian(lambda t: T.normalize(t, eps), y)
    _, sigma = T.batch_moments(y, eps)
    assert torch.allclose(T.fact_c2_jacobian(y, eps), jac, rtol=0, atol=tol(m, 1 / sigma, y))


def test_projection_is_orthogonal_and_kills_mean_and_y_hat():
    gen = torch.Generator().manual_seed(0)
    m = 64
    y_hat = T.normalize(T.random_batch(m, gen))
    p = torch.stack([T.project(e, y_hat) for e in torch.eye(m, dtype=torch.float64)])
    t = tol(m, 1, None)
    assert torch.allclose(p, p.T, atol=t) and torch.allclose(p @ p, p, atol=t)
    assert p.sum(0).abs().max() < t and (p @ y_hat).abs().max() < t * m
    assert abs(float(torch.trace(p)) - (m - 2)) < t * m  # rank m - 2


def test_bad_batches_name_the_problem():
    with pytest.raises(ValueError, match="m >= 2"):
        T.batch_moments(torch.ones(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="constant over the batch"):
        T.normalize(torch.full((4,), 3.0, dtype=torch.float64))
    assert torch.isfinite(T.normalize(torch.full((4,), 3.0, dtype=torch.float64), eps=1e-5)).all()
    with pytest.raises(ValueError, match="one unit"):
        T.theorem_4_1(lambda z: z.sum(), torch.randn(4, 2, dtype=torch.float64), 1.0)


# --- the statements ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("m", BATCHES)
def test_theorem_4_1_holds_with_equality_at_1_over_m_and_fails_as_printed(m):
    """lhs = rhs (coefficient 1/m) on every draw; the printed 1/sqrt(m) version lies below lhs by exactly
    gamma^2/sigma^2 (1/sqrt(m) - 1/m) <g, y_hat>^2, so it fails (m > 1) whenever that gap exceeds rounding."""
    failed = 0
    for y, loss, gamma, beta in draws(m):
        s = T.theorem_4_1(loss, y, gamma, beta)
        t = tol(m, s["scale"], y)
        assert abs(float(s["lhs"] - s["rhs"])) <= t
        _, _, _, g = T.layer_grads(loss, y, gamma, beta)
        _, sigma = T.batch_moments(y)
        gap = gamma ** 2 / sigma ** 2 * (1 / math.sqrt(m) - 1 / m) * g.dot(T.normalize(y)) ** 2
        assert abs(float(s["lhs"] - s["printed"] - gap)) <= t
        failed += bool(s["lhs"] - s["printed"] > t)
    assert failed == DRAWS


@pytest.mark.parametrize("m", BATCHES)
def test_theorem_4_2_first_form_holds_with_equality(m):
    for y, loss, gamma, beta in draws(m):
        s = T.theorem_4_2(loss, y, gamma, beta)
        assert abs(float(s["lhs"] - s["rhs"])) <= tol(m, s["scale"], y)


def test_theorem_4_2_second_form_needs_the_gradient_not_to_grow():
    """With H = c I (H "preserves relative norms" of every pair) the second form holds exactly when
    ||dL_hat/dy|| <= ||g_hat||: true for gamma <= sigma, and it fails for gamma large enough."""
    gen = torch.Generator().manual_seed(7)
    m, c = 32, 0.7
    y = T.random_batch(m, gen)
    b = torch.randn(m, generator=gen, dtype=torch.float64)
    loss = lambda z: 0.5 * c * z.dot(z) + b.dot(z)  # noqa: E731
    _, sigma = T.batch_moments(y)
    for ratio, holds in ((0.3, True), (1.0, True), (30.0, False)):
        s = T.theorem_4_2(loss, y, ratio * float(sigma))
        t = tol(m, s["scale"], y)
        assert abs(float(s["lhs"] - s["rhs"])) <= t
        assert (float(s["second"] - s["lhs"]) >= -t) is holds, ratio


@pytest.mark.parametrize("m", BATCHES)
def test_observation_4_3_reproduces_the_activations(m):
    gen = torch.Generator().manual_seed(m)
    y = torch.stack([T.random_batch(m, gen) for _ in range(6)], 1)
    for eps in (0.0, 1e-5):
        s = T.observation_4_3(y, eps)
        assert ((s["lhs"] - s["rhs"]).abs().amax(0) <= tol(m, 1, y) * s["scale"]).all()


@pytest.mark.parametrize("model", ["dln", "vgg11"])
def test_observation_4_3_on_a_whole_network(model):
    """The BN network with the standard network's weights, gamma = sqrt(var + eps) and beta = mean per unit computes
    the standard network's output on that batch (training mode). Compared relative to the output's size, with the
    depth's compounding of rounding (25 layers) bounded by a factor 100 over one layer's bound."""
    torch.manual_seed(0)
    width = 1 / 16
    std = build_model(model, "none", width).double().train()
    bnm = build_model(model, "batch", width).double().train()
    x = torch.randn(32, 10, dtype=torch.float64) if model == "dln" else torch.randn(16, 3, 32, 32,
                                                                                 dtype=torch.float64)
    T.match_standard(bnm, std, x)
    out_std, out_bn = std(x), bnm(x)
    m = x.shape[0] * (1 if model == "dln" else 32 * 32)
    assert (out_bn - out_std).abs().max() <= 100 * tol(m, out_std.abs().max())
    with pytest.raises(ValueError, match="BatchNorm layers"):
        T.match_standard(build_model(model, "none", width), std, x)


@pytest.mark.parametrize("m", BATCHES)
def test_theorem_4_4_proof_consistent_form_holds_with_equality(m):
    for y, loss, gamma, beta in draws(m):
        lam = 0.1 + 3 * abs(beta)
        s = T.theorem_4_4(loss, y, gamma, lam, beta=beta)
        assert abs(float(s["lhs"] - s["rhs"])) <= tol(m, s["scale"], y)


def test_theorem_4_4_printed_form_depends_on_the_loss_scale():
    """Scaling the loss by c scales lhs by c^2 but the printed g_j^2 term by c^4: the printed bound holds for large
    losses and fails for small ones on the same unit, which a correct bound could not."""
    gen = torch.Generator().manual_seed(3)
    m = 64
    y, loss = T.random_batch(m, gen), T.random_loss(m, gen)
    _, sigma = T.batch_moments(y)
    holds = {}
    for c in (1e-3, 1e3):
        s = T.theorem_4_4(lambda z: c * loss(z), y, 2 * float(sigma), lam=1.0)
        holds[c] = bool(s["lhs"] <= s["printed"])
        assert abs(float(s["lhs"] - s["rhs"])) <= tol(m, s["scale"], y)
    assert holds == {1e-3: False, 1e3: True}


def test_worst_input_is_the_maximiser():
    gen = torch.Generator().manual_seed(5)
    m, d, lam = 40, 6, 2.5
    u = torch.randn(m, generator=gen, dtype=torch.float64)
    best = float(lam ** 2 * u.dot(u))
    x = T.worst_input(u, lam, d)
    assert abs(float(torch.linalg.matrix_norm(x, 2)) - lam) <= tol(m, lam)
    assert abs(float((x.T @ u).pow(2).sum()) - best) <= tol(m, best)
    for _ in range(200):
        r = torch.randn(m, d, generator=gen, dtype=torch.float64)
        for norm in (torch.linalg.matrix_norm(r, 2), torch.linalg.matrix_norm(r)):
            assert float((lam * r / norm).T.matmul(u).pow(2).sum()) <= best + tol(m, best)


@pytest.mark.parametrize("shape", [(10,), (10, 10), (64, 3, 3)])
def test_lemma_4_5_holds_with_equality_at_its_construction(shape):
    gen = torch.Generator().manual_seed(len(shape))
    n = 0
    while n < DRAWS:
        w0 = torch.randn(shape, generator=gen, dtype=torch.float64)
        ws = torch.randn(shape, generator=gen, dtype=torch.float64) * 3 + 0.5 * w0
        if float((w0 * ws).sum()) <= 0:
            with pytest.raises(ValueError, match="needs <W0, W\\*> > 0"):
                T.lemma_4_5(w0, ws)
            continue
        s = T.lemma_4_5(w0, ws)
        size = w0.numel()
        assert abs(float(s["lhs"] - s["rhs"])) <= tol(size, s["scale"])
        assert s["lhs"] <= s["standard"] + tol(size, s["scale"])
        n += 1


def test_the_lemmas_bn_optimum_is_an_optimum():
    """Scale invariance, which Lemma 4.5's proof uses: the theorem's BN gives the same output at k W* as at W*
    (k > 0), so k W* is an optimum whenever W* is; real BN's eps breaks it slightly (`real_bn_deviation`)."""
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(128, 10, generator=gen, dtype=torch.float64)
    w = torch.randn(10, 10, generator=gen, dtype=torch.float64)
    for k in (0.01, 0.5, 7.0):
        a, b = T.normalize(x @ (k * w).T), T.normalize(x @ w.T)
        assert (a - b).abs().max() <= tol(128, b.abs().max(), x @ w.T)


# --- real BatchNorm ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("m", [3, 8, 128])
def test_gain_identity_is_real_batchnorms_theorem_4_1(m):
    """With eps, ||dL_hat/dy||^2 / ||g||^2 = gamma^2/(var+eps) (1 - removed_mean - (1 - (1-rho)^2) removed_yhat)
    exactly, at batch variances from far below eps to far above it."""
    gen = torch.Generator().manual_seed(m)
    eps = 1e-5
    for var in (1e-8, 1e-6, 1e-5, 1e-4, 1.0):
        for _ in range(10):
            y, g = T.random_batch(m, gen, var), torch.randn(m, generator=gen, dtype=torch.float64)
            gamma = torch.tensor(2.0, dtype=torch.float64)
            v = T.bn_input_grad(g, y, gamma, eps)
            e = (y - y.mean()) / (y - y.mean()).norm()
            gg = g.dot(g)
            pred = T.gain_identity(gamma, y.var(unbiased=False), eps, g.sum() ** 2 / (m * gg), g.dot(e) ** 2 / gg)
            scale = gamma ** 2 / (y.var(unbiased=False) + eps)
            assert abs(float(v.dot(v) / gg - pred)) <= tol(m, scale, y)


def test_real_bn_deviation_vanishes_with_the_variance():
    """Far above eps, real BatchNorm satisfies the identities to about eps/var; at var = eps they are off by tens of
    percent. Observation 4.3's deviation is exactly 1 - sqrt(var/(var+eps))."""
    eps = 1e-5
    near, far = T.real_bn_deviation(eps, eps, m=32, draws=4), T.real_bn_deviation(1e3 * eps, eps, m=32, draws=4)
    for key in near:
        assert near[key] > 0.1 and far[key] < 5e-2 * near[key], key
    for var, dev in ((eps, near), (1e3 * eps, far)):
        assert abs(dev["obs43"] - (1 - math.sqrt(var / (var + eps)))) <= tol(32, 1, None) * 10


# --- the step-size link -----------------------------------------------------------------------------------------------

def test_gd_on_a_quadratic_lowers_the_loss_iff_the_curvature_along_the_step_is_below_2_over_lr():
    gen = torch.Generator().manual_seed(2)
    lr, checked = 0.1, 0
    for _ in range(50):
        n = int(torch.randint(2, 20, (1,), generator=gen))
        lam = 10 ** (torch.rand(n, generator=gen, dtype=torch.float64) * 3 - 1.5) * 20  # around 2/lr = 20
        r = T.gd_on_quadratic(lam, torch.randn(n, generator=gen, dtype=torch.float64), lr, 30)
        loss, curv = r["loss"], r["curvature"]
        assert ((r["beta"] >= curv * (1 - 1e-12)) & (r["beta"] <= lam.max() * (1 + 1e-12))).all()
        for t in range(30):
            # the change is -lr ||g||^2 (1 - lr curv / 2); skip steps within rounding of the boundary
            if abs(1 - lr * float(curv[t]) / 2) > 1e3 * U * n:
                assert bool(loss[t + 1] < loss[t]) is bool(curv[t] < 2 / lr)
                checked += 1
    assert checked > 1000


@pytest.mark.parametrize("stable", [True, False])
def test_gd_on_a_quadratic_converges_iff_every_curvature_is_below_2_over_lr(stable):
    """Below 2/lr every coordinate shrinks, so the loss falls at every step; one curvature above it grows by
    (1 - lr lambda)^2 > 1 per step and overtakes the loss after a computable number of steps."""
    gen = torch.Generator().manual_seed(3)
    lr = 0.1
    for _ in range(20):
        n = int(torch.randint(2, 20, (1,), generator=gen))
        lam = (0.05 + 0.9 * torch.rand(n, generator=gen, dtype=torch.float64)) * 2 / lr
        if not stable:
            lam[0] = (1.1 + 2 * float(torch.rand(1, generator=gen))) * 2 / lr
        w0 = torch.randn(n, generator=gen, dtype=torch.float64)
        loss0, top0 = 0.5 * float((lam * w0 * w0).sum()), 0.5 * float(lam[0] * w0[0] ** 2)
        steps = 50 if stable else math.ceil(math.log(loss0 / top0) / (2 * math.log(abs(1 - lr * float(lam[0]))))) + 1
        loss = T.gd_on_quadratic(lam, w0, lr, steps)["loss"]
        if stable:
            assert (loss[1:] < loss[:-1]).all()
        else:
            assert loss[-1] > loss[0]
