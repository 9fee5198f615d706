"""``stage=bandit``: Theorem 3.3's simulation, ``bandit.json`` and the histogram figure (paper Fig. 5)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rcollapse.analysis.theory_plots import plot_bandit_returns
from rcollapse.maths.bandit import (
    SETTINGS,
    equal_mean_std_ratio,
    equal_mean_std_ratio_delta_method,
    kantorovich_bound,
    make_problem,
    simulate,
)
from rcollapse.runs.atomic_files import write_json_atomic


def run_bandit_stage(cfg: DictConfig, output_dir: Path) -> dict[str, float]:
    b = cfg.stage.bandit
    if b.variance_range is not None:
        variance_range = tuple(float(v) for v in b.variance_range)
    elif b.setting in SETTINGS:
        variance_range = SETTINGS[b.setting]
    else:
        raise ValueError(f"stage.bandit.setting must be one of {sorted(SETTINGS)} (or give stage.bandit.variance_range), "
                         f"got {b.setting!r}")
    r_star, variances = make_problem(int(b.d), variance_range, float(b.reward_loc), float(b.reward_scale),
                                     int(b.seed), str(b.variance_distribution))
    result = simulate(r_star, variances, float(b.epsilon), int(b.num_draws), int(b.seed) + 1,
                      epsilon_tilde=b.epsilon_tilde)
    methods = {}
    for method, returns in result.returns.items():
        methods[method] = {
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "underperformance_mc": result.underperformance_mc[method],
            "underperformance_closed_form": result.underperformance_closed_form[method],
        }
    payload = {"setting": b.setting, "variance_range": list(variance_range), "d": int(b.d),
               "variance_distribution": str(b.variance_distribution),
               "epsilon": float(b.epsilon), "epsilon_tilde_rule": str(b.epsilon_tilde),
               "epsilon_tilde": result.epsilon_tilde, "num_draws": int(b.num_draws),
               "reference_return": result.reference_return, "methods": methods,
               "std_ratio_unaware_over_aware": methods["unaware"]["return_std"] / methods["aware"]["return_std"],
               # the std ratio at equal means: to first order in the noise (delta method; what a
               # matched_mean run measures), its low-signal limit and that limit's ceiling for the range
               # (the Kantorovich bound bounds the low-signal limit, not the measured ratio)
               "std_ratio_at_equal_means_delta_method": equal_mean_std_ratio_delta_method(r_star, variances),
               "std_ratio_at_equal_means_predicted": equal_mean_std_ratio(r_star, variances),
               "std_ratio_at_equal_means_bound": kantorovich_bound(variance_range)}
    write_json_atomic(output_dir / "bandit.json", payload, indent=2)
    plot_bandit_returns(result.returns, result.reference_return, output_dir / "figures" / "bandit_returns.png",
                 title=f"variances in {variance_range}")
    for method, m in methods.items():
        print(f"{method:>8}: return {m['return_mean']:.4f} ± {m['return_std']:.4f}; P(worse than π0) "
              f"MC {m['underperformance_mc']:.4g}, closed form {m['underperformance_closed_form']:.4g}")
    print(f"std ratio unaware/aware {payload['std_ratio_unaware_over_aware']:.2f} (ε̃ = {result.epsilon_tilde:.4g}, "
          f"{b.epsilon_tilde}); at equal means: predicted {payload['std_ratio_at_equal_means_delta_method']:.2f} "
          f"(delta method); low-signal limit {payload['std_ratio_at_equal_means_predicted']:.2f}, which is at most "
          f"{payload['std_ratio_at_equal_means_bound']:.2f} for variances in {variance_range}")
    print(f"outputs in {output_dir}")
    metrics = {f"bandit/{method}/{key}": value for method, m in methods.items() for key, value in m.items()}
    metrics["bandit/std_ratio_unaware_over_aware"] = payload["std_ratio_unaware_over_aware"]
    metrics["bandit/epsilon_tilde"] = result.epsilon_tilde
    return metrics
