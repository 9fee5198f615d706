"""``stage=theory``: solve the collapse program for the configured utility and compare with its limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from rcollapse.analysis.theory_plots import plot_collapsed_distribution
from rcollapse.maths.theory import (
    ks_distance_to_limit,
    limit_distribution,
    logsigmoid_endpoint_mass,
    solve_collapse,
    wasserstein1_to_cdf,
)
from rcollapse.runs.atomic_files import write_json_atomic


def run_theory_stage(cfg: DictConfig, output_dir: Path) -> dict[str, float]:
    settings = cfg.stage.theory
    utility = instantiate(cfg.utility).for_openness(float(settings.openness))
    n = int(settings.n)
    solution = solve_collapse(utility, n, tol=float(settings.tol), max_iter=int(settings.max_iter))
    limit = limit_distribution(utility)
    payload = {
        "utility": repr(utility),
        "n": n,
        "rewards": solution.rewards.tolist(),
        # min(r, 1 − r) of each reward, exact where the reward rounds to 0 or 1
        "distances_to_end": solution.distances_to_end.tolist(),
        "objective": solution.objective,
        "duality_gap": solution.duality_gap,
        "iterations": solution.iterations,
        "limit": None if limit is None else {"name": limit.name, "params": limit.params},
    }
    metrics = {"theory/objective": solution.objective, "theory/duality_gap": solution.duality_gap}
    if limit is not None:
        payload["ks_distance"] = ks_distance_to_limit(solution, limit)
        payload["w1_distance"] = wasserstein1_to_cdf(solution.rewards, limit.cdf)
        metrics["theory/ks_distance"] = payload["ks_distance"]
        metrics["theory/w1_distance"] = payload["w1_distance"]
    if type(utility).__name__ == "LogSigmoidUtility":
        bound = logsigmoid_endpoint_mass(utility)
        payload["theorem4_mass_bound"] = bound
        payload["mass_at_one"] = float(np.mean(solution.rewards > 1 - 1e-3))
        metrics["theory/mass_at_one"] = payload["mass_at_one"]
    write_json_atomic(output_dir / "theory.json", payload, indent=2)
    plot_collapsed_distribution(solution.rewards, limit, output_dir / "figures" / "theory_distribution.png",
                                title=f"{payload['utility']}, n={n}")
    print(f"theory: n={n}, objective={solution.objective:.6g}, duality gap={solution.duality_gap:.2e}"
          + (f", KS to {limit.name}{limit.params}: {payload['ks_distance']:.4g}" if limit else "")
          + f"\noutputs in {output_dir}")
    return metrics
