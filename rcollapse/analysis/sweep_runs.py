"""The runs of a sweep, read from their run dirs: one row per run, its swept parameters, status and metrics.

A run dir is any dir holding ``.hydra/overrides.yaml`` (found recursively, DIR itself included),
with ``metrics.json`` (flat final metrics) once it succeeded and ``status.json`` (``running`` →
``completed`` | ``failed``, with the error) written by the pipeline. Status: ``status.json``'s
word when present, else ``completed`` with metrics and ``incomplete`` without; ``unreadable``
(the file and its error in ``error``) when ``status.json`` or ``.hydra/overrides.yaml`` cannot
be parsed, or a completed run's ``metrics.json`` is missing or cannot be: such a run is in no
mean. Overrides that only say how a run was run (``resume``, ``resume_force``, ``ckpt_path``,
``hydra.*``) are no swept parameters: a resumed seed stays in its group.

:func:`collect_runs` reads them into a frame, :func:`swept_params` says which overrides vary and
:func:`summarise` groups the completed runs over seeds; :mod:`rcollapse.analysis.sweep_report`
prints and draws the report from them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import yaml

RESERVED = ("run_dir", "status", "error", "slurm_job")
RUN_CONTROL = ("resume", "resume_force", "ckpt_path", "fail_fast")  # with hydra.*: never swept parameters
OVERRIDES = ".hydra/overrides.yaml"


def _natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key that puts ``2`` before ``10`` and never compares an int with a str."""
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", str(text)) if t]


def find_run_dirs(root) -> list[Path]:
    """Dirs holding ``.hydra/overrides.yaml`` under ``root`` (``root`` itself included), less the
    completed runs an extension set aside (``<run dir>/superseded/<time>/``: the run they belong to
    is reported once, as it is now)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = {p.parent.parent for p in root.rglob("overrides.yaml")
             if p.parent.name == ".hydra" and "superseded" not in p.relative_to(root).parts[:-3]}
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
    return parse_overrides(items), ""


def parse_overrides(items: Iterable) -> dict[str, str]:
    """``{key: value}`` of ``KEY=VALUE`` overrides (``+``/``~`` dropped) less the run-control ones."""
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip().lstrip("+~")
        if sep and not is_run_control(key):
            overrides[key] = value.strip()
    return overrides


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
