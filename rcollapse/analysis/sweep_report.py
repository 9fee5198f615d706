"""The sweep report: a table of every run under one or more Hydra multirun dirs, no W&B needed.

    python -m rcollapse.report DIR [DIR ...] [--metrics KEY ...] [--out DIR]

A run dir is any dir holding ``.hydra/overrides.yaml`` (found recursively, DIR itself included),
with ``metrics.json`` (flat final metrics) once it succeeded and ``status.json`` (``running`` →
``completed`` | ``failed``, with the error) written by the pipeline. Status: ``status.json``'s
word when present, else ``completed`` with metrics and ``incomplete`` without; ``unreadable``
(the file and its error in ``error``) when ``status.json`` or ``.hydra/overrides.yaml`` cannot
be parsed, or a completed run's ``metrics.json`` is missing or cannot be: such a run is in no
mean. Overrides that only say how a run was run (``resume``, ``resume_force``, ``ckpt_path``,
``hydra.*``) are no swept parameters: a resumed seed stays in its group.

Prints one row per run (the swept parameters, status, chosen + default metrics), the seeds
grouped as mean ± std when ``seed`` varies, what the runs cost (``cost/*`` of ``metrics.json``:
mean wall time, peak memory, training throughput and the device(s), per setting or per run when
only the seed varies), and the failed, unfinished and unreadable runs with
their errors; writes ``report.csv`` (every column) and ``utility_comparison.png`` (open vs closed mean reward by rank
from the ``rm/test/*_reward_rank{k}`` metrics, one panel per swept setting). For PPO runs, the
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
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

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
RESERVED = ("run_dir", "status", "error", "slurm_job")
RUN_CONTROL = ("resume", "resume_force", "ckpt_path", "fail_fast")  # with hydra.*: never swept parameters
OVERRIDES = ".hydra/overrides.yaml"
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


def _natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key that puts ``2`` before ``10`` and never compares an int with a str."""
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", str(text)) if t]


def find_run_dirs(root) -> list[Path]:
    """Dirs holding ``.hydra/overrides.yaml`` under ``root`` (``root`` itself included)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = {p.parent.parent for p in root.rglob("overrides.yaml") if p.parent.name == ".hydra"}
    return sorted(found, key=lambda p: _natural_key(str(p)))


def _read_json(path: Path) -> tuple[dict | None, str]:
    """``(payload, problem)``: the JSON object in ``path``, or None and why not."""
    if not path.exists():
        return None, ""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return None, f"unreadable {path.name}: {err}"
    if not isinstance(payload, dict):
        return None, f"{path.name} holds no JSON object"
    return payload, ""


def _yaml_problem(err: Exception) -> str:
    """A YAML parse error in one line: what is wrong and where."""
    mark = getattr(err, "problem_mark", None)
    if getattr(err, "problem", None) and mark is not None:
        return f"{err.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(err).split())


def _first_line(text) -> str:
    lines = [line.strip() for line in str(text or "").strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def slurm_label(info: dict) -> str:
    """``ARRAY_TASK (job ID)`` from a status.json written under Slurm, "" elsewhere."""
    array, task, job = info.get("slurm_array_job_id"), info.get("slurm_array_task_id"), info.get("slurm_job_id")
    if array and task is not None:
        return f"{array}_{task} (job {job})" if job and job != array else f"{array}_{task}"
    return str(job or "")


def _metrics_problem(run_dir: Path, problem: str) -> str:
    """Why a completed run's ``metrics.json`` cannot be read ("" when it can)."""
    return problem or ("" if (run_dir / "metrics.json").exists() else "metrics.json is missing")


def _run_status(run_dir: Path, has_metrics: bool, metrics_problem: str = "") -> tuple[str, str, str]:
    """``(status, first line of the error, Slurm job)`` of one run dir; ``unreadable`` with the
    problem when its status.json, or a completed run's metrics.json, cannot be read."""
    info, problem = _read_json(run_dir / "status.json")
    if problem:
        return "unreadable", problem, ""
    if info is None:  # no status.json: a metrics.json, even a broken one, means it completed
        if metrics_problem:
            return "unreadable", metrics_problem, ""
        return ("completed" if has_metrics else "incomplete"), "", ""
    status = str(info.get("status") or ("completed" if has_metrics else "incomplete"))
    problem = _metrics_problem(run_dir, metrics_problem) if status == "completed" else ""
    if problem:
        return "unreadable", problem, slurm_label(info)
    error = _first_line(info.get("error"))
    if not error and info.get("traceback"):  # the traceback's last line names the exception
        lines = str(info["traceback"]).strip().splitlines()
        error = lines[-1].strip() if lines else ""
    return status, error, slurm_label(info)


def is_run_control(key: str) -> bool:
    """Whether an override key says how a run was run (resumed, its dirs), not what it is."""
    return key in RUN_CONTROL or key == "hydra" or key.startswith(("hydra.", "hydra/"))


def _read_overrides(run_dir: Path) -> tuple[dict[str, str], str]:
    """``(overrides, problem)``: the run's ``KEY=VALUE`` overrides less the run-control ones, or
    ``{}`` and why ``.hydra/overrides.yaml`` cannot be read."""
    try:
        items = yaml.safe_load((run_dir / OVERRIDES).read_text()) or []
    except (OSError, yaml.YAMLError) as err:
        return {}, f"unreadable {OVERRIDES}: {_yaml_problem(err)}"
    if not isinstance(items, list):
        return {}, f"unreadable {OVERRIDES}: a {type(items).__name__}, not a list of overrides"
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip().lstrip("+~")
        if sep and not is_run_control(key):
            overrides[key] = value.strip()
    return overrides, ""


def collect_runs(dirs: Iterable) -> pd.DataFrame:
    """One row per run under ``dirs``: ``run_dir``, the override keys (values as strings),
    ``status``, ``error`` (first line) and every metric column.

    ``df.attrs`` records ``override_keys``, ``metric_keys`` (column order: run_dir,
    overrides, status, error, metrics naturally sorted), ``text_metric_keys`` (the metrics kept as
    text: those whose every value is a string, such as ``cost/device``; the others are numbers,
    NaN where a value is no number) and ``no_overrides`` (the run dirs whose overrides.yaml
    cannot be read).
    """
    records: list[dict] = []
    override_keys: dict[str, None] = {}
    metric_keys: set[str] = set()
    seen: set[Path] = set()
    no_overrides: list[str] = []
    for root in dirs:
        for run_dir in find_run_dirs(root):
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            overrides, overrides_problem = _read_overrides(run_dir)
            metrics, problem = _read_json(run_dir / "metrics.json")
            metrics = {str(k): v for k, v in (metrics or {}).items()}
            status, error, slurm_job = _run_status(run_dir, bool(metrics), problem)
            if overrides_problem:  # whatever status.json says: the run's setting is unknown
                no_overrides.append(str(run_dir))
                status, error = "unreadable", "; ".join(filter(None, [overrides_problem, error]))
            override_keys.update(dict.fromkeys(k for k in overrides if k not in RESERVED))
            metric_keys.update(metrics)
            records.append({"run_dir": str(run_dir), **overrides, "status": status,
                            "error": error or problem, "slurm_job": slurm_job, **metrics})
    params = list(override_keys)
    metric_cols = sorted(metric_keys - set(params) - set(RESERVED), key=_natural_key)
    df = pd.DataFrame.from_records(records, columns=["run_dir", *params, "status", "error", "slurm_job",
                                                     *metric_cols])
    text_cols = []
    for col in metric_cols:
        numbers = pd.to_numeric(df[col], errors="coerce")
        if numbers.notna().any() or not df[col].map(lambda v: isinstance(v, str)).any():
            df[col] = numbers
        else:  # a metric that is text in every run that has it (cost/device)
            text_cols.append(col)
    df.attrs["override_keys"] = params
    df.attrs["text_metric_keys"] = text_cols
    df.attrs["metric_keys"] = metric_cols
    df.attrs["no_overrides"] = no_overrides
    return df


def swept_params(df: pd.DataFrame) -> list[str]:
    """The override keys whose value varies across runs (a missing value counts as one; runs
    whose overrides cannot be read are left out)."""
    keys = df.attrs.get("override_keys")
    if keys is None:  # a frame not from collect_runs: every column that is no metric
        keys = [c for c in df.columns if c not in RESERVED and "/" not in c]
    if "run_dir" in df.columns:
        df = df[~df["run_dir"].isin(df.attrs.get("no_overrides", []))]
    return [c for c in keys if c in df.columns and df[c].astype(str).nunique(dropna=False) > 1]


def summarise(df: pd.DataFrame, metrics: Sequence[str], group_by: Sequence[str] | None = None
              ) -> pd.DataFrame | None:
    """Completed runs grouped over seeds: ``mean``, ``std`` and ``n`` of each metric.

    ``group_by`` defaults to the swept parameters other than ``seed`` (everything in one group
    ``all`` if ``seed`` is the only one). Returns a frame indexed by the group keys with
    columns ``(metric, stat)``, or None when there is nothing to summarise.
    """
    if group_by is None:
        group_by = [p for p in swept_params(df) if p != "seed"]
    done = df[df["status"] == "completed"] if "status" in df.columns else df
    metrics = [m for m in metrics if m in done.columns]
    if done.empty or not metrics:
        return None
    values = done[metrics].apply(pd.to_numeric, errors="coerce")
    if group_by:
        keys = [done[g].astype(str) for g in group_by]
        grouped = values.groupby(keys, dropna=False, sort=False)
    else:
        grouped = values.groupby(pd.Series("all", index=done.index, name="group"))
    table = grouped.agg(["mean", "std", "count"])
    return table.rename(columns={"count": "n"}, level=1)


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rcollapse.report",
        description="Table, CSV and comparison figure of the runs under Hydra multirun dirs.",
    )
    parser.add_argument("dirs", nargs="+", help="multirun dir(s), run dir(s), or dirs holding several")
    parser.add_argument("--metrics", nargs="*", default=[],
                        help="metric keys for the table (besides the defaults, when present)")
    parser.add_argument("--out", default=None,
                        help="dir for report.csv and utility_comparison.png (default: the first DIR)")
    args = parser.parse_args(argv)

    missing = [d for d in args.dirs if not Path(d).exists()]
    for d in missing:
        print(f"rcollapse.report: {d} does not exist", file=sys.stderr)
    if missing:
        return 2
    df = collect_runs(args.dirs)
    if df.empty:
        print(f"No runs found under {', '.join(args.dirs)} "
              "(looked for run dirs holding .hydra/overrides.yaml).")
        return 2

    for m in args.metrics:
        if m not in df.columns:
            print(f"warning: metric {m!r} is in no run's metrics.json")
    wanted = list(dict.fromkeys([*args.metrics, *DEFAULT_METRICS]))
    metrics = [m for m in wanted if m in df.columns]
    params = swept_params(df)
    roots = [Path(d) for d in args.dirs]
    counts = df["status"].value_counts()
    print(f"{len(df)} run(s); swept: {', '.join(params) or 'nothing'}; "
          + ", ".join(f"{n} {s}" for s, n in counts.items()) + "\n")
    slurm = ["slurm_job"] if df["slurm_job"].astype(bool).any() else []  # ran under Slurm
    rows = [[_run_label(r["run_dir"], roots), *(fmt(r.get(p)) for p in params), str(r["status"]),
             *(str(r[c]) for c in slurm), *(fmt(r.get(m)) for m in metrics)] for r in df.to_dict("records")]
    print(format_table(["run", *params, "status", *slurm, *metrics], rows))

    if "seed" in params:
        table = summarise(df, metrics)
        if table is not None:
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

    costs = cost_summary(df, [_run_label(r, roots) for r in df["run_dir"]])
    if costs is not None:
        grouped = bool(costs.attrs.get("grouped"))
        print("\nCost (" + ("mean over each setting's completed runs" if grouped else "completed runs")
              + "; wall = the whole stage, train s = inside training batches, sequences/s and tokens/s "
              "over that time; cost/* in report.csv):")
        print(format_cost(costs))

    for status, heading in (("failed", "Failed jobs:"), ("incomplete", "Incomplete jobs:"),
                            ("running", "Jobs still running (or killed):"),
                            ("unreadable", "Unreadable runs (in no mean; the file and its error):")):
        part = df[df["status"] == status]
        if not part.empty:
            print(f"\n{heading}")
            for r in part.to_dict("records"):
                job = f"  Slurm job {r['slurm_job']}" if r.get("slurm_job") else ""
                print(f"  {r['run_dir']}  [{status}]{job}  {r['error'] or ''}".rstrip())

    out = Path(args.out) if args.out else Path(args.dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "report.csv"
    df.to_csv(csv_path, index=False)
    print(f"\nwrote {csv_path}")
    comparison = _comparison_rows(df, params)
    if comparison:
        from rcollapse.analysis.collapse_plots import plot_utility_comparison

        figure = plot_utility_comparison(comparison, out / "utility_comparison.png",
                                         title="test prompts: mean reward by rank")
        print(f"wrote {figure}")
    elif not any(str(c).startswith("ppo/") for c in df.columns):
        # PPO sweeps have no rank metrics by design; only say so for reward-model sweeps.
        print("no rm/test/*_reward_rank* metrics in completed runs: no comparison figure")
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

    summary = ppo_summary(df)
    if summary is not None:
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
    curves = arm_curves(df)
    if curves is not None:
        print("\nOver-optimisation by arm (mean over the arm's runs at each judged iteration; step -1 is the "
              "reference policy, KL 0; proxy = the optimised reward, gold = the judge, of the same responses):")
        print(format_table(["arm", "step", "n", "KL", "proxy", "gold"],
                           [[str(r["arm"]), str(int(r["step"])), str(int(r["n"])), fmt(r["kl"]), fmt(r["proxy"]),
                             fmt(r["gold"])] for r in curves.to_dict("records")]))
        curves.to_csv(out / "ppo_overoptimisation.csv", index=False)
        print(f"wrote {out / 'ppo_overoptimisation.csv'}")
        print(f"wrote {plot_overoptimisation(curves, out / 'ppo_overoptimisation.png')}")
    return 0
