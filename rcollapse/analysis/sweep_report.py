"""The sweep report: a table of every run under one or more multirun dirs, with no W&B needed.

    python -m rcollapse.report DIR [DIR ...] [--metrics KEY ...] [--out DIR]

One row per run (the swept parameters, the status, the chosen final metrics), seeds grouped as
mean ± std when they vary, failed jobs with their errors; writes ``report.csv`` and the
comparison figure ``utility_comparison.png`` (open vs closed reward by rank, one panel per run
or group).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import yaml

DEFAULT_METRICS = (
    "rm/test/open_closed_distance",
    "rm/test/open_w1_uniform",
    "rm/test/closed_w1_two_point",
    "rm/val/pair_acc",
)
_RANK_KEY = re.compile(r"^rm/test/(open|closed)_reward_rank(\d+)$")


def find_run_dirs(root: Path) -> list[Path]:
    """Dirs holding ``.hydra/overrides.yaml`` under ``root`` (``root`` itself included)."""
    root = Path(root)
    found = [p.parent.parent for p in root.rglob("overrides.yaml") if p.parent.name == ".hydra"]
    return sorted(set(found), key=lambda p: [int(s) if s.isdigit() else s for s in p.parts])


def _status(run_dir: Path, has_metrics: bool) -> tuple[str, str]:
    status_file = run_dir / "status.json"
    if status_file.exists():
        info = json.loads(status_file.read_text())
        status = info.get("status", "unknown")
        if status == "running" and not has_metrics:
            return "incomplete", ""
        return status, (info.get("error") or "").splitlines()[0] if info.get("error") else ""
    return ("completed", "") if has_metrics else ("incomplete", "")


def collect_runs(dirs) -> "pd.DataFrame":  # noqa: F821
    import pandas as pd

    records = []
    for root in dirs:
        for run_dir in find_run_dirs(Path(root)):
            overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
            record: dict = {"run_dir": str(run_dir)}
            for item in overrides:
                key, _, value = str(item).partition("=")
                record[key.lstrip("+~")] = value
            metrics_file = run_dir / "metrics.json"
            metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
            record["status"], record["error"] = _status(run_dir, bool(metrics))
            record.update(metrics)
            records.append(record)
    return pd.DataFrame.from_records(records)


def swept_params(df) -> list[str]:
    reserved = {"run_dir", "status", "error"}
    params = [c for c in df.columns if c not in reserved and "/" not in c]
    return [c for c in params if df[c].astype(str).nunique(dropna=False) > 1]


def summarise(df, metrics, group_by=None):
    """Group runs that differ only in ``seed``: mean, std and count of each metric."""
    group_by = group_by or [p for p in swept_params(df) if p != "seed"]
    done = df[df["status"] == "completed"]
    metrics = [m for m in metrics if m in done.columns]
    if not group_by or done.empty or not metrics:
        return None
    grouped = done.groupby(group_by, dropna=False)[metrics]
    table = grouped.agg(["mean", "std", "count"])
    return table


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def _profiles(record) -> dict[str, np.ndarray]:
    ranks: dict[str, dict[int, float]] = {"open": {}, "closed": {}}
    for key, value in record.items():
        m = _RANK_KEY.match(str(key))
        if m and value is not None and not (isinstance(value, float) and np.isnan(value)):
            ranks[m.group(1)][int(m.group(2))] = float(value)
    return {f"{k}_profile": np.array([v[i] for i in sorted(v)]) for k, v in ranks.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rcollapse.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", help="multirun dir(s), run dir(s), or dirs holding several")
    parser.add_argument("--metrics", nargs="*", default=None, help="metric keys for the table")
    parser.add_argument("--out", default=None, help="where report.csv and the figure go (default: the first DIR)")
    args = parser.parse_args(argv)

    df = collect_runs(args.dirs)
    if df.empty:
        print(f"No runs found under {', '.join(args.dirs)} (looked for */.hydra/overrides.yaml).")
        return 2
    metrics = [m for m in (args.metrics or DEFAULT_METRICS) if m in df.columns]
    params = swept_params(df)
    label_of = {i: ", ".join(f"{p}={df.at[i, p]}" for p in params) or Path(df.at[i, "run_dir"]).name for i in df.index}

    print(f"{len(df)} run(s); swept: {', '.join(params) or 'nothing'}\n")
    _print_table(
        [*params, "status", *metrics],
        [[_fmt(df.at[i, p]) for p in params] + [df.at[i, "status"]] + [_fmt(df.at[i, m]) for m in metrics]
         for i in df.index],
    )

    if "seed" in params:
        table = summarise(df, metrics)
        if table is not None:
            print("\nMean ± std over seeds:")
            group_cols = [p for p in params if p != "seed"]
            rows = []
            for key, row in table.iterrows():
                key = key if isinstance(key, tuple) else (key,)
                cells = [str(k) for k in key]
                for m in metrics:
                    cells.append(f"{_fmt(row[(m, 'mean')])} ± {_fmt(row[(m, 'std')])} (n={int(row[(m, 'count')])})")
                rows.append(cells)
            _print_table([*group_cols, *metrics], rows)

    failed = df[df["status"] != "completed"]
    if not failed.empty:
        print("\nFailed or incomplete jobs:")
        for i in failed.index:
            print(f"  {df.at[i, 'run_dir']}  [{df.at[i, 'status']}]  {df.at[i, 'error'] or ''}")

    out = Path(args.out or args.dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "report.csv"
    df.to_csv(csv_path, index=False)
    print(f"\nwrote {csv_path}")
    rows = [{"label": label_of[i], **_profiles(df.loc[i].to_dict())} for i in df.index
            if df.at[i, "status"] == "completed"]
    rows = [r for r in rows if r["open_profile"].size or r["closed_profile"].size]
    if rows:
        from rcollapse.analysis.collapse_plots import plot_utility_comparison

        print(f"wrote {plot_utility_comparison(rows, out / 'utility_comparison.png')}")
    return 0
