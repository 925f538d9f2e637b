"""Eigenvalue spectrum, effective rank (RankMe) and order-2 Renyi entropy of embeddings.

For an N x D embedding matrix ``E`` (N samples, D features), with ``Ec`` its column-centred copy:

- covariance spectrum: the eigenvalues ``lambda_1 >= ... >= lambda_r`` (r = min(N, D)) of
  ``C = Ec^T Ec / (N - 1)``, obtained as ``s_k^2 / (N - 1)`` from the singular values ``s_k``
  of ``Ec``; the remaining D - r eigenvalues are exactly zero and are not stored;
- RankMe effective rank (Garrido et al., ICML 2023, https://arxiv.org/abs/2210.02885):
  ``exp(-sum_k p_k log p_k)`` with ``p_k = s_k / sum_j s_j``, the normalised singular values of
  ``Ec`` (``0 log 0 = 0``, no epsilon), between 1 and ``rank(Ec)``;
- order-2 Renyi entropy of the normalised spectrum ``q_k = lambda_k / sum_j lambda_j``:
  ``H_2 = -log sum_k q_k^2`` (nats). FroSSL's regularizer ``log ||K / tr K||_F^2`` is ``-H_2``
  of its own (column-normalised, uncentred) Gram matrix.

Everything is computed in float64 on the CPU. A matrix whose centred copy is all zero (fully
collapsed embeddings) has effective rank 0 and an undefined (NaN) Renyi entropy.
"""

import math
from typing import Dict

import torch


def centered_singular_values(embeddings: torch.Tensor) -> torch.Tensor:
    """Singular values of the column-centred embeddings, largest first.

    Args:
        embeddings (torch.Tensor): N x D embeddings, N >= 2.

    Returns:
        torch.Tensor: min(N, D) float64 singular values on the CPU, in descending order.
    """

    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else None
        raise ValueError(f"embeddings must be an N x D tensor, but found shape {shape}.")
    n, d = embeddings.shape
    if n < 2 or d < 1:
        raise ValueError(f"embeddings need N >= 2 samples and D >= 1 features, found {n} x {d}.")
    values = embeddings.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(values).all()):
        raise ValueError("embeddings hold non-finite values (NaN or inf).")
    centered = values - values.mean(dim=0, keepdim=True)  # (N, D)
    return torch.linalg.svdvals(centered)  # (min(N, D),)


def covariance_eigenvalues(singular_values: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Eigenvalues of ``Ec^T Ec / (N - 1)`` from the singular values of ``Ec``.

    Args:
        singular_values (torch.Tensor): r singular values of the centred N x D embeddings.
        num_samples (int): N.

    Returns:
        torch.Tensor: r eigenvalues, in the order of ``singular_values``.
    """

    return singular_values.square() / (num_samples - 1)


def rankme(singular_values: torch.Tensor) -> float:
    """RankMe effective rank: exp of the Shannon entropy of the normalised singular values.

    Args:
        singular_values (torch.Tensor): r >= 1 non-negative singular values.

    Returns:
        float: effective rank in [1, number of non-zero values], or 0.0 when all are zero.
    """

    total = singular_values.sum()
    if float(total) <= 0.0:
        return 0.0
    p = singular_values / total  # (r,)
    entropy = -torch.special.xlogy(p, p).sum()  # xlogy(0, 0) = 0
    return math.exp(float(entropy))


def renyi2_entropy(eigenvalues: torch.Tensor) -> float:
    """Order-2 Renyi entropy ``-log sum_k q_k^2`` of the normalised eigenvalues ``q``.

    Args:
        eigenvalues (torch.Tensor): r >= 1 non-negative eigenvalues.

    Returns:
        float: entropy in nats, in [0, log(number of non-zero values)]; NaN when all are zero.
    """

    total = eigenvalues.sum()
    if float(total) <= 0.0:
        return float("nan")
    q = eigenvalues / total  # (r,)
    return -math.log(float(q.square().sum()))


def spectrum_stats(embeddings: torch.Tensor) -> Dict[str, object]:
    """Covariance spectrum, RankMe and order-2 Renyi entropy of one embedding matrix.

    Args:
        embeddings (torch.Tensor): N x D embeddings.

    Returns:
        Dict[str, object]: ``eigenvalues`` (list of min(N, D) floats, descending), ``rankme``,
        ``renyi2`` (nats), ``num_samples`` (N) and ``dim`` (D).
    """

    singular_values = centered_singular_values(embeddings)
    n, d = embeddings.shape
    eigenvalues = covariance_eigenvalues(singular_values, n)
    return {
        "eigenvalues": eigenvalues.tolist(),
        "rankme": rankme(singular_values),
        "renyi2": renyi2_entropy(eigenvalues),
        "num_samples": int(n),
        "dim": int(d),
    }
