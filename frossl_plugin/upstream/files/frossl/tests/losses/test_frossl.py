import pytest
import torch
from solo.losses import frossl_loss_func


def reference_frossl(views, invariance_weight=1.0):
    """FroSSL written from the paper through eigenvalues, independent of solo.losses.frossl."""

    num_views, d = len(views), views[0].size(1)
    normalized = [z / z.norm(dim=0, keepdim=True) for z in views]
    regularization = 0.0
    for z in normalized:
        eigvals = torch.linalg.eigvalsh(z.T @ z)
        probs = eigvals / eigvals.sum()
        regularization = regularization + torch.log((probs**2).sum())
    mean = sum(normalized) / num_views
    invariance = sum(num_views * d * ((z - mean) ** 2).mean() for z in normalized)
    return regularization + invariance_weight * invariance, invariance, regularization


def test_frossl_loss():
    b, f = 32, 128
    z1 = torch.randn(b, f).requires_grad_()
    z2 = torch.randn(b, f).requires_grad_()

    loss, _, _ = frossl_loss_func([z1, z2])
    initial_loss = loss.item()
    assert loss != 0

    for _ in range(20):
        loss, _, _ = frossl_loss_func([z1, z2])
        loss.backward()
        z1.data.add_(-0.5 * z1.grad)
        z2.data.add_(-0.5 * z2.grad)

        z1.grad = z2.grad = None

    assert loss < initial_loss


@pytest.mark.parametrize("num_views", [2, 4])
@pytest.mark.parametrize("b,f", [(32, 16), (8, 64)])
def test_frossl_loss_matches_reference(num_views, b, f):
    views = [torch.randn(b, f, dtype=torch.float64) for _ in range(num_views)]

    loss, invariance, regularization = frossl_loss_func(views, invariance_weight=1.4)
    ref_loss, ref_invariance, ref_regularization = reference_frossl(views, 1.4)

    assert torch.allclose(loss, ref_loss, rtol=1e-6, atol=1e-8)
    assert torch.allclose(invariance, ref_invariance, rtol=1e-6, atol=1e-8)
    assert torch.allclose(regularization, ref_regularization, rtol=1e-6, atol=1e-8)
    assert torch.allclose(loss, regularization + 1.4 * invariance)


def test_frossl_loss_invariances():
    views = torch.randn(3, 16, 8, dtype=torch.float64)
    loss, _, _ = frossl_loss_func(views)

    # order of the views
    assert torch.allclose(frossl_loss_func(views.flip(0))[0], loss)
    # each feature is normalized over the batch, so rescaling columns changes nothing
    scale = torch.rand(1, 1, 8, dtype=torch.float64) + 0.5
    assert torch.allclose(frossl_loss_func(views * scale)[0], loss)


@pytest.mark.parametrize("num_views", [2, 4])
def test_frossl_loss_center(num_views):
    # features with different means in every view
    views = torch.randn(num_views, 16, 8, dtype=torch.float64)
    views = views + 3 * torch.randn(num_views, 1, 8, dtype=torch.float64)

    # center=True is the reference on the views with each feature's batch mean subtracted
    centered = views - views.mean(dim=1, keepdim=True)
    for value, reference in zip(frossl_loss_func(views, center=True), reference_frossl(centered)):
        assert torch.allclose(value, reference, rtol=1e-6, atol=1e-8)
    assert not torch.allclose(frossl_loss_func(views)[0], frossl_loss_func(views, center=True)[0])

    # so adding a constant to a feature changes nothing
    shift = torch.randn(num_views, 1, 8, dtype=torch.float64)
    assert torch.allclose(
        frossl_loss_func(views + shift, center=True)[0], frossl_loss_func(views, center=True)[0]
    )
    assert torch.autograd.gradcheck(
        lambda z: frossl_loss_func(z, center=True)[0], (views[:, :6, :4].clone().requires_grad_(),)
    )


def test_frossl_loss_gradient():
    views = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)

    assert torch.autograd.gradcheck(lambda z: frossl_loss_func(z)[0], (views,))


def test_frossl_loss_invalid_inputs():
    with pytest.raises(ValueError):
        frossl_loss_func([torch.randn(8, 4)])
    with pytest.raises(ValueError):
        frossl_loss_func([torch.randn(8, 4), torch.randn(8, 5)])
    with pytest.raises(ValueError):
        frossl_loss_func(torch.randn(2, 1, 4))
    with pytest.raises(ValueError):
        frossl_loss_func(torch.randn(2, 8, 4), invariance_weight=-1.0)
    with pytest.raises(ValueError):
        frossl_loss_func(torch.randn(2, 8, 4), center="yes")
