"""Time of the collapse-program solver (``rcollapse.maths.theory.solve_collapse``) on one CPU core.

Issue 4's targets: n = 1,000 under 1 s and n = 10,000 under 60 s. For each utility and n we print
the wall time of the projected-Newton solver, its iterations at the top level, the relative
Frank–Wolfe duality gap (the KKT residual) and the KS distance to the known limit; at the sizes up
to ``--compare-up-to`` the exponentiated-gradient solver (the earlier method, kept as a check)
runs beside it with the same tolerance and the ratio of the two times is printed.

    python -m benchmarks.collapse_solver [--sizes 1000,10000] [--compare-up-to 1000]
"""

from __future__ import annotations

import argparse
import time

import torch

from rcollapse.maths.theory import ks_distance_to_limit, limit_distribution, solve_collapse
from rcollapse.maths.utilities import (
    InverseUtility,
    LogSigmoidUtility,
    LogUtility,
    NegPowerUtility,
    PowerUtility,
)

UTILITIES = {
    "x_inv (eps=0)": InverseUtility(eps=0),
    "log (eps=0)": LogUtility(eps=0),
    "power 0.5 (eps=0)": PowerUtility(gamma=0.5, eps=0),
    "neg_power 0.5 (eps=0)": NegPowerUtility(gamma=0.5, eps=0),
    "logsigmoid": LogSigmoidUtility(scale=4.0),
}
TARGET_SECONDS = {1000: 1.0, 10000: 60.0}


def _timed(utility, n, **kwargs):
    start = time.perf_counter()
    solution = solve_collapse(utility, n, **kwargs)
    return solution, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--compare-up-to", type=int, default=1000,
                        help="also run the exponentiated-gradient solver up to this n")
    parser.add_argument("--eg-max-iter", type=int, default=2000)
    parser.add_argument("--utilities", default=",".join(UTILITIES))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{'utility':<23}{'n':>7}{'seconds':>9}{'target':>8}{'iters':>7}{'rel. gap':>10}"
          f"{'KS to limit':>13}{'EG seconds':>12}{'EG rel. gap':>13}{'EG/Newton':>11}")
    for name in args.utilities.split(","):
        utility = UTILITIES[name]
        limit = limit_distribution(utility)
        for n in (int(s) for s in args.sizes.split(",")):
            sol, seconds = _timed(utility, n)
            target = TARGET_SECONDS.get(n)
            ks = f"{ks_distance_to_limit(sol, limit):.4f}" if limit else "-"
            line = (f"{name:<23}{n:>7}{seconds:>9.2f}{(f'<{target:g}' if target else '-'):>8}"
                    f"{sol.iterations:>7}{sol.duality_gap / abs(sol.objective):>10.1e}{ks:>13}")
            if n <= args.compare_up_to:
                eg, eg_seconds = _timed(utility, n, method="exponentiated_gradient", max_iter=args.eg_max_iter)
                line += (f"{eg_seconds:>12.2f}{eg.duality_gap / abs(eg.objective):>13.1e}"
                         f"{eg_seconds / seconds:>10.1f}x")
            print(line, flush=True)


if __name__ == "__main__":
    main()
