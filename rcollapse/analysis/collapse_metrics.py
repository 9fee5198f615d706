"""Collapse metrics on per-prompt reward vectors: distances between open and closed prompts.

Reward collapse (Song et al. 2023) is open-ended and closed-ended prompts ending with the same
reward distribution. We pool each type's rewards and measure the Wasserstein-1 distance between
the two pools, the distance of each pool to the uniform and to the polarised (two-point) shape,
and the mean reward at each rank position. Numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def wasserstein1(a, b) -> float:
    """Exact 1-D W1 between two empirical samples: ∫ |F_a(t) − F_b(t)| dt over the merged support."""
    a, b = np.sort(np.asarray(a, float).ravel()), np.sort(np.asarray(b, float).ravel())
    if a.size == 0 or b.size == 0:
        raise ValueError("wasserstein1 needs two non-empty samples")
    support = np.concatenate([a, b])
    support.sort()
    widths = np.diff(support)
    cdf_a = np.searchsorted(a, support[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, support[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def uniform_quantile(u: np.ndarray) -> np.ndarray:
    """Quantile function of Uniform(0, 1)."""
    return np.asarray(u, float)


def two_point_quantile(u: np.ndarray) -> np.ndarray:
    """Quantile function of the polarised law: half the mass at 0, half at 1."""
    return (np.asarray(u, float) > 0.5).astype(float)


def wasserstein1_to_quantiles(sample, quantile_fn: Callable[[np.ndarray], np.ndarray], grid: int = 2000) -> float:
    """W1 to a reference law given by its quantile function: ∫₀¹ |F⁻¹(u) − Q(u)| du (midpoint rule)."""
    sample = np.sort(np.asarray(sample, float).ravel())
    u = (np.arange(grid) + 0.5) / grid
    empirical = sample[np.minimum((u * sample.size).astype(int), sample.size - 1)]
    return float(np.mean(np.abs(empirical - quantile_fn(u))))


def rank_profile(reward_vectors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean reward at each rank position (0 = best) over the prompts having it, and the counts."""
    n_max = max(len(v) for v in reward_vectors)
    sums, counts = np.zeros(n_max), np.zeros(n_max, dtype=int)
    for v in reward_vectors:
        sums[: len(v)] += np.asarray(v, float)
        counts[: len(v)] += 1
    return sums / np.maximum(counts, 1), counts


def pooled_by_type(reward_vectors: Sequence[np.ndarray], openness) -> tuple[np.ndarray, np.ndarray]:
    """All rewards of open prompts (openness > 0) and of closed prompts, each pooled."""
    openness = np.asarray(openness, float)
    open_r = [np.asarray(v, float) for v, o in zip(reward_vectors, openness) if o > 0]
    closed_r = [np.asarray(v, float) for v, o in zip(reward_vectors, openness) if o <= 0]
    return (np.concatenate(open_r) if open_r else np.empty(0),
            np.concatenate(closed_r) if closed_r else np.empty(0))


def pair_accuracy(reward_vectors: Sequence[np.ndarray]) -> float:
    """Share of within-prompt pairs i < j with r_i > r_j strictly (vectors are best-first)."""
    correct = total = 0
    for v in reward_vectors:
        v = np.asarray(v, float)
        i, j = np.triu_indices(len(v), k=1)
        correct += int(np.sum(v[i] > v[j]))
        total += len(i)
    return correct / max(total, 1)


def collapse_metrics(reward_vectors: Sequence[np.ndarray], openness, prefix: str) -> dict[str, float]:
    """The flat metrics of one evaluation split (keys ``{prefix}/...``)."""
    openness = np.asarray(openness, float)
    metrics = {f"{prefix}/pair_acc": pair_accuracy(reward_vectors)}
    pools = dict(zip(("open", "closed"), pooled_by_type(reward_vectors, openness)))
    for kind, is_kind in (("open", openness > 0), ("closed", openness <= 0)):
        vectors = [v for v, keep in zip(reward_vectors, is_kind) if keep]
        metrics[f"{prefix}/num_{kind}"] = float(len(vectors))
        if not vectors:
            continue
        profile, _ = rank_profile(vectors)
        for k, value in enumerate(profile, start=1):
            metrics[f"{prefix}/{kind}_reward_rank{k}"] = float(value)
        pool = pools[kind]
        metrics[f"{prefix}/{kind}_reward_std"] = float(pool.std())
        metrics[f"{prefix}/{kind}_w1_uniform"] = wasserstein1_to_quantiles(pool, uniform_quantile)
        metrics[f"{prefix}/{kind}_w1_two_point"] = wasserstein1_to_quantiles(pool, two_point_quantile)
    if pools["open"].size and pools["closed"].size:
        metrics[f"{prefix}/open_closed_distance"] = wasserstein1(pools["open"], pools["closed"])
    return metrics
