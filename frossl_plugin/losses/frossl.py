"""FroSSL loss: Frobenius-norm (order-2 Renyi entropy) regularization plus multiview invariance.

Skean et al., "FroSSL: Frobenius Norm Minimization for Efficient Multiview Self-Supervised
Learning", ECCV 2024 (https://arxiv.org/abs/2310.02903).
"""

import contextlib
from numbers import Real
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _gather_batches(z: torch.Tensor) -> torch.Tensor:
    """Concatenates every process' ``V x N x D`` views along N, keeping gradients.

    ``torch.distributed.nn.functional.all_gather`` sums the incoming gradients in backward, so
    the gradient reaching the local ``z`` is ``world_size`` times the gradient of the (identical)
    global loss. DDP then averages parameter gradients over processes, which cancels that factor:
    the parameters receive exactly the gradient of the loss on the global batch.
    """

    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z.contiguous()), dim=1)  # (V, world_size * N, D)


class _Gram(torch.autograd.Function):
    """Batched Gram matrix ``A^T A`` (``over_features``) or ``A A^T`` of a ``V x N x D`` tensor.

    Its backward is ``A (G + G^T)`` (or ``(G + G^T) A``) for an incoming gradient ``G``: one
    matmul, where autograd of ``a.mT @ a`` runs two and adds them.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, over_features: bool) -> torch.Tensor:
        ctx.save_for_backward(a)
        ctx.over_features = over_features
        return a.mT @ a if over_features else a @ a.mT

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (a,) = ctx.saved_tensors
        grad = grad + grad.mT
        return (a @ grad if ctx.over_features else grad @ a), None


def _autocast_disabled(device_type: str):
    """A context with autocast off on ``device_type`` (none needed where autocast does not exist,
    as on the ``meta`` device)."""

    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def _stack_views(z: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
    """Validates the views (metadata only, no device sync) and stacks them to ``V x N x D``."""

    if isinstance(z, torch.Tensor):
        if z.dim() != 3:
            raise ValueError(
                f"z must be a V x N x D tensor or a sequence of N x D tensors, "
                f"but found a tensor of shape {tuple(z.shape)}."
            )
        views = z
    else:
        z = list(z)
        if not all(isinstance(view, torch.Tensor) for view in z):
            types = [type(view).__name__ for view in z]
            raise ValueError(f"z must hold torch.Tensor views, but found {types}.")
        shapes = [tuple(view.shape) for view in z]
        if len(z) >= 2 and any(shape != shapes[0] for shape in shapes):
            raise ValueError(f"All views must have the same N x D shape, but found {shapes}.")
        if len(z) >= 1 and len(shapes[0]) != 2:
            raise ValueError(f"Each view must be an N x D tensor, but found shapes {shapes}.")
        if len({view.dtype for view in z}) > 1:
            raise ValueError(
                f"All views must have the same dtype, but found {[v.dtype for v in z]}."
            )
        views = torch.stack(z) if len(z) >= 1 else None

    num_views = 0 if views is None else views.size(0)
    if num_views < 2:
        raise ValueError(f"FroSSL needs at least 2 views, but found {num_views}.")
    _, n, d = views.shape
    if n < 2:
        raise ValueError(f"FroSSL needs a batch of at least 2 samples (N >= 2), but found N={n}.")
    if d < 1:
        raise ValueError(f"FroSSL needs at least 1 feature (D >= 1), but found D={d}.")
    if not views.is_floating_point():
        raise ValueError(f"FroSSL needs floating-point embeddings, but found dtype {views.dtype}.")
    return views


def check_frossl_settings(invariance_weight: float, center: bool, prefix: str = "") -> None:
    """Validates the loss settings; the loss and the method (``method_kwargs``) both use it.

    Args:
        invariance_weight (float): must be a finite real number >= 0 (not a bool).
        center (bool): must be a bool.
        prefix (str): prepended to the names in messages, e.g. ``"method_kwargs."``.

    Raises:
        ValueError: naming the bad value and what was expected.
    """

    weight = invariance_weight
    if isinstance(weight, bool) or not isinstance(weight, Real) or not 0 <= weight < float("inf"):
        raise ValueError(
            f"{prefix}invariance_weight must be a finite number >= 0, but found {weight!r}."
        )
    if not isinstance(center, bool):
        raise ValueError(f"{prefix}center must be true or false, but found {center!r}.")


def frossl_loss_func(
    z: Union[torch.Tensor, Sequence[torch.Tensor]],
    invariance_weight: float = 1.0,
    gather_across_devices: bool = False,
    check_finite: Optional[bool] = None,
    center: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Computes the multiview FroSSL loss and its two terms.

    For each view ``v`` the columns of ``Z_v`` are L2-normalized over the batch (``Zh_v``), after
    subtracting their mean over the batch if ``center=True``, and ``Zbar`` is the mean of the
    normalized views. Then, with ``K_v`` the smaller of ``Zh_v^T Zh_v`` (D x D) and
    ``Zh_v Zh_v^T`` (N x N), which share their non-zero eigenvalues:

    - ``regularization = sum_v log ||K_v / tr(K_v)||_F^2`` (minus the order-2 Renyi entropy),
    - ``invariance = sum_v V * D * mean((Zh_v - Zbar)^2)``,
    - ``loss = regularization + invariance_weight * invariance``.

    Everything is computed in (at least) float32, also under fp16/bf16 autocast, and no value is
    copied to the host, so the function never synchronizes an accelerator unless
    ``check_finite=True``. An all-zero feature column (a dead unit) contributes nothing, and with
    ``center=True`` neither does a constant one (it is exactly zero once centred); a view whose
    columns are all zero counts as fully collapsed (its regularization is 0, the maximum).
    The backward is first order only: differentiating it again raises a ``RuntimeError``.

    ``center=True`` is the function the paper's two-view runs used (the official repository's
    two-view ``frossl_loss_func``, called for 2 views until 2024-08): it standardized each feature
    over the batch, scaled the columns to norm sqrt(D) and returned ``w * mse + 2 log ||K_a||_F +
    2 log ||K_b||_F`` with ``K = Z^T Z / N``. For V = 2 that equals this loss with ``center=True``
    plus the constant ``4 log(D^2 / N)``, with the same gradients (where it is defined: a constant
    column makes its std 0 and its loss NaN). ``center=False`` is the official multiview function
    (used for every number of views since 2024-08, and by lightly's ``FroSSLLoss``).

    Args:
        z (Union[torch.Tensor, Sequence[torch.Tensor]]): V x N x D tensor, or a sequence of V
            N x D tensors, with the projected embeddings of V >= 2 views of the same N samples.
        invariance_weight (float): weight w of the invariance term. Defaults to 1.0.
        gather_across_devices (bool): if True and a process group with more than one process is
            initialized, all statistics (column means and norms, mean view, Gram matrices) use
            the global batch, gathered with autograd-aware collectives. Otherwise every statistic
            uses the local batch. Defaults to False.
        check_finite (Optional[bool]): raise ``ValueError`` if ``z`` holds NaN or inf. Any such
            value makes the loss non-finite, so the check reads the 0-d loss on the host:
            ``None`` (default) checks CPU tensors only; pass True to also check accelerator
            tensors at the cost of one device sync per call.
        center (bool): subtract from each feature column of each view its mean over the batch
            (the global batch with ``gather_across_devices``) before the column normalization.
            Defaults to False.

    Raises:
        ValueError: for fewer than 2 views or samples, mismatched or non-floating-point views, a
            negative or non-finite ``invariance_weight``, a non-bool ``center``, or (when
            checked) non-finite values in ``z``.

    Returns:
        Tuple[torch.Tensor, torch.Tensor, torch.Tensor]: 0-d tensors
        ``(loss, invariance, regularization)``.
    """

    check_frossl_settings(invariance_weight, center)

    views = _stack_views(z)  # (V, N, D)
    if check_finite is None:
        check_finite = views.device.type == "cpu"

    if gather_across_devices and _world_size() > 1:
        views = _gather_batches(views)  # (V, N_global, D)

    compute_dtype = torch.promote_types(views.dtype, torch.float32)
    with _autocast_disabled(views.device.type):
        views = views.to(compute_dtype)
        num_views, n, d = views.shape
        eps = torch.finfo(compute_dtype).eps

        if center:
            # Shifted by the first sample before the mean is taken (the shifted-data algorithm):
            # mathematically the same centring, with the same gradient since the shift is
            # detached, but a constant column becomes exactly zero, a dead column, where
            # "z - mean" would leave the mean's rounding error, a column that normalizes to ones.
            views = views - views[:, :1].detach()  # (V, N, D)
            views = views - views.mean(dim=1, keepdim=True)  # (V, N, D)

        # unit L2 norm per feature column, over the batch; dead columns stay zero
        col_norms = views.norm(dim=1, keepdim=True)  # (V, 1, D)
        views = views * col_norms.clamp_min(eps).reciprocal()  # (V, N, D)

        gram = _Gram.apply(views, n > d)  # (V, D, D) if N > D, else (V, N, N)
        # tr(K_v) is the number of live columns, so its gradient is exactly zero: detached
        trace = gram.diagonal(dim1=1, dim2=2).sum(dim=1).detach()  # (V,)
        fro_sq = gram.square().sum(dim=(1, 2))  # (V,)
        # eps keeps an all-zero view finite (log 1 = 0) and is < 1e-7 relative otherwise
        regularization = torch.log((fro_sq + eps) / (trace.square() + eps)).sum()

        # The squared distances to the mean view have zero gradient through the mean itself
        # (sum_v (Zh_v - Zbar) = 0), so detaching it leaves the gradient exact and skips a pass.
        mean_view = views.detach().mean(dim=0, keepdim=True).expand_as(views)  # (V, N, D)
        invariance = num_views * F.mse_loss(views, mean_view, reduction="sum") / n

    loss = regularization + invariance_weight * invariance
    # A non-finite input makes its column norm, hence the loss, non-finite (normalized columns
    # keep every other value bounded), so checking the 0-d loss is enough: no pass over z.
    if check_finite and not bool(torch.isfinite(loss)):
        raise ValueError("z holds non-finite values (NaN or inf); FroSSL expects finite inputs.")
    return loss, invariance, regularization


class FroSSLLoss(nn.Module):
    """Module wrapper of :func:`frossl_loss_func`.

    Args:
        invariance_weight (float): weight of the invariance term. Defaults to 1.0.
        gather_across_devices (bool): compute the statistics over the global batch under DDP.
        check_finite (Optional[bool]): see :func:`frossl_loss_func`.
        center (bool): centre each feature over the batch first, as the paper's two-view runs
            did; see :func:`frossl_loss_func`. Defaults to False.

    Example:
        >>> loss_fn = FroSSLLoss(invariance_weight=1.0)
        >>> loss, invariance, regularization = loss_fn([z1, z2])
    """

    def __init__(
        self,
        invariance_weight: float = 1.0,
        gather_across_devices: bool = False,
        check_finite: Optional[bool] = None,
        center: bool = False,
    ):
        super().__init__()
        check_frossl_settings(invariance_weight, center)
        self.invariance_weight = invariance_weight
        self.gather_across_devices = gather_across_devices
        self.check_finite = check_finite
        self.center = center

    def forward(
        self, z: Union[torch.Tensor, Sequence[torch.Tensor]]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return frossl_loss_func(
            z,
            invariance_weight=self.invariance_weight,
            gather_across_devices=self.gather_across_devices,
            check_finite=self.check_finite,
            center=self.center,
        )
