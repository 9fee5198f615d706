"""The sweep report: a table of every run under one or more Hydra multirun dirs, no W&B needed.

    python -m rcollapse.report DIR [DIR ...] [--metrics KEY ...] [--out DIR]

The runs are read as :mod:`rcollapse.analysis.sweep_runs` says (run dirs, status, overrides that
are swept parameters).

Prints one row per run (the swept parameters, status, chosen + default metrics), the seeds
grouped as mean ± std when ``seed`` varies, what the runs cost (``cost/*`` of ``metrics.json``:
mean wall time, peak memory, training throughput and the device(s), per setting or per run when
only the seed varies), the failed, unfinished and unreadable runs with their errors, and the jobs a
multirun's ``multirun.yaml`` names that have no run dir (:mod:`rcollapse.analysis.sweep_jobs`: their
count, number and overrides); writes ``report.csv`` (every column; a row of status ``missing`` per
missing job) and ``utility_comparison.png`` (open vs closed mean reward by rank from the ``rm/test/*_reward_rank{k}`` metrics, one panel per swept setting). For PPO runs, the
arms' judge distribution (``ppo_summary.csv``, ``ppo_judge_distribution.png``), the risk
comparison of the two arms at matched KL (``ppo_study.json``: share below the reference, worst
10 %, variance ratio with its bootstrap interval, Levene's test, final-KL gap) and their
over-optimisation curves from each run's ``ppo_history.csv`` (``ppo_overoptimisation.csv``,
``ppo_overoptimisation.png``: proxy and gold against KL(π‖π0), twin axes).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rcollapse.analysis.ppo_report import (
    arm_curves,
    format_risk_comparison,
    kl_gap,
    plot_judge_distribution,
    plot_overoptimisation,
    ppo_summary,
    risk_comparison,
    write_risk_comparison,
)
from rcollapse.analysis.sweep_jobs import SweepJobs, check_sweeps, missing_job_rows
from rcollapse.analysis.sweep_runs import collect_runs, summarise, swept_params
from rcollapse.analysis.tables import fmt, format_table, is_missing

DEFAULT_METRICS = (  # those present in a sweep's runs are shown
    "rm/test/open_closed_distance",
    "rm/test/open_w1_uniform",
    "rm/test/closed_w1_two_point",
    "rm/val/pair_acc",
    "rm/test/theory_distance_open",
    "theory/ks_distance",
    "theory/w1_distance",
    "theory/mass_at_one",
    "bandit/unaware/return_std",
    "bandit/aware/return_std",
    "bandit/std_ratio_unaware_over_aware",
)
PROFILE_SPLIT = "rm/test"
# the numbers of the report's Cost section: metrics.json key (rcollapse.runs.run_cost), column heading
COST_COLUMNS = (
    ("cost/wall_s", "wall s"),
    ("cost/peak_rss_gb", "peak RSS GB"),
    ("cost/peak_gpu_mem_gb", "peak GPU GB"),
    ("cost/train_s", "train s"),
    ("cost/train_sequences_per_s", "sequences/s"),
    ("cost/train_tokens_per_s", "tokens/s"),
)
COST_DEVICE = "cost/device"
_RANK_KEY = re.compile(r"^(?P<prefix>.+)/(?P<kind>open|closed)_reward_rank(?P<k>\d+)$")


def reward_profiles(record: dict, prefix: str = PROFILE_SPLIT) -> dict[str, np.ndarray]:
    """``{"open_profile", "closed_profile"}`` from the ``{prefix}/T_reward_rank{k}`` metrics
    (NaN at ranks the record lacks)."""
    ranks: dict[str, dict[int, float]] = {"open": {}, "closed": {}}
    for key, value in record.items():
        match = _RANK_KEY.match(str(key))
        if match and match["prefix"] == prefix and not is_missing(value):
            ranks[match["kind"]][int(match["k"])] = float(value)
    profiles = {}
    for kind, by_rank in ranks.items():
        profile = np.full(max(by_rank, default=0), np.nan)
        for k, value in by_rank.items():
            profile[k - 1] = value
        profiles[f"{kind}_profile"] = profile
    return profiles


def _comparison_rows(df: pd.DataFrame, params: list[str]) -> list[dict]:
    """Panels for the comparison figure: one per setting (seeds averaged when they vary)."""
    done = df[df["status"] == "completed"]
    group_by = [p for p in params if p != "seed"]
    rows = []
    if "seed" in params:
        groups = done.groupby([done[g].astype(str) for g in group_by], sort=False) if group_by \
            else [((), done)]  # only the seed varies: one panel, "all"
        for key, part in groups:
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"{p}={k}" for p, k in zip(group_by, key, strict=True)) or "all"
            profiles = [reward_profiles(r) for r in part.to_dict("records")]
            row = {"label": f"{label} ({len(part)} seeds)"}
            for name in ("open_profile", "closed_profile"):
                stack = [p[name] for p in profiles if p[name].size]
                if stack:
                    width = max(s.size for s in stack)
                    padded = np.full((len(stack), width), np.nan)
                    for i, s in enumerate(stack):
                        padded[i, : s.size] = s
                    with np.errstate(all="ignore"):
                        row[name] = np.nanmean(padded, axis=0)
                else:
                    row[name] = np.empty(0)
            rows.append(row)
    else:
        for record in done.to_dict("records"):
            label = ", ".join(f"{p}={record[p]}" for p in params) or Path(record["run_dir"]).name
            rows.append({"label": label, **reward_profiles(record)})
    return [r for r in rows if r["open_profile"].size or r["closed_profile"].size]


def cost_summary(df: pd.DataFrame, labels: Sequence[str] | None = None) -> pd.DataFrame | None:
    """What the completed runs cost (their ``cost/*`` metrics, from ``rcollapse.runs.run_cost``): per
    group of the swept settings other than ``seed``, the mean of each number over the group's
    runs, ``n`` and the device(s); per run (``labels``, default the run dirs) when nothing but
    the seed was swept. None when no completed run has a cost."""
    done = df[df["status"] == "completed"] if "status" in df.columns else df
    numbers = [key for key, _ in COST_COLUMNS if key in done.columns and done[key].notna().any()]
    if done.empty or not numbers:
        return None
    with_cost = done[numbers].notna().any(axis=1)
    done = done[with_cost]
    values = done[numbers].apply(pd.to_numeric, errors="coerce")
    devices = done[COST_DEVICE].astype(str).where(done[COST_DEVICE].notna(), "-") if COST_DEVICE in done.columns \
        else pd.Series("-", index=done.index)
    group_by = [p for p in swept_params(df) if p != "seed"]
    if not group_by:
        label_of = df["run_dir"] if labels is None else pd.Series(list(labels), index=df.index)
        table = values.copy()
        table.insert(0, "n", 1)
        table["device"] = devices
        table.index = pd.Index(label_of.loc[done.index].astype(str).tolist(), name="run")
        table.attrs["grouped"] = False
        return table
    keys = [done[g].astype(str) for g in group_by]
    table = values.groupby(keys, dropna=False, sort=False).mean()
    table.insert(0, "n", values.groupby(keys, dropna=False, sort=False).size())
    table["device"] = devices.groupby(keys, dropna=False, sort=False).agg(lambda d: "; ".join(dict.fromkeys(d)))
    table.attrs["grouped"] = True
    return table


def format_cost(table: pd.DataFrame) -> str:
    """The cost table for the console (``n`` only when runs are grouped)."""
    numbers = [key for key, _ in COST_COLUMNS if key in table.columns]
    names = dict(COST_COLUMNS)
    grouped = bool(table.attrs.get("grouped"))
    index_names = [str(name) for name in table.index.names] if grouped else ["run"]
    headers = [*index_names, *(["n"] if grouped else []), *(names[k] for k in numbers), "device"]
    rows = []
    for key, row in table.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        rows.append([*(str(k) for k in key), *([str(int(row["n"]))] if grouped else []),
                     *(fmt(row[k]) for k in numbers), str(row["device"])])
    return format_table(headers, rows)


def _run_label(run_dir: str, roots: Sequence[Path]) -> str:
    path = Path(run_dir)
    for root in roots:
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        return str(rel) if str(rel) != "." else path.name
    return run_dir


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rcollapse.report",
        description="Table, CSV and comparison figure of the runs under Hydra multirun dirs.",
    )
    parser.add_argument("dirs", nargs="+", help="multirun dir(s), run dir(s), or dirs holding several")
    parser.add_argument("--metrics", nargs="*", default=[],
                        help="metric keys for the table (besides the defaults, when present)")
    parser.add_argument("--out", default=None,
                        help="dir for report.csv and utility_comparison.png (default: the first DIR)")
    return parser.parse_args(argv)


# ---- the sections every report has ---------------------------------------------------------------


def print_runs(df: pd.DataFrame, params: list[str], metrics: list[str], roots: Sequence[Path]) -> None:
    """The heading (runs, swept parameters, statuses) and one row per run."""
    counts = df["status"].value_counts()
    print(f"{len(df)} run(s); swept: {', '.join(params) or 'nothing'}; "
          + ", ".join(f"{n} {s}" for s, n in counts.items()) + "\n")
    slurm = ["slurm_job"] if df["slurm_job"].astype(bool).any() else []  # ran under Slurm
    rows = [[_run_label(r["run_dir"], roots), *(fmt(r.get(p)) for p in params), str(r["status"]),
             *(str(r[c]) for c in slurm), *(fmt(r.get(m)) for m in metrics)] for r in df.to_dict("records")]
    print(format_table(["run", *params, "status", *slurm, *metrics], rows))


def print_sweep_counts(sweeps: Sequence[SweepJobs]) -> None:
    """Per multirun dir (one holding Hydra's ``multirun.yaml``): how many of its jobs have a run dir."""
    for sweep in sweeps:
        print(f"sweep {sweep.sweep_dir}: {sweep.summary()}")
    if sweeps:
        print()


def print_missing_jobs(sweeps: Sequence[SweepJobs]) -> None:
    """The jobs a sweep's ``multirun.yaml`` names that have no run dir: number, swept overrides, why."""
    missing = [(sweep, job) for sweep in sweeps for job in sweep.missing]
    if not missing:
        return
    print("\nMissing jobs (in the sweep's multirun.yaml, without a run dir: deleted, or never started; in no mean):")
    for sweep, job in missing:
        label = f" ({job.label})" if job.label else ""
        print(f"  job {job.num}{label}: missing: {job.reason}  [sweep {sweep.sweep_dir}]")


def print_seed_means(df: pd.DataFrame, params: list[str], metrics: list[str]) -> None:
    """Mean ± std over seeds of each setting, when the seed was swept."""
    if "seed" not in params:
        return
    table = summarise(df, metrics)
    if table is None:
        return
    group_cols = [p for p in params if p != "seed"] or ["group"]
    print("\nMean ± std over seeds:")
    grouped_rows = []
    for key, row in table.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        cells = [str(k) for k in key]
        for m in metrics:
            n = int(row[(m, "n")])
            cells.append(f"{fmt(row[(m, 'mean')])} ± {fmt(row[(m, 'std')])} (n={n})")
        grouped_rows.append(cells)
    print(format_table([*group_cols, *metrics], grouped_rows))


def print_costs(df: pd.DataFrame, roots: Sequence[Path]) -> None:
    costs = cost_summary(df, [_run_label(r, roots) for r in df["run_dir"]])
    if costs is None:
        return
    grouped = bool(costs.attrs.get("grouped"))
    print("\nCost (" + ("mean over each setting's completed runs" if grouped else "completed runs")
          + "; wall = the whole stage, train s = inside training batches, sequences/s and tokens/s "
          "over that time; cost/* in report.csv):")
    print(format_cost(costs))


def print_problem_runs(df: pd.DataFrame) -> None:
    """The failed, incomplete, running and unreadable runs, each with its error."""
    for status, heading in (("failed", "Failed jobs:"), ("incomplete", "Incomplete jobs:"),
                            ("running", "Jobs still running (or killed):"),
                            ("unreadable", "Unreadable runs (in no mean; the file and its error):")):
        part = df[df["status"] == status]
        if not part.empty:
            print(f"\n{heading}")
            for r in part.to_dict("records"):
                job = f"  Slurm job {r['slurm_job']}" if r.get("slurm_job") else ""
                print(f"  {r['run_dir']}  [{status}]{job}  {r['error'] or ''}".rstrip())


# ---- one section per stage -----------------------------------------------------------------------


def collapse_section(df: pd.DataFrame, params: list[str], out: Path) -> None:
    """stage=reward: open vs closed mean reward by rank, one panel per setting."""
    comparison = _comparison_rows(df, params)
    if comparison:
        from rcollapse.analysis.collapse_plots import plot_utility_comparison

        figure = plot_utility_comparison(comparison, out / "utility_comparison.png",
                                         title="test prompts: mean reward by rank")
        print(f"wrote {figure}")
    elif not any(str(c).startswith("ppo/") for c in df.columns):
        # PPO sweeps have no rank metrics by design; only say so for reward-model sweeps.
        print("no rm/test/*_reward_rank* metrics in completed runs: no comparison figure")


def theory_section(df: pd.DataFrame, out: Path) -> None:
    """stage=theory: every run's predicted profile by utility class (its ``theory.json``); the
    theory and bandit numbers themselves are columns of the runs table (DEFAULT_METRICS)."""
    theory_runs = []
    for run_dir in df["run_dir"]:
        path = Path(run_dir) / "theory.json"
        if path.exists():
            try:
                theory_runs.append(json.loads(path.read_text()))
            except (OSError, ValueError) as err:
                print(f"skipped {path} in the theory figure: unreadable ({err})")
    if theory_runs:
        from rcollapse.analysis.collapse_plots import plot_theory_by_class

        print(f"wrote {plot_theory_by_class(theory_runs, out / 'theory_by_class.png')}")


def ppo_arms_section(df: pd.DataFrame, out: Path) -> None:
    """stage=ppo: the arms' judge distribution (paper Fig. 7) and their risk at matched KL."""
    summary = ppo_summary(df)
    if summary is None:
        return
    print("\nPPO policies by arm (judge = mean score over the test prompts; paper Fig. 7):")
    rows = [[name, str(int(r["n"])), fmt(r["judge mean"]), fmt(r["judge var"]),
             "-" if pd.isna(r["below ref"]) else f"{100 * r['below ref']:.0f} %", fmt(r["worst 10%"]),
             "-" if pd.isna(r["final KL"]) else fmt(r["final KL"])
             + ("" if pd.isna(r["final KL std"]) else f" ± {fmt(r['final KL std'])}")]
            for name, r in summary.iterrows()]
    print(format_table(["policy", "n", "judge mean", "judge var", "below ref", "worst 10%", "final KL"],
                       rows))
    gap = kl_gap(summary)
    print("below ref = share of the arm's policies under their own run's reference policy; worst 10% = "
          f"mean of the lowest tenth (at least one); final KL = {summary.attrs['kl_metric']} (mean ± std "
          "over the arm's policies)"
          + ("" if gap is None else f"; the arms' final KLs differ by {100 * gap:.0f} % of their mean"))
    summary.to_csv(out / "ppo_summary.csv")
    print(f"wrote {plot_judge_distribution(summary, out / 'ppo_judge_distribution.png')}")
    risk = risk_comparison(summary)
    if risk is None:
        print("\nRisk at matched KL: needs both arms (variance-aware and vanilla); found "
              + ", ".join(name for name in summary.index if name != "reference"))
    else:
        print("\n" + format_risk_comparison(risk))
        print(f"wrote {write_risk_comparison(risk, out / 'ppo_study.json')}")


def ppo_curves_section(df: pd.DataFrame, out: Path) -> None:
    """stage=ppo: each arm's over-optimisation curve (proxy and gold against KL)."""
    curves = arm_curves(df)
    if curves is None:
        return
    print("\nOver-optimisation by arm (mean over the arm's runs at each judged iteration; step -1 is the "
          "reference policy, KL 0; proxy = the optimised reward, gold = the judge, of the same responses):")
    print(format_table(["arm", "step", "n", "KL", "proxy", "gold"],
                       [[str(r["arm"]), str(int(r["step"])), str(int(r["n"])), fmt(r["kl"]), fmt(r["proxy"]),
                         fmt(r["gold"])] for r in curves.to_dict("records")]))
    curves.to_csv(out / "ppo_overoptimisation.csv", index=False)
    print(f"wrote {out / 'ppo_overoptimisation.csv'}")
    print(f"wrote {plot_overoptimisation(curves, out / 'ppo_overoptimisation.png')}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    missing = [d for d in args.dirs if not Path(d).exists()]
    for d in missing:
        print(f"rcollapse.report: {d} does not exist", file=sys.stderr)
    if missing:
        return 2
    df = collect_runs(args.dirs)
    sweeps = check_sweeps(args.dirs)  # the jobs each multirun dir should have: which are missing
    if df.empty:
        print(f"No runs found under {', '.join(args.dirs)} "
              "(looked for run dirs holding .hydra/overrides.yaml).")
        print_missing_jobs(sweeps)
        return 2

    for m in args.metrics:
        if m not in df.columns:
            print(f"warning: metric {m!r} is in no run's metrics.json")
    wanted = list(dict.fromkeys([*args.metrics, *DEFAULT_METRICS]))
    metrics = [m for m in wanted if m in df.columns]
    params = swept_params(df)
    roots = [Path(d) for d in args.dirs]
    print_sweep_counts(sweeps)
    print_runs(df, params, metrics, roots)
    print_seed_means(df, params, metrics)
    print_costs(df, roots)
    print_problem_runs(df)
    print_missing_jobs(sweeps)

    out = Path(args.out) if args.out else Path(args.dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "report.csv"
    missing = pd.DataFrame(missing_job_rows(sweeps))  # status "missing": a row per missing job
    (pd.concat([df, missing], ignore_index=True) if not missing.empty else df).to_csv(csv_path, index=False)
    print(f"\nwrote {csv_path}")
    collapse_section(df, params, out)
    theory_section(df, out)
    ppo_arms_section(df, out)
    ppo_curves_section(df, out)
    return 0
