"""Time of the collapse-program solver (``rcollapse.theory.solve_collapse``) on one CPU core.

Issue 4's targets: n = 1,000 under 1 s and n = 10,000 under 60 s. For each utility and n we print
the wall time, the iterations at the top level, the relative Frank–Wolfe duality gap (the KKT
residual; a pessimistic certificate for utilities with U'(0) = ∞) and the KS distance to the
known limit.

    python -m benchmarks.collapse_solver [--sizes 1000,10000] [--max-iter 300]
"""

from __future__ import annotations

import argparse
import time

import torch

from rcollapse.theory import ks_distance, limit_distribution, solve_collapse
from rcollapse.utilities import InverseUtility, LogSigmoidUtility, LogUtility, PowerUtility

UTILITIES = {
    "x_inv (eps=0)": InverseUtility(eps=0),
    "log (eps=0)": LogUtility(eps=0),
    "power 0.5 (eps=0)": PowerUtility(gamma=0.5, eps=0),
    "logsigmoid": LogSigmoidUtility(scale=4.0),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--max-iter", type=int, default=300, help="iterations at the largest n")
    parser.add_argument("--utilities", default=",".join(UTILITIES))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{'utility':<20}{'n':>7}{'seconds':>10}{'iters':>7}{'rel. gap':>11}{'KS to limit':>13}")
    for name in args.utilities.split(","):
        utility = UTILITIES[name]
        limit = limit_distribution(utility)
        for n in (int(s) for s in args.sizes.split(",")):
            max_iter = args.max_iter if n <= 1000 else max(20, args.max_iter // 10)
            start = time.perf_counter()
            sol = solve_collapse(utility, n, max_iter=max_iter)
            seconds = time.perf_counter() - start
            ks = f"{ks_distance(sol.rewards, limit.cdf):.4f}" if limit else "-"
            print(f"{name:<20}{n:>7}{seconds:>10.2f}{sol.iterations:>7}"
                  f"{sol.duality_gap / abs(sol.objective):>11.1e}{ks:>13}", flush=True)


if __name__ == "__main__":
    main()
