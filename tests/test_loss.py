"""FroSSL loss against independent references, with gradients, invariances and bad input."""

import math
import re

import numpy as np
import pytest
import torch

from frossl_plugin.losses import FroSSLLoss, frossl_loss_func

SHAPES = [  # (V, N, D): N > D, N < D and N = D
    (2, 64, 16),
    (2, 16, 64),
    (2, 32, 32),
    (4, 48, 24),
    (4, 12, 40),
    (4, 20, 20),
    (8, 40, 10),
    (8, 10, 30),
    (8, 16, 16),
]


def numpy_reference(views, invariance_weight=1.0, center=False):
    """The objective of docs/method.md step by step in float64 numpy, always with the D x D
    matrix; ``center`` subtracts each column's batch mean first."""

    views = [np.asarray(v, dtype=np.float64) for v in views]
    if center:
        views = [v - v.mean(axis=0, keepdims=True) for v in views]
    num_views = len(views)
    n, d = views[0].shape
    normalized = [v / np.linalg.norm(v, axis=0, keepdims=True) for v in views]
    mean_view = sum(normalized) / num_views
    regularization = invariance = 0.0
    for z in normalized:
        k = z.T @ z
        k = k / np.trace(k)
        regularization += math.log(np.sum(k**2))
        invariance += num_views * d * np.mean((z - mean_view) ** 2)
    return regularization + invariance_weight * invariance, invariance, regularization


def torch_reference(views, invariance_weight=1.0, center=False):
    """Per-view loop in torch (for gradients), with the N x N Gram and an explicit trace."""

    if center:
        views = [v - v.mean(dim=0, keepdim=True) for v in views]
    num_views = len(views)
    d = views[0].shape[1]
    normalized = [v / v.norm(dim=0, keepdim=True) for v in views]
    mean_view = torch.stack(normalized).mean(dim=0)
    loss = 0.0
    for z in normalized:
        k = z @ z.T
        k = k / torch.trace(k)
        loss = loss + torch.log(torch.linalg.matrix_norm(k, ord="fro") ** 2)
        loss = loss + invariance_weight * num_views * d * torch.mean((z - mean_view) ** 2)
    return loss


def random_views(shape, dtype=torch.float32, seed=0, offset=0.0):
    """Correlated views; ``offset`` > 0 adds a different mean to every column of every view."""

    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(shape[1:], generator=generator, dtype=torch.float64)
    views = base + 0.5 * torch.randn(shape, generator=generator, dtype=torch.float64)
    means = offset * torch.randn(shape[0], 1, shape[2], generator=generator, dtype=torch.float64)
    return (views + means).to(dtype)


def official_two_view_reference(z_a, z_b, invariance_weight=1.0, unbiased=True):
    """The official repository's two-view function (OFSkean/FroSSL 3ff28da), which the paper's
    two-view runs used, as docs/method.md describes it: standardize each feature over the batch,
    scale every column to norm sqrt(D), ``w * mse + 2 log ||K_a||_F + 2 log ||K_b||_F``,
    K = Z^T Z / N.

    The official code uses ``z.std(0)``, torch's unbiased std; ``unbiased=False`` uses the biased
    one. The choice cannot matter: the next step rescales every column to norm sqrt(D) anyway.
    """

    n, d = z_a.shape
    standardized = [(z - z.mean(0)) / z.std(0, unbiased=unbiased) for z in (z_a, z_b)]
    z_a, z_b = [d**0.5 * z / torch.linalg.vector_norm(z, dim=0) for z in standardized]
    mse = torch.mean((z_a - z_b) ** 2)  # over N * D entries
    k_a, k_b = z_a.T @ z_a / n, z_b.T @ z_b / n  # D x D
    fro_a, fro_b = (torch.linalg.matrix_norm(k, ord="fro") for k in (k_a, k_b))
    return invariance_weight * mse + 2 * torch.log(fro_a) + 2 * torch.log(fro_b)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weight", [1.0, 1.4, 0.0])
def test_matches_numpy_reference_in_float32(shape, weight):
    views = random_views(shape)
    loss, invariance, regularization = frossl_loss_func(views, invariance_weight=weight)
    ref_loss, ref_inv, ref_reg = numpy_reference(views.numpy(), weight)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    for value, reference in ((loss, ref_loss), (invariance, ref_inv), (regularization, ref_reg)):
        assert value.item() == pytest.approx(reference, rel=1e-5, abs=1e-6)
    assert torch.allclose(loss, regularization + weight * invariance)


@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_match_reference(shape):
    views64 = random_views(shape, torch.float64).requires_grad_()
    torch_reference(list(views64), invariance_weight=1.3).backward()

    views32 = views64.detach().float().requires_grad_()
    frossl_loss_func(views32, invariance_weight=1.3)[0].backward()
    assert torch.allclose(views32.grad.double(), views64.grad, rtol=1e-4, atol=1e-4 * 1e-2)


def test_sequence_and_tensor_inputs_agree():
    views = random_views((3, 20, 8))
    from_tensor = frossl_loss_func(views)
    from_list = frossl_loss_func(list(views))
    from_tuple = FroSSLLoss()(tuple(views))
    for a, b, c in zip(from_tensor, from_list, from_tuple):
        assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("shape", [(2, 6, 4), (3, 4, 7), (2, 5, 5)])
def test_gradcheck_float64(shape):
    views = random_views(shape, torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: frossl_loss_func(z, 0.7), (views,))
    assert torch.autograd.gradcheck(lambda z: frossl_loss_func(z, 0.7)[2], (views,))
    assert torch.autograd.gradcheck(lambda z: frossl_loss_func(z, 0.7)[1], (views,))


def test_second_derivatives_raise_a_clear_error():
    # the Gram matrix has a hand-written first-order backward (one matmul instead of two)
    views = random_views((2, 6, 4), torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad(frossl_loss_func(views)[0], views, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()


def test_invariant_to_view_order():
    views = random_views((4, 24, 12))
    shuffled = views[torch.tensor([2, 0, 3, 1])]
    for a, b in zip(frossl_loss_func(views), frossl_loss_func(shuffled)):
        assert torch.allclose(a, b, rtol=1e-6)


def test_invariant_to_positive_per_column_rescaling():
    views = random_views((3, 24, 12))
    scales = torch.rand(3, 1, 12) * 100 + 0.01  # any positive scale, per view and column
    for a, b in zip(frossl_loss_func(views), frossl_loss_func(views * scales)):
        assert torch.allclose(a, b, rtol=1e-5)


def test_invariant_to_consistent_sample_and_feature_permutations():
    views = random_views((3, 24, 12))
    permuted = views[:, torch.randperm(24)][:, :, torch.randperm(12)]
    for a, b in zip(frossl_loss_func(views), frossl_loss_func(permuted)):
        assert torch.allclose(a, b, rtol=1e-5)


def test_identical_views_have_zero_invariance_and_known_regularization():
    # orthonormal columns: K = I_D, so log ||I/D||_F^2 = -log D per view
    q, _ = torch.linalg.qr(torch.randn(32, 8, dtype=torch.float64))
    loss, invariance, regularization = frossl_loss_func(torch.stack([q, q, q]))
    assert invariance.item() == pytest.approx(0.0, abs=1e-12)
    assert regularization.item() == pytest.approx(-3 * math.log(8), rel=1e-12)


def test_dead_column_gives_finite_loss_and_gradients():
    views = random_views((2, 16, 8)).requires_grad_()
    dead = views * torch.tensor([1.0] * 7 + [0.0])  # last feature is always zero
    loss, _, _ = frossl_loss_func(dead)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(views.grad).all()
    live = frossl_loss_func(views[:, :, :7].detach())
    # a dead unit adds nothing: the same loss as without that feature
    assert loss.item() == pytest.approx(live[0].item(), rel=1e-5)


def test_all_zero_views_are_finite():
    loss, invariance, regularization = frossl_loss_func(torch.zeros(2, 8, 4))
    assert torch.isfinite(loss) and regularization.item() == 0.0 and invariance.item() == 0.0


@pytest.mark.parametrize("center", [False, True])
def test_autocast_computes_in_float32(center):
    views = random_views((4, 64, 32), offset=float(center))
    expected = frossl_loss_func(views, center=center)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = frossl_loss_func(views, center=center)
        from_bf16 = frossl_loss_func(views.bfloat16(), center=center)
    assert under_autocast[0].dtype == torch.float32 and from_bf16[0].dtype == torch.float32
    for a, b in zip(under_autocast, expected):
        assert torch.allclose(a, b, rtol=1e-6)
    # bf16 inputs are upcast, so only their own rounding separates them from float32
    rounded = frossl_loss_func(views.bfloat16().float(), center=center)
    for a, b, c in zip(from_bf16, rounded, expected):
        assert torch.allclose(a, b, rtol=1e-6)
        assert torch.allclose(a, c, rtol=1e-3)
    half = frossl_loss_func(views.half(), center=center)
    assert torch.allclose(half[0], expected[0], rtol=1e-3)


@pytest.mark.parametrize("center", [False, True])
def test_autocast_gradients_reach_low_precision_inputs(center):
    views = random_views((2, 32, 16)).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        frossl_loss_func(views, center=center)[0].backward()
    assert views.grad.dtype == torch.bfloat16 and torch.isfinite(views.grad.float()).all()


@pytest.mark.parametrize(
    "z, message",
    [
        ([torch.randn(8, 4)], "at least 2 views, but found 1"),
        ([], "at least 2 views, but found 0"),
        (torch.randn(1, 8, 4), "at least 2 views, but found 1"),
        (
            [torch.randn(8, 4), torch.randn(8, 5)],
            r"same N x D shape, but found \[\(8, 4\), \(8, 5\)\]",
        ),
        ([torch.randn(8, 4), torch.randn(7, 4)], r"same N x D shape"),
        ([torch.randn(8), torch.randn(8)], r"N x D tensor, but found shapes \[\(8,\), \(8,\)\]"),
        (torch.randn(8, 4), r"V x N x D tensor .* shape \(8, 4\)"),
        (torch.randn(2, 1, 4), "N >= 2.*N=1"),
        (torch.randn(2, 8, 0), "D >= 1.*D=0"),
        (torch.ones(2, 8, 4, dtype=torch.int64), "floating-point .* torch.int64"),
        ([torch.randn(8, 4), torch.randn(8, 4).double()], "same dtype"),
        (
            [torch.randn(8, 4), "not a tensor"],
            r"torch.Tensor views, but found \['Tensor', 'str'\]",
        ),
    ],
)
def test_bad_input_raises_value_error(z, message):
    with pytest.raises(ValueError, match=message):
        frossl_loss_func(z)


@pytest.mark.parametrize("row", [3, 0])  # with center=True, row 0 is the detached shift
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_raise_on_cpu_by_default(bad, center, row):
    views = random_views((2, 8, 4))
    views[1, row, 2] = bad
    with pytest.raises(ValueError, match="non-finite"):
        frossl_loss_func(views, center=center)
    with pytest.raises(ValueError, match="non-finite"):
        frossl_loss_func(views, check_finite=True, center=center)
    unchecked = frossl_loss_func(views, check_finite=False, center=center)[0]  # opted out
    assert not torch.isfinite(unchecked)


@pytest.mark.parametrize("weight", [-0.1, float("nan"), float("inf"), True, "1.0", None])
def test_bad_invariance_weight_raises(weight):
    with pytest.raises(ValueError, match="invariance_weight"):
        frossl_loss_func(random_views((2, 8, 4)), invariance_weight=weight)


def _spy_on_host_reads(monkeypatch) -> list:
    """Records every call that copies a tensor value to the host (a device sync)."""

    reads = []
    for name in ("item", "__bool__", "__float__", "tolist", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return reads


@pytest.mark.parametrize("center", [False, True])
def test_no_host_reads_for_accelerator_tensors_by_default(monkeypatch, center):
    """With check_finite unset, a tensor off the CPU is never read on the host. The ``meta``
    device stands in for an accelerator: any read of a value there raises, so the loss and its
    backward must run on shapes alone."""

    reads = _spy_on_host_reads(monkeypatch)
    views = torch.empty(3, 16, 8, device="meta", requires_grad=True)
    loss, invariance, regularization = frossl_loss_func(views, center=center)  # check_finite unset
    loss.backward()
    assert reads == []
    assert loss.device.type == "meta" and loss.shape == () and views.grad.shape == views.shape
    with pytest.raises(RuntimeError, match="meta"):  # what a host read of a meta value does
        bool(loss)
    with pytest.raises(RuntimeError, match="meta"):  # check_finite=True reads the loss: a sync
        frossl_loss_func(views, center=center, check_finite=True)


@pytest.mark.parametrize("center", [False, True])
def test_cpu_tensors_are_checked_with_one_host_read_by_default(monkeypatch, center):
    reads = _spy_on_host_reads(monkeypatch)
    views = random_views((3, 16, 8)).requires_grad_()
    frossl_loss_func(views, center=center)[0].backward()
    assert reads == ["__bool__"]  # the check of the 0-d loss, nothing else
    reads.clear()
    frossl_loss_func(views, center=center, check_finite=False)[0].backward()
    assert reads == []


@pytest.mark.parametrize("center", [False, True])
def test_gather_without_process_group_is_local(center):
    views = random_views((2, 16, 8), offset=1.0)
    gathered = frossl_loss_func(views, gather_across_devices=True, center=center)
    for a, b in zip(gathered, frossl_loss_func(views, center=center)):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- center=True


@pytest.mark.parametrize("n, d", [(64, 16), (16, 64), (32, 32), (5, 3)])  # N > D, N < D, N = D
@pytest.mark.parametrize("weight", [1.0, 1.4])
@pytest.mark.parametrize("unbiased", [True, False])
def test_center_is_the_official_two_view_function_up_to_a_constant(n, d, weight, unbiased):
    """With center=True and V = 2 the loss is the paper's two-view function minus
    ``4 log(D^2 / N)`` (each view's ``2 log ||Z^T Z / N||_F`` is ``log ||K||_F^2 + 2 log(D^2 / N)``
    with unit columns, tr(K) = D), and the gradients are the same; checked in float64."""

    views = random_views((2, n, d), torch.float64, seed=n + d, offset=3.0).requires_grad_()
    official = official_two_view_reference(views[0], views[1], weight, unbiased)
    (official_grad,) = torch.autograd.grad(official, views)

    loss, invariance, _ = frossl_loss_func(views, invariance_weight=weight, center=True)
    (grad,) = torch.autograd.grad(loss, views)
    constant = 4 * math.log(d**2 / n)
    assert (official - loss).item() == pytest.approx(constant, rel=1e-12, abs=1e-12)
    assert torch.allclose(grad, official_grad, rtol=1e-9, atol=1e-12)
    # the invariance terms agree exactly: for V = 2, V D mean((Zh_v - Zbar)^2) summed over the
    # views is mean((sqrt(D) Zh_a - sqrt(D) Zh_b)^2)
    z_a, z_b = [
        d**0.5 * (z - z.mean(0)) / (z - z.mean(0)).norm(dim=0) for z in views.detach().unbind()
    ]
    assert invariance.item() == pytest.approx(torch.mean((z_a - z_b) ** 2).item(), rel=1e-12)
    # and the uncentred loss is a different function of these (offset) views
    uncentred = frossl_loss_func(views.detach(), invariance_weight=weight)[0]
    assert abs((official - uncentred).item() - constant) > 1e-3


@pytest.mark.parametrize("shape", [s for s in SHAPES if s[0] > 2])
def test_centred_multiview_matches_numpy_reference(shape):
    views = random_views(shape, offset=2.0)
    loss, invariance, regularization = frossl_loss_func(views, 1.4, center=True)
    ref_loss, ref_inv, ref_reg = numpy_reference(views.numpy(), 1.4, center=True)
    for value, reference in ((loss, ref_loss), (invariance, ref_inv), (regularization, ref_reg)):
        assert value.item() == pytest.approx(reference, rel=1e-5, abs=1e-6)
    # the references differ without centring: the comparison can fail
    assert abs(numpy_reference(views.numpy(), 1.4)[0] - ref_loss) > 1e-2 * abs(ref_loss)

    views64 = views.double().requires_grad_()
    torch_reference(list(views64), invariance_weight=1.4, center=True).backward()
    views32 = views.clone().requires_grad_()
    frossl_loss_func(views32, invariance_weight=1.4, center=True)[0].backward()
    assert torch.allclose(views32.grad.double(), views64.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 6, 4), (4, 5, 3), (8, 4, 6)])
def test_centred_gradcheck_float64(shape):
    views = random_views(shape, torch.float64, offset=1.0).requires_grad_()
    for term in range(3):
        assert torch.autograd.gradcheck(
            lambda z: frossl_loss_func(z, 0.7, center=True)[term], (views,)
        )


def test_centred_loss_is_invariant_to_view_order_and_positive_column_rescaling():
    views = random_views((4, 24, 12), offset=2.0)
    expected = frossl_loss_func(views, center=True)
    shuffled = views[torch.tensor([2, 0, 3, 1])]
    scales = torch.rand(4, 1, 12) * 100 + 0.01  # any positive scale, per view and column
    for transformed in (shuffled, views * scales):
        for a, b in zip(frossl_loss_func(transformed, center=True), expected):
            assert torch.allclose(a, b, rtol=1e-5)


def test_centred_loss_is_invariant_to_per_column_translation():
    views = random_views((3, 24, 12), torch.float64)
    shifts = 10 * torch.randn(3, 1, 12, dtype=torch.float64)  # per view and column
    centred = frossl_loss_func(views, center=True)
    for a, b in zip(frossl_loss_func(views + shifts, center=True), centred):
        assert torch.allclose(a, b, rtol=1e-10)
    # the uncentred loss does depend on the columns' means
    assert not torch.allclose(frossl_loss_func(views + shifts)[0], frossl_loss_func(views)[0])


@pytest.mark.parametrize("value", [3.7, -7.3, 0.1, 0.0])
def test_centred_constant_column_is_dead(value):
    """A constant column is all zero once centred: it contributes nothing and never gives NaN,
    as a dead column does uncentred. (Naive ``z - z.mean(0)`` leaves the mean's float32 rounding
    error for these values, which the column normalization would blow up to unit norm.)"""

    views = random_views((2, 48, 8), offset=1.0)
    views[:, :, 7] = value  # the last feature is the same for every sample
    views.requires_grad_()
    loss, invariance, regularization = frossl_loss_func(views, center=True)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(views.grad).all()
    live = frossl_loss_func(views[:, :, :7].detach(), center=True)
    for a, b in zip((loss, invariance, regularization), live):
        assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_centred_constant_views_are_finite():
    views = torch.full((2, 8, 4), 3.7).requires_grad_()
    loss, invariance, regularization = frossl_loss_func(views, center=True)
    loss.backward()
    assert regularization.item() == 0.0 and invariance.item() == 0.0
    assert torch.isfinite(views.grad).all()


def test_centred_loss_module_and_sequence_inputs_agree():
    views = random_views((3, 20, 8), offset=1.0)
    expected = frossl_loss_func(views, center=True)
    for value in (frossl_loss_func(list(views), center=True), FroSSLLoss(center=True)(views)):
        for a, b in zip(value, expected):
            assert torch.equal(a, b)
    assert not torch.allclose(FroSSLLoss()(views)[0], expected[0])


@pytest.mark.parametrize("center", ["yes", 1, None, np.bool_(True)])
def test_non_bool_center_raises(center):
    with pytest.raises(ValueError, match=re.escape(f"must be true or false, but found {center!r}")):
        frossl_loss_func(random_views((2, 8, 4)), center=center)
    with pytest.raises(ValueError, match="center must be true or false"):
        FroSSLLoss(center=center)
