"""Collapse metrics on per-prompt reward vectors: how far apart open and closed prompts end.

Reward collapse (Song et al. 2023) is open-ended and closed-ended prompts ending with the same
reward distribution. Each prompt gives a reward vector ``r`` (values in [0, 1], ordered by the
human ranking, best first; its length ``n`` may differ between prompts) and an openness score in
[-1, 1] (a prompt is *open* if its openness is > 0, *closed* otherwise). We pool each type's
rewards and measure the Wasserstein-1 distance between the two pools, the distance of each pool
to the uniform and to the polarised (two-point) shape, and the mean reward at each rank position.
Numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

TYPES = ("open", "closed")


def wasserstein1(a, b) -> float:
    """Exact 1-D W1 between two empirical samples (sizes may differ).

    ``∫ |F_a(t) − F_b(t)| dt``, the CDFs being step functions on the merged support.
    """
    a = np.sort(np.asarray(a, float).ravel())
    b = np.sort(np.asarray(b, float).ravel())
    if a.size == 0 or b.size == 0:
        raise ValueError("wasserstein1 needs two non-empty samples")
    support = np.sort(np.concatenate([a, b]))
    widths = np.diff(support)
    # Right-continuous CDFs, constant on each [support[i], support[i + 1]).
    cdf_a = np.searchsorted(a, support[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, support[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def uniform_quantile(u) -> np.ndarray:
    """Quantile function of Uniform(0, 1)."""
    return np.asarray(u, float)


def two_point_quantile(u) -> np.ndarray:
    """Quantile function of the polarised law: half the mass at 0, half at 1."""
    return (np.asarray(u, float) > 0.5).astype(float)


def wasserstein1_to_quantiles(
    sample, quantile_fn: Callable[[np.ndarray], np.ndarray], grid: int = 2000
) -> float:
    """W1 between an empirical sample and a law given by its quantile function ``Q``.

    ``∫₀¹ |F⁻¹(u) − Q(u)| du`` by the midpoint rule on ``grid`` points (error O(1/grid) for a
    bounded law).
    """
    sample = np.sort(np.asarray(sample, float).ravel())
    if sample.size == 0:
        raise ValueError("wasserstein1_to_quantiles needs a non-empty sample")
    u = (np.arange(grid) + 0.5) / grid
    # Empirical quantile F⁻¹(u) = inf{x : F(x) ≥ u} = sample[ceil(u n) − 1].
    index = np.clip(np.ceil(u * sample.size).astype(int) - 1, 0, sample.size - 1)
    return float(np.mean(np.abs(sample[index] - np.asarray(quantile_fn(u), float))))


def rank_profile(reward_vectors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean reward at each rank position (index 0 = best) over the prompts that have it.

    Returns ``(profile, counts)``, both of length ``n_max``; ``counts[i]`` is the number of
    prompts with at least ``i + 1`` completions. Empty input gives two empty arrays.
    """
    vectors = [np.asarray(v, float).ravel() for v in reward_vectors]
    n_max = max((v.size for v in vectors), default=0)
    sums = np.zeros(n_max)
    counts = np.zeros(n_max, dtype=int)
    for v in vectors:
        sums[: v.size] += v
        counts[: v.size] += 1
    return sums / np.maximum(counts, 1), counts


def split_by_type(reward_vectors: Sequence[np.ndarray], openness) -> dict[str, list[np.ndarray]]:
    """``{"open": [...], "closed": [...]}``: the prompts' vectors by type (open iff openness > 0)."""
    openness = np.asarray(openness, float).ravel()
    if len(reward_vectors) != openness.size:
        raise ValueError(
            f"{len(reward_vectors)} reward vectors but {openness.size} openness scores"
        )
    vectors = [np.asarray(v, float).ravel() for v in reward_vectors]
    return {
        "open": [v for v, o in zip(vectors, openness, strict=True) if o > 0],
        "closed": [v for v, o in zip(vectors, openness, strict=True) if not o > 0],
    }


def pooled_by_type(reward_vectors: Sequence[np.ndarray], openness) -> tuple[np.ndarray, np.ndarray]:
    """``(open_rewards, closed_rewards)``: every reward of each type's prompts, pooled (1-D)."""
    by_type = split_by_type(reward_vectors, openness)
    return tuple(  # type: ignore[return-value]
        np.concatenate(by_type[kind]) if by_type[kind] else np.empty(0) for kind in TYPES
    )


def pair_accuracy(reward_vectors: Sequence[np.ndarray]) -> float:
    """Share of within-prompt pairs i < j with r_i > r_j strictly (vectors are best-first).

    Ties count as errors. NaN if there is no pair at all.
    """
    by_size: dict[int, list[np.ndarray]] = {}
    for v in reward_vectors:
        v = np.asarray(v, float).ravel()
        by_size.setdefault(v.size, []).append(v)
    correct = total = 0
    for n, group in by_size.items():
        i, j = np.triu_indices(n, k=1)
        stacked = np.stack(group)
        correct += int(np.sum(stacked[:, i] > stacked[:, j]))
        total += len(group) * len(i)
    return correct / total if total else float("nan")


def collapse_metrics(
    reward_vectors: Sequence[np.ndarray], openness, prefix: str
) -> dict[str, float]:
    """The flat metrics of one evaluation split, keys ``{prefix}/...`` (e.g. ``rm/test``).

    Always ``pair_acc``; per type ``T`` in (open, closed) that has prompts: ``num_T``,
    ``T_reward_rank{k}`` (k = 1..n_max, 1 = best), ``T_reward_std`` (population std of the
    pooled rewards), ``T_w1_uniform``, ``T_w1_two_point``; and ``open_closed_distance`` when
    both types have prompts. All values are python floats.
    """
    by_type = split_by_type(reward_vectors, openness)
    metrics: dict[str, float] = {f"{prefix}/pair_acc": float(pair_accuracy(reward_vectors))}
    pools: dict[str, np.ndarray] = {}
    for kind in TYPES:
        vectors = by_type[kind]
        if not vectors:
            continue
        pool = np.concatenate(vectors)
        metrics[f"{prefix}/num_{kind}"] = float(len(vectors))
        profile, _ = rank_profile(vectors)
        for k, value in enumerate(profile, start=1):
            metrics[f"{prefix}/{kind}_reward_rank{k}"] = float(value)
        if pool.size == 0:  # prompts with no completion: nothing to measure
            continue
        pools[kind] = pool
        metrics[f"{prefix}/{kind}_reward_std"] = float(pool.std())
        metrics[f"{prefix}/{kind}_w1_uniform"] = wasserstein1_to_quantiles(pool, uniform_quantile)
        metrics[f"{prefix}/{kind}_w1_two_point"] = wasserstein1_to_quantiles(
            pool, two_point_quantile
        )
    if "open" in pools and "closed" in pools:
        metrics[f"{prefix}/open_closed_distance"] = wasserstein1(pools["open"], pools["closed"])
    return metrics
