"""Distances between two sets of features (chapter 6): the Fréchet distance (FID's formula),
its dependence on the sample size N and the extrapolation to N = ∞, and the kernel distance (KID).

The Fréchet distance is computed in float64 from the eigenvalues of a symmetric matrix (no
``scipy.linalg.sqrtm``), with the unbiased (N − 1) covariance, as pytorch-fid's ``np.cov``. It is
biased upward at finite N by an amount that depends on the model (Bińkowski et al. 2018; Chong &
Forsyth 2020): :func:`frechet_curve` measures it at several N and fits FD_N = FD_∞ + b/N, and
:func:`kernel_distance` gives KID, whose estimator is unbiased, with its standard error.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class FrechetDistanceError(ValueError):
    """Feature sets a Fréchet distance cannot be computed from."""


def feature_statistics(features) -> tuple:
    """(mean, covariance) of features [N, D] in float64; needs N >= 2 for a covariance."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise FrechetDistanceError(f"features must be a 2-D array [N, D], got shape "
                                   f"{features.shape}")
    if len(features) < 2:
        raise FrechetDistanceError(f"a Fréchet distance needs at least 2 images per set (a "
                                   f"covariance), got {len(features)}; use more samples")
    if not np.isfinite(features).all():
        raise FrechetDistanceError("features contain NaN or Inf; check the images and the "
                                   "feature network's weights")
    return features.mean(0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix (round-off negatives clipped to 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """Tr((Σ₁Σ₂)^½) of two covariances, as Σ √max(λ, 0) over the eigenvalues λ of Σ₁^½ Σ₂ Σ₁^½.

    Σ₁Σ₂ is similar to the symmetric PSD matrix Σ₁^½ Σ₂ Σ₁^½, so their square roots have the same
    trace; a symmetric eigendecomposition is stable where ``sqrtm`` of the non-symmetric product
    needs pytorch-fid's ε-retry, and singular covariances (fewer images than dimensions) are fine.
    """
    root = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    middle = root @ np.asarray(sigma2, dtype=np.float64) @ root
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2) -> float:
    """‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) in float64 (Heusel et al. 2017), the formula of
    pytorch-fid's ``calculate_frechet_distance`` without its SciPy ``sqrtm`` call."""
    mu1, mu2 = (np.atleast_1d(np.asarray(mu, np.float64)) for mu in (mu1, mu2))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise FrechetDistanceError(f"feature dimensions differ: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise FrechetDistanceError(f"covariances {sigma1.shape} and {sigma2.shape} do not match "
                                   f"the means' dimension {len(mu1)}; pass [D, D] covariances")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] and [M, D]."""
    return frechet_distance_from_statistics(*feature_statistics(features_a),
                                            *feature_statistics(features_b))


def curve_sizes(count: int, smallest: int = 50, points: int = 5) -> list:
    """Sample sizes for :func:`frechet_curve`: about ``points`` sizes, geometric from
    ``smallest`` up to ``count`` (all), each an integer >= 2."""
    if count < 3:
        raise FrechetDistanceError(f"a Fréchet curve needs two sizes of at least 2 images, so "
                                   f"3 images or more; got {count}")
    smallest = min(smallest, max(2, count // 4))
    sizes = np.unique(np.geomspace(smallest, count, points).round().astype(int))
    return [int(size) for size in sizes if size >= 2]


@dataclass(frozen=True)
class FrechetCurve:
    """Fréchet distances at growing N, and their extrapolation to N = ∞ (a fit a + b/N)."""

    sizes: tuple          # N of each point
    distances: tuple      # mean FD_N over the repeats at that N
    infinite: float       # a, the fit's intercept: FD_∞
    infinite_se: float    # its standard error from the fit's residuals
    slope: float          # b: how fast the bias falls (FD units × images)


def frechet_curve(features_a, features_b, sizes=None, repeats: int = 3,
                  seed: int = 0) -> FrechetCurve:
    """FD between ``repeats`` random subsets of N rows of each set (the same N on both sides, as
    a user with N samples computes it), for each N in ``sizes``; then the least-squares fit of
    FD_N = FD_∞ + b/N over every subset, whose intercept extrapolates to infinitely many samples
    (Chong & Forsyth 2020). Both sets need at least max(sizes) rows."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    count = min(len(a), len(b))
    sizes = curve_sizes(count) if sizes is None else [int(size) for size in sizes]
    if max(sizes) > count or min(sizes) < 2 or len(set(sizes)) < 2:
        raise FrechetDistanceError(f"curve sizes must be at least two sizes in [2, {count}] "
                                   f"(the smaller set), got {sizes}")
    rng = np.random.default_rng(seed)
    xs, ys, means = [], [], []
    for size in sizes:
        # at the full size every repeat is the same pair of sets: one point is all there is
        draws = 1 if size == count else repeats
        values = [frechet_distance(a[rng.choice(len(a), size, replace=False)],
                                   b[rng.choice(len(b), size, replace=False)])
                  for _ in range(draws)]
        xs += [1 / size] * draws
        ys += values
        means.append(float(np.mean(values)))
    design = np.stack([np.ones(len(xs)), xs], 1)
    coefficients, *_ = np.linalg.lstsq(design, np.asarray(ys), rcond=None)
    residuals = np.asarray(ys) - design @ coefficients
    dof = max(len(ys) - 2, 1)
    covariance = residuals @ residuals / dof * np.linalg.pinv(design.T @ design)
    return FrechetCurve(tuple(sizes), tuple(means), float(coefficients[0]),
                        float(np.sqrt(covariance[0, 0])), float(coefficients[1]))


def unbiased_mmd2(a: np.ndarray, b: np.ndarray) -> float:
    """The unbiased estimate of MMD² with KID's kernel k(x, y) = (x·y / d + 1)³
    (Bińkowski et al. 2018): the diagonal terms k(x, x) are left out of both within-set means."""
    dims = a.shape[1]
    k_aa, k_bb = (a @ a.T / dims + 1) ** 3, (b @ b.T / dims + 1) ** 3
    k_ab = (a @ b.T / dims + 1) ** 3
    m, n = len(a), len(b)
    return float((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
                 + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1)) - 2 * k_ab.mean())


def kernel_distance(features_a, features_b, block_size: int = 100, seed: int = 0) -> tuple:
    """KID: (mean, standard error) of :func:`unbiased_mmd2` over disjoint blocks of
    ``block_size`` rows of each set (shuffled with ``seed``). Disjoint blocks make the blocks'
    estimates independent, so their standard deviation / √blocks is an honest s.e.; the mean is
    unbiased at any N, so unlike FD it needs no extrapolation. Needs 2 blocks (2·block_size rows
    of the smaller set), else one block of all rows and no s.e. (NaN)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    rng = np.random.default_rng(seed)
    a, b = a[rng.permutation(len(a))], b[rng.permutation(len(b))]
    blocks = min(len(a), len(b)) // block_size
    if blocks < 2:
        if min(len(a), len(b)) < 2:
            raise FrechetDistanceError("KID needs at least 2 images per set")
        return unbiased_mmd2(a, b), float("nan")
    values = [unbiased_mmd2(a[i * block_size:(i + 1) * block_size],
                            b[i * block_size:(i + 1) * block_size]) for i in range(blocks)]
    return float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(blocks))
