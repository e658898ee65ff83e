"""Influence functions: CG equals an explicit dense inverse; last-layer, diagonal and LiSSA
variants equal (or approximate) their brute-force definitions; and on L2-regularised
multinomial logistic regression if_cg predicts actual leave-one-out retraining."""
import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from torch.func import functional_call, hessian, jacrev

from sampleval.config import ESTIMATORS
from sampleval.influence.context import InfluenceContext
from sampleval.influence.runner import get_estimator, run_estimator
from sampleval.influence.hessian import hvp_operator
from sampleval.influence.solvers import conjugate_gradient
from sampleval.training.losses import TrainingLoss

NEW = ("if_cg", "if_lissa", "if_diag", "if_last_layer", "if_last_layer_miscls")




def _flat_params(model):
    params = {k: v.detach() for k, v in model.named_parameters()}
    names = list(params)
    sizes = [params[k].numel() for k in names]

    def unflat(v):
        return {k: t.view(params[k].shape) for k, t in zip(names, torch.split(v, sizes))}

    return torch.cat([params[k].reshape(-1) for k in names]), unflat


class Tiny:
    """A 203-parameter conv net in float64 with its dense Hessian, computed by brute force."""

    def __init__(self):
        torch.manual_seed(0)
        self.model = nn.Sequential(
            nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32, 5), nn.Tanh(), nn.Linear(5, 3)
        ).double()
        self.x, self.y = torch.randn(40, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (40,))
        self.xv, self.yv = torch.randn(15, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (15,))
        self.loss = TrainingLoss("multiclass", 2.0, 0.1)
        self.state = {k: v.clone() for k, v in self.model.state_dict().items()}
        flat, self.unflat = _flat_params(self.model)
        self.flat = flat

        def loss_at(v, x, y, reduction):
            return self.loss(functional_call(self.model, self.unflat(v), (x,)), y, reduction=reduction)

        self.loss_at = loss_at
        self.H = hessian(lambda v: loss_at(v, self.x, self.y, "mean"))(flat)
        self.min_eig = float(torch.linalg.eigvalsh(self.H).min())
        self.g_val = torch.func.grad(lambda v: loss_at(v, self.xv, self.yv, "sum"))(flat)
        self.G = torch.stack(
            [torch.func.grad(lambda v: loss_at(v, self.x[i : i + 1], self.y[i : i + 1], "sum"))(flat) for i in range(len(self.x))]
        )

    def ctx(self, damping, **options):
        return InfluenceContext(
            model=self.model, loss_fn=self.loss, checkpoints=[], final_state=self.state, train=(self.x, self.y),
            val=(self.xv, self.yv), task="multiclass", n_classes=3, batch_size=16, damping=damping, cg_iterations=500,
            options=options,
        )


@pytest.fixture(scope="module")
def tiny():
    with threadpool_limits(1):
        return Tiny()


def test_if_cg_equals_dense_inverse(tiny):
    assert tiny.min_eig < 0  # the network's Hessian is indefinite: damping makes it definite
    damping = -tiny.min_eig + 0.1
    eye = torch.eye(len(tiny.flat), dtype=torch.float64)
    expected = (tiny.G @ torch.linalg.solve(tiny.H + damping * eye, tiny.g_val)).numpy()
    ctx = tiny.ctx(damping, if_cg={"cg_tol": 1e-12})
    ours = run_estimator("if_cg", ctx)["if_cg"]
    rel = np.abs(ours - expected).max() / np.abs(expected).max()
    assert rel <= 1e-6, rel
    info = ctx.diagnostics["if_cg"]
    assert info["converged"] and info["curvature"] == "exact" and info["iterations"] <= len(tiny.flat)
    assert info["solver"] == "cg" and info["fallback"] is None and info["damping"] == damping


def test_if_cg_negative_curvature_falls_back_to_gauss_newton(tiny):
    ctx = tiny.ctx(1e-3, if_cg={"on_negative_curvature": "stop"})
    run_estimator("if_cg", ctx)
    assert ctx.diagnostics["if_cg"]["negative_curvature"]
    ctx = tiny.ctx(1e-3)
    scores = run_estimator("if_cg", ctx)["if_cg"]
    info = ctx.diagnostics["if_cg"]
    assert info["curvature"] == "gauss_newton_psd" and info["fallback"].startswith("negative curvature") and np.isfinite(scores).all()
    assert info["converged"] and not info["negative_curvature"] and info["damping"] == 1e-3
    assert 0 <= info["output_hessian_indefinite_share"] <= 1 and 0 <= info["output_hessian_clipped_share"] < 1


def test_gauss_newton_hvp_equals_dense_clipped_ggn(tiny):
    # G = mean_i J_i^T H_z,i+ J_i, built from explicit Jacobians and output Hessians whose
    # negative eigenvalues are clipped to 0 (focal loss: some H_z,i are indefinite).
    def logits_at(v):
        return functional_call(tiny.model, tiny.unflat(v), (tiny.x,))

    z = logits_at(tiny.flat).detach()
    J = jacrev(logits_at)(tiny.flat)  # (n, K, P)
    Hz = torch.stack([hessian(lambda zz: tiny.loss(zz[None], tiny.y[i : i + 1], reduction="sum"))(z[i]) for i in range(len(z))])
    w, vecs = torch.linalg.eigh(Hz)
    Hz_plus = vecs @ torch.diag_embed(w.clamp_min(0)) @ vecs.transpose(-1, -2)
    ggn = torch.einsum("ikp,ikl,ilq->pq", J, Hz_plus, J) / len(z)
    v = torch.randn(len(tiny.flat), dtype=torch.float64)
    tiny.model.load_state_dict(tiny.state)
    op = hvp_operator(tiny.model, tiny.loss, tiny.x, tiny.y, damping=0.3, batch_size=7, gauss_newton=True)
    torch.testing.assert_close(op(v), ggn @ v + 0.3 * v, rtol=1e-10, atol=1e-12)
    exact = hvp_operator(tiny.model, tiny.loss, tiny.x, tiny.y, damping=0.3, batch_size=7)
    torch.testing.assert_close(exact(v), tiny.H @ v + 0.3 * v, rtol=1e-10, atol=1e-12)


def test_gauss_newton_operator_is_psd_under_focal_loss(tiny):
    # The operator's own dense matrix (columns = products with basis vectors): symmetric and
    # PSD to rounding, at weights where many output Hessians are indefinite (large logits).
    from sampleval.influence.hessian import indefinite_share

    state = {k: v * 12 if k == "6.weight" else v for k, v in tiny.state.items()}
    tiny.model.load_state_dict(state)
    share = indefinite_share(tiny.model, tiny.loss, tiny.x, tiny.y)
    assert share["output_hessian_indefinite_share"] > 0.2 and 0 < share["output_hessian_clipped_share"] < 0.5  # plain GN not PSD here
    op = hvp_operator(tiny.model, tiny.loss, tiny.x, tiny.y, damping=0.0, batch_size=16, gauss_newton=True)
    eye = torch.eye(len(tiny.flat), dtype=torch.float64)
    dense = torch.stack([op(e) for e in eye], 1)
    torch.testing.assert_close(dense, dense.T, rtol=1e-9, atol=1e-12)
    eig = torch.linalg.eigvalsh((dense + dense.T) / 2)
    assert float(eig.min()) >= -1e-10 * float(eig.max())
    tiny.model.load_state_dict(tiny.state)


def test_psd_projection_of_focal_output_hessians():
    from sampleval.influence.core import output_hessians
    from sampleval.influence.solvers import psd_projection

    gen = torch.Generator().manual_seed(3)
    z = 3 * torch.randn(500, 10, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (500,), generator=gen)
    h = output_hessians(TrainingLoss("multiclass", 2.0, 0.05), z, y)
    indefinite = float((torch.linalg.eigvalsh(h)[:, 0] < -1e-10).double().mean())
    assert indefinite > 0.3  # focal loss, gamma 2: the output Hessian is often indefinite
    hp = psd_projection(h)
    assert float(torch.linalg.eigvalsh(hp)[:, 0].min()) >= -1e-12
    psd_already = torch.linalg.eigvalsh(h)[:, 0] >= 0
    torch.testing.assert_close(hp[psd_already], h[psd_already], rtol=1e-9, atol=1e-12)  # PSD ones are unchanged
    ce = output_hessians(TrainingLoss("multiclass", 0.0, 0.0), z, y)
    torch.testing.assert_close(psd_projection(ce), ce, rtol=1e-9, atol=1e-12)  # cross-entropy: already PSD


def test_conjugate_gradient_on_spd_matrix():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(30, 30, generator=gen, dtype=torch.float64)
    a = a @ a.T + 0.5 * torch.eye(30, dtype=torch.float64)
    b = torch.randn(30, generator=gen, dtype=torch.float64)
    x, info = conjugate_gradient(lambda v: a @ v, b, max_iter=200, tol=1e-12)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-10)
    assert info["converged"] and info["relative_residual"] <= 1e-12
    x, info = conjugate_gradient(lambda v: a @ v, b, max_iter=3, tol=1e-12)
    assert not info["converged"] and info["iterations"] == 3


def test_if_last_layer_equals_dense_block_inverse(tiny):
    damping = 0.05
    n_last = 5 * 3 + 3
    block = slice(len(tiny.flat) - n_last, len(tiny.flat))  # final Linear's weight then bias
    h = tiny.H[block, block] + damping * torch.eye(n_last, dtype=torch.float64)
    expected = (tiny.G[:, block] @ torch.linalg.solve(h, tiny.g_val[block])).numpy()
    ours = run_estimator("if_last_layer", tiny.ctx(damping))["if_last_layer"]
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())
    # the matrix-free CG path used for wide last layers gives the same scores
    cg = run_estimator("if_last_layer", tiny.ctx(damping, if_last_layer={"max_dense": 1}))["if_last_layer"]
    np.testing.assert_allclose(cg, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())


def test_if_last_layer_miscls_uses_only_misclassified_validation(tiny):
    damping = 0.05
    tiny.model.load_state_dict(tiny.state)
    with torch.no_grad():
        wrong = (tiny.model(tiny.xv).argmax(1) != tiny.yv).numpy()
    assert 0 < wrong.sum() < len(wrong)
    n_last = 5 * 3 + 3
    block = slice(len(tiny.flat) - n_last, len(tiny.flat))
    g_wrong = torch.func.grad(lambda v: tiny.loss_at(v, tiny.xv[wrong], tiny.yv[wrong], "sum"))(tiny.flat)[block]
    h = tiny.H[block, block] + damping * torch.eye(n_last, dtype=torch.float64)
    expected = (tiny.G[:, block] @ torch.linalg.solve(h, g_wrong)).numpy()
    ctx = tiny.ctx(damping)
    ours = run_estimator("if_last_layer_miscls", ctx)["if_last_layer_miscls"]
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())
    assert ctx.diagnostics["if_last_layer_miscls"]["misclassified_val"] == wrong.sum()


def test_if_diag_equals_fisher_diagonal_formula(tiny):
    damping = 0.02
    diag = (tiny.G**2).mean(0)
    expected = (tiny.G @ (tiny.g_val / (diag + damping))).numpy()
    ours = run_estimator("if_diag", tiny.ctx(damping, if_diag={"per_sample_batch": 7}))["if_diag"]
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())


def test_if_lissa_approximates_exact_inverse(tiny):
    damping = -tiny.min_eig + 0.5
    eye = torch.eye(len(tiny.flat), dtype=torch.float64)
    expected = (tiny.G @ torch.linalg.solve(tiny.H + damping * eye, tiny.g_val)).numpy()
    ctx = tiny.ctx(damping, if_lissa={"depth": 300, "batch_size": 20})
    ours = run_estimator("if_lissa", ctx)["if_lissa"]
    assert np.corrcoef(ours, expected)[0, 1] >= 0.99
    assert np.abs(ours - expected).max() <= 0.25 * np.abs(expected).max()
    again = run_estimator("if_lissa", tiny.ctx(damping, if_lissa={"depth": 300, "batch_size": 20}))["if_lissa"]
    np.testing.assert_array_equal(ours, again)  # seeded by ctx.seed
    with pytest.raises(RuntimeError, match="LiSSA diverged"):
        run_estimator("if_lissa", tiny.ctx(damping, if_lissa={"depth": 300, "scale": 0.2}))


# The convex leave-one-out check of if_cg lives in tests/test_fidelity.py
# (test_convex_leave_one_out_if_cg_predicts_retraining_on_digits), through the library's
# sampleval.experiments.fidelity.convex_leave_one_out.


def test_registry_and_params_list_the_new_estimators():
    for name in NEW:
        assert name in ESTIMATORS
        assert callable(get_estimator(name))


def test_last_layer_solve_falls_back_to_the_psd_curvature():
    from sampleval.influence.last_layer import LastLayer, last_layer_hessian, solve_last_layer

    gen = torch.Generator().manual_seed(5)
    n, k, d = 40, 3, 4
    f = torch.randn(n, d, generator=gen, dtype=torch.float64)
    a = torch.randn(n, k, k, generator=gen, dtype=torch.float64)
    q = LastLayer(f, torch.randn(n, k, generator=gen, dtype=torch.float64), torch.zeros(n, k), a + a.transpose(1, 2))  # indefinite
    g = torch.randn(k, d, generator=gen, dtype=torch.float64)
    s, info = solve_last_layer(q, g, damping=0.01)
    assert info["curvature"] == "gauss_newton_psd" and info["solver"] == "cholesky" and "not positive definite" in info["fallback"]
    expected = torch.linalg.solve(last_layer_hessian(q.psd(), 0.01), g.reshape(-1)).reshape(k, d)
    torch.testing.assert_close(s, expected)
    assert float(torch.linalg.eigvalsh(last_layer_hessian(q.psd(), 0.0)).min()) >= -1e-10
    s_cg, info_cg = solve_last_layer(q, g, damping=0.01, max_dense=1, max_iter=500)
    assert info_cg["solver"] == "cg" and info_cg["curvature"] == "gauss_newton_psd" and info_cg["converged"]
    torch.testing.assert_close(s_cg, expected, rtol=1e-6, atol=1e-8)
    psd = LastLayer(f, q.out_grads, q.logits, q.psd().out_hessians)
    _, info = solve_last_layer(psd, g, damping=0.01)
    assert info["curvature"] == "exact" and info["fallback"] is None and info["damping"] == 0.01
