"""Diagnose reward collapse in a reward model you already have.

``python -m rcollapse.diagnose reward_model.source=run reward_model.run_dir=<stage=reward run dir>``
(or ``source=model`` with the ``model`` group, ``source=hub reward_model.name_or_path=...``,
``source=ensemble reward_model.artifact=<dir>``) scores every completion of every prompt of the
data set's test split (``diagnose.split=train`` for the training rows) and writes, in Hydra's
output dir (``outputs/diagnose/<date>/<time>/``):

- ``diagnose.json``: the collapse index, each group's dispersion, the between-group distances,
  the nearest theoretical profile overall and per group (with the runner-up and every
  candidate's distance, symmetrised and as observed), its share of prompt resamples, the
  candidates consistent with it, the profiles' asymmetry, pair accuracy, what was scored and how;
- ``per_prompt_scores.parquet``: one row per (prompt, completion): prompt_id, prompt, openness,
  group, completion_index (position in the data set's ranking, 0 = best), completion, score
  (the model's output, see ``score_kind``), normalised (min–max within the prompt), rank
  (1 = highest score within the prompt);
- ``summary.txt`` (also printed), ``figures/profiles_by_group.png``, ``config_resolved.yaml``.

``reward_model.trained_on`` (rankings | pairs; auto by the source) says how the model was trained:
a ranking model's profile is that of ``sigmoid(f)`` and the verdict names the utility it behaves
as if trained with; a pair-trained (Bradley–Terry) model's profile is the raw ``f``'s, free of the
per-prompt offset it leaves arbitrary, and the verdict says what the collapse theory does and does
not license for it, inferring no utility (:func:`verdict_record`).

The definitions are those of :mod:`rcollapse.analysis.collapse_diagnosis`; the reward models that
score live in :mod:`rcollapse.models.reward_scorers`. The steps: :func:`score` (the rows and the
model's scores), :func:`measure` (collapse report, nearest candidates), then the writers.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rcollapse.analysis.collapse_diagnosis import (
    OUTPUTS,
    TRAINED_ON,
    Candidate,
    TheoryCache,
    candidates_from_grid,
    collapse_report,
    consistent_candidates,
    group_labels,
    model_profile,
    nearest_confidence,
    nearest_profiles,
    profile_asymmetry,
    score_spread,
)
from rcollapse.analysis.collapse_metrics import pair_accuracy
from rcollapse.analysis.diagnosis_plots import plot_profiles_by_group
from rcollapse.config.resolvers import register_resolvers
from rcollapse.models.reward_scorers import SOURCES, TRAINED_ON_BY_SOURCE, Scorer, build_scorer
from rcollapse.runs.atomic_files import atomic_writer, write_json_atomic, write_text_atomic

register_resolvers()

SPLITS = ("test", "train")
TRAINED_ON_CHOICES = ("auto", *TRAINED_ON)
OUTPUT_CHOICES = ("auto", *OUTPUTS)


# ---- data ------------------------------------------------------------------------------------


def load_rows(cfg: DictConfig):
    split = str(cfg.diagnose.split)
    if split not in SPLITS:
        raise ValueError(f"diagnose.split must be one of {', '.join(SPLITS)}, got {split!r}")
    source = instantiate(cfg.dataset, tokenizer=None).source  # the data module builds its source from dataset.*
    prepare = getattr(source, "prepare", None)
    if callable(prepare):
        prepare()
    rows = list(source.load()[split])
    limit = cfg.diagnose.get("max_prompts")
    if limit:
        rows = rows[: int(limit)]
    if not rows:
        raise ValueError(f"the data set's {split!r} split has no rows")
    return rows


def column_values(cfg: DictConfig, rows) -> list | None:
    """``diagnose.group_column`` of each row, read from ``diagnose.group_file`` (JSONL, JSON lines,
    CSV or parquet): matched by its ``id`` column to the rows' ids, or by position when it has no ``id``."""
    if str(cfg.diagnose.group_by) != "column":
        return None
    import pandas as pd

    name, path = cfg.diagnose.get("group_column"), cfg.diagnose.get("group_file")
    if not name or not path:
        raise ValueError("diagnose.group_by=column needs diagnose.group_column (a column name) and "
                         "diagnose.group_file (a .jsonl, .csv or .parquet file with that column, and `id` to match rows)")
    path = Path(str(path))
    table = (pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path) if path.suffix == ".csv"
             else pd.read_json(path, lines=True))
    if name not in table.columns:
        raise ValueError(f"diagnose.group_column: {path} has no column {name!r} (columns: {list(table.columns)})")
    if "id" in table.columns:
        by_id = dict(zip(table["id"].astype(str), table[name], strict=True))
        missing = [row.row_id for row in rows if row.row_id not in by_id]
        if missing:
            raise ValueError(f"diagnose.group_file: {len(missing)} prompts have no row in {path}, e.g. {missing[:3]}")
        return [by_id[row.row_id] for row in rows]
    if len(table) < len(rows):
        raise ValueError(f"diagnose.group_file: {path} has {len(table)} rows and no `id` column; "
                         f"{len(rows)} prompts to label by position")
    return list(table[name][: len(rows)])


# ---- the diagnosis ---------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _nearest_line(ranked: list[dict], confidence: dict[str, float], level: float, consistent: list[str],
                  factor: float) -> str:
    best = ranked[0]
    share = confidence.get(best["label"], float("nan"))
    line = f"U = {best['label']} (W1 {_fmt(best['w1'])}; nearest in {share:.0%} of prompt resamples)"
    if len(ranked) > 1:
        line += f"; runner-up {ranked[1]['label']} (W1 {_fmt(ranked[1]['w1'])})"
        others = [label for label in consistent if label != best["label"]]
        if others:
            line += f"; NOT told apart from {', '.join(others)} (within {factor:g}x its W1)"
        elif not share >= level:
            line += f"; NOT told apart at the {level:.0%} level of prompt resamples"
    return line


@dataclass(frozen=True)
class Settings:
    """``diagnose.*``, read and checked before anything is written or scored."""

    threshold: float
    symmetrise: bool
    resamples: int
    level: float
    factor: float
    candidates: list[Candidate]
    split: str
    group_by: str
    seed: int
    trained_on: str  # rankings | pairs (reward_model.trained_on, auto resolved by the source)
    output: str  # sigmoid | raw: which of the model's outputs makes the profile (reward_model.output)


@dataclass
class Measurement:
    """What the profiles say: the collapse report, and the nearest candidates overall and per group."""

    profiles: list[np.ndarray]
    groups: list[str]
    by_group: dict[str, list[np.ndarray]]
    report: dict
    cache: TheoryCache
    nearest_all: list[dict]
    confidence_all: dict[str, float]
    nearest_group: dict[str, list[dict]]
    confidence_group: dict[str, dict[str, float]]
    consistent_all: list[str]
    consistent_group: dict[str, list[str]]
    collapsed: bool | None


def read_settings(cfg: DictConfig) -> Settings:
    d = cfg.diagnose
    threshold = float(d.collapse_threshold)
    symmetrise = bool(d.symmetrise)
    resamples = int(d.bootstrap)
    level = float(d.confidence_level)
    factor = float(d.consistent_factor)
    if factor < 1:
        raise ValueError(f"diagnose.consistent_factor must be at least 1, got {factor}")
    if resamples < 1:
        raise ValueError(f"diagnose.bootstrap must be at least 1 resample, got {resamples}")
    if not 0.0 < level <= 1.0:
        raise ValueError(f"diagnose.confidence_level must be in (0, 1], got {level}")
    grid = OmegaConf.to_container(d.candidates, resolve=True)
    classes = list(d.get("classes") or grid)
    unknown = [c for c in classes if c not in grid]
    if unknown:
        raise ValueError(f"diagnose.classes: {unknown} not in diagnose.candidates ({', '.join(grid)})")
    candidates = candidates_from_grid({name: grid[name] for name in classes})
    if not candidates:
        raise ValueError("diagnose.classes: give at least one candidate utility class")
    trained_on, output = read_training(cfg.reward_model)
    return Settings(threshold, symmetrise, resamples, level, factor, candidates, str(d.split), str(d.group_by),
                    int(cfg.seed), trained_on, output)


def read_training(rm: DictConfig) -> tuple[str, str]:
    """``reward_model.trained_on`` (auto: by the source, :data:`TRAINED_ON_BY_SOURCE`) and
    ``reward_model.output`` (auto: raw for a model trained on pairs, sigmoid for one trained on
    rankings), checked together before any model is loaded."""
    source, trained_on, output = str(rm.source), str(rm.get("trained_on", "auto")), str(rm.get("output", "auto"))
    if source not in SOURCES:
        raise ValueError(f"reward_model.source must be one of {', '.join(SOURCES)}, got {source!r}")
    if trained_on not in TRAINED_ON_CHOICES:
        raise ValueError(f"reward_model.trained_on must be one of {', '.join(TRAINED_ON_CHOICES)}, got {trained_on!r}")
    if output not in OUTPUT_CHOICES:
        raise ValueError(f"reward_model.output must be one of {', '.join(OUTPUT_CHOICES)}, got {output!r}")
    trained_on = TRAINED_ON_BY_SOURCE[source] if trained_on == "auto" else trained_on
    output = ("raw" if trained_on == "pairs" else "sigmoid") if output == "auto" else output
    model_profile([0.0, 1.0], trained_on, output)  # refuses sigmoid profiles of a pair-trained model
    return trained_on, output


# ---- score ---------------------------------------------------------------------------------------


def score(cfg: DictConfig) -> tuple[list, Scorer, list[np.ndarray]]:
    """The data set's rows, the reward model named by ``reward_model.*`` and its raw outputs ``f``
    for every row (:mod:`rcollapse.models.reward_scorers`)."""
    rows = load_rows(cfg)
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    scorer = build_scorer(cfg.reward_model, cfg.get("model"), accelerator)
    scores = [np.asarray(s, float) for s in scorer.score(rows)]
    return rows, scorer, scores


def read_output(raw: np.ndarray, output: str) -> np.ndarray:
    """The score diagnose reports (``per_prompt_scores.parquet``'s ``score``): ``sigmoid(f)`` or ``f``."""
    return 0.5 * (1.0 + np.tanh(0.5 * raw)) if output == "sigmoid" else raw


def score_kind(scorer: Scorer, output: str) -> str:
    return f"sigmoid({scorer.raw_kind}), in [0, 1]" if output == "sigmoid" else f"raw {scorer.raw_kind}"


# ---- measure -------------------------------------------------------------------------------------


def measure(profiles: list[np.ndarray], groups: list[str], s: Settings) -> Measurement:
    """The collapse report of the profiles by group, and each candidate's distance to the pooled
    profile overall and per group, with the bootstrap share of prompt resamples each is nearest in."""
    report = collapse_report(profiles, groups)
    cache = TheoryCache()
    nearest_all = nearest_profiles(profiles, s.candidates, cache, s.symmetrise)
    confidence_all = nearest_confidence(profiles, s.candidates, cache, s.symmetrise, s.resamples, s.seed)
    by_group: dict[str, list[np.ndarray]] = {}
    for p, g in zip(profiles, groups, strict=True):
        by_group.setdefault(g, []).append(p)
    by_group = dict(sorted(by_group.items()))
    nearest_group = {g: nearest_profiles(ps, s.candidates, cache, s.symmetrise) for g, ps in by_group.items()}
    confidence_group = {g: nearest_confidence(ps, s.candidates, cache, s.symmetrise, s.resamples, s.seed)
                        for g, ps in by_group.items()}
    between = report["between_group_distance"]
    return Measurement(
        profiles, groups, by_group, report, cache, nearest_all, confidence_all, nearest_group, confidence_group,
        consistent_candidates(nearest_all, s.factor),
        {g: consistent_candidates(r, s.factor) for g, r in nearest_group.items()},
        None if math.isnan(between) else bool(between < s.threshold))


def _told_apart(ranked: list[dict], confidence: dict[str, float], consistent: list[str], level: float) -> bool:
    return bool(confidence.get(ranked[0]["label"], 0.0) >= level and consistent == [ranked[0]["label"]])


# ---- write ---------------------------------------------------------------------------------------


def write_scores_table(path: Path, rows, scores: list[np.ndarray], groups: list[str]) -> None:
    """``per_prompt_scores.parquet``: one record per (prompt, completion)."""
    records = []
    for row, s, g in zip(rows, scores, groups, strict=True):
        low, high = float(s.min()), float(s.max())
        spread = high - low
        order = np.argsort(-s, kind="stable")
        rank = np.empty(s.size, int)
        rank[order] = np.arange(1, s.size + 1)
        for k, (text, value) in enumerate(zip(row.completions, s, strict=True)):
            records.append({"prompt_id": row.row_id, "prompt": row.prompt, "openness": float(row.openness),
                            "group": g, "completion_index": k, "completion": text, "score": float(value),
                            "normalised": float((value - low) / spread) if spread > 0 else 0.5,
                            "rank": int(rank[k])})
    with atomic_writer(path, "wb") as handle:
        pd.DataFrame.from_records(records).to_parquet(handle, index=False)


def write_profiles_figure(path: Path, m: Measurement, candidates: list[Candidate], title: str) -> Path:
    """Each group's profiles, with the overall nearest theory and the group's own."""
    sizes_of = {g: [len(p) for p in ps] for g, ps in m.by_group.items()}
    overlays = {}
    for g in m.by_group:
        n = int(np.bincount(sizes_of[g]).argmax())
        overall_best = next(c for c in candidates if c.label == m.nearest_all[0]["label"])
        group_best = next(c for c in candidates if c.label == m.nearest_group[g][0]["label"])
        overlays[g] = {f"nearest overall: {overall_best.label}": m.cache.profile(overall_best, n)}
        if group_best.label != overall_best.label:
            overlays[g][f"nearest for {g}: {group_best.label}"] = m.cache.profile(group_best, n)
    return plot_profiles_by_group(m.by_group, path, overlays, title)


def _definitions(s: Settings) -> dict[str, str]:
    return {
        "normalised_profile": "a prompt's scores min-max normalised within the prompt, sorted best first",
        "pooled_profile": "all normalised scores of a set of prompts together (empirical law)",
        "collapse_index": "mean over all prompts of W1(prompt's normalised profile, pooled profile of all prompts)",
        "group_dispersion": "mean over a group's prompts of W1(prompt's profile, the group's pooled profile)",
        "within_group_dispersion": "group dispersions averaged with weights = prompts per group",
        "between_group_distance": "W1 between the groups' pooled profiles (max over pairs of groups)",
        "nearest": "candidate U minimising W1(pooled profile, pooled solve_collapse(U, n_p) over the prompts); "
                   "with symmetrised=true each prompt's profile q is first replaced by (q + 1 - reverse(q)) / 2 "
                   "(every collapse solution is symmetric: per prompt this never increases the distance to a "
                   "solution); w1_raw is the distance without that",
        "asymmetry": "mean over prompts of W1(q, (q + 1 - reverse(q)) / 2): what no collapse solution explains",
        "nearest_confidence": "share of bootstrap resamples of the prompts in which each candidate is nearest "
                              "(prompt sampling only: not the spread between trainings)",
        "consistent_utilities": f"candidates whose w1 is within consistent_factor ({s.factor:g}) times the "
                                "nearest's (or 0.001): not told apart from it by this model's profile",
        "nearest_told_apart": "the nearest candidate's share >= nearest_confidence.level and no other "
                              "candidate is consistent",
        "collapsed": f"between_group_distance < collapse_threshold ({s.threshold:g})",
        "trained_on": "rankings: the utility is inferred (nearest_utility); pairs: a Bradley-Terry model, the "
                      "profile is offset-free (the raw score's min-max) and no utility is inferred (nearest_shape)",
    }


def diagnosis_record(source: str, scorer: Scorer, scores: list[np.ndarray], m: Measurement, s: Settings,
                     figure: str) -> dict:
    """``diagnose.json``'s content."""
    report = m.report
    return {
        "reward_model": {"source": source, "description": scorer.description,
                         "score_kind": score_kind(scorer, s.output), "trained_on": s.trained_on,
                         "trained_utility": scorer.trained_utility},
        "data": {"split": s.split, "num_prompts": len(scores),
                 "completions_per_prompt": {str(n): int(c) for n, c in
                                            zip(*np.unique([len(x) for x in scores], return_counts=True), strict=True)},
                 "group_by": s.group_by},
        "pair_accuracy": float(pair_accuracy(scores)),
        "collapse_index": report["collapse_index"],
        "within_group_dispersion": report["within_group_dispersion"],
        "between_group_distance": report["between_group_distance"],
        "between_group_pairwise": report["pairwise"],
        "groups": report["groups"],
        "collapse_threshold": s.threshold,
        "collapsed": m.collapsed,
        "asymmetry": profile_asymmetry(m.profiles),
        "asymmetry_by_group": {g: profile_asymmetry(ps) for g, ps in m.by_group.items()},
        "symmetrised": s.symmetrise,
        "nearest": {"overall": m.nearest_all, "by_group": m.nearest_group},
        "nearest_utility": m.nearest_all[0]["label"],
        "nearest_utility_by_group": {g: r[0]["label"] for g, r in m.nearest_group.items()},
        "nearest_confidence": {"overall": m.confidence_all, "by_group": m.confidence_group,
                               "resamples": s.resamples, "level": s.level},
        "consistent_utilities": m.consistent_all,
        "consistent_utilities_by_group": m.consistent_group,
        "consistent_factor": s.factor,
        "nearest_told_apart": _told_apart(m.nearest_all, m.confidence_all, m.consistent_all, s.level),
        "nearest_told_apart_by_group": {g: _told_apart(m.nearest_group[g], m.confidence_group[g],
                                                       m.consistent_group[g], s.level)
                                        for g in m.by_group},
        "figure": figure,
        "definitions": _definitions(s),
    }


PAIRS_PROFILE = ("the raw score f min-max normalised within each prompt: free of the per-prompt offset "
                 "c(x) that a model trained on pairs leaves arbitrary (f + c(x) fits its pairs as well)")
PAIRS_LICENSE = ("what the collapse theory licenses for this model: its theorems (Song et al. 2023) are about one "
                 "utility U summed over all pairs of each prompt's ranked completions, with a bounded reward "
                 "R = sigmoid(f) in [0, 1]. A model trained on pairs with the Bradley-Terry loss is already the "
                 "logsigmoid utility, applied to single pairs of an unbounded f, so its profile does not reveal "
                 "a U it was trained with, and none is inferred here; what can be said is how its shape "
                 "compares with logsigmoid's all-pairs prediction")


def verdict_record(m: Measurement, s: Settings, spreads: list[float]) -> dict:
    """``diagnose.json``'s verdict: for a ranking model the utility it behaves as if trained with;
    for a pair-trained one no utility (``nearest_utility`` null), its profile's definition, the
    nearest logsigmoid prediction and the nearest shape among all candidates, as a description."""
    line = _nearest_line(m.nearest_all, m.confidence_all, s.level, m.consistent_all, s.factor)
    if s.trained_on == "rankings":
        return {"profile": "sigmoid(f) min-max normalised within each prompt" if s.output == "sigmoid"
                else "the raw score f min-max normalised within each prompt",
                "verdict": [f"this model behaves as if trained with {line}"]}
    logsigmoid = [r for r in m.nearest_all if r["label"].startswith("logsigmoid")]
    spread = float(np.median(spreads))
    verdict = [f"trained on pairs (reward_model.trained_on=pairs): profile = {PAIRS_PROFILE}", PAIRS_LICENSE]
    if logsigmoid:
        verdict.append(f"beside logsigmoid's prediction: nearest {logsigmoid[0]['label']} (W1 {_fmt(logsigmoid[0]['w1'])}); "
                       f"the median within-prompt spread of f is {spread:.3g}, and on the normalised profile the "
                       f"Bradley-Terry loss is logsigmoid with scale = that spread")
    verdict.append(f"shape only, no utility: the nearest candidate profile is that of {line.removeprefix('U = ')}")
    return {"profile": PAIRS_PROFILE, "verdict": verdict, "nearest_utility": None, "nearest_utility_by_group": None,
            "nearest_shape": m.nearest_all[0]["label"],
            "nearest_shape_by_group": {g: r[0]["label"] for g, r in m.nearest_group.items()},
            "nearest_logsigmoid": logsigmoid[0] if logsigmoid else None, "score_spread_median": spread}


def summary_text(scorer: Scorer, result: dict, m: Measurement, s: Settings, top_k: int, output_dir: Path,
                 figure: Path) -> str:
    """``summary.txt`` (also printed): what was scored, the collapse verdict, the nearest utility."""
    report, between = m.report, m.report["between_group_distance"]
    lines = [f"reward-collapse diagnosis of {scorer.description}",
             f"  scores: {score_kind(scorer, s.output)}; trained on {s.trained_on}",
             f"  data: {result['data']['num_prompts']} prompts of the {s.split} split, grouped by {s.group_by}; "
             f"pair accuracy {_fmt(result['pair_accuracy'])}"]
    if scorer.trained_utility is not None:
        lines.append(f"  trained with utility: {scorer.trained_utility.get('_target_', '?').rsplit('.', 1)[-1]} "
                     f"{ {k: v for k, v in scorer.trained_utility.items() if k != '_target_'} }")
    lines += ["", f"  collapse index (mean W1 of each prompt's profile to the pooled one): "
                  f"{_fmt(report['collapse_index'])}",
              f"  within-group dispersion: {_fmt(report['within_group_dispersion'])}"]
    for g, v in report["groups"].items():
        lines.append(f"    {g:<12} {v['num_prompts']:>4} prompts  dispersion {_fmt(v['dispersion'])}")
    for pair, w in report["pairwise"].items():
        lines.append(f"  between groups {pair.replace('|', ' vs ')}: W1 {_fmt(w)}")
    if m.collapsed is None:
        lines.append("  one group only: no between-group comparison")
    elif s.trained_on == "pairs":  # the same shape is a fact; Theorem 1's cause (one U on rankings) is not
        lines.append(f"  => the groups {'share one' if m.collapsed else 'differ in their'} profile shape (W1 "
                     f"{_fmt(between)} {'<' if m.collapsed else '>='} {s.threshold:g}): a description of a "
                     "pair-trained model, not the collapse theorem's")
    elif m.collapsed:
        lines.append(f"  => reward collapse: the groups share one profile shape (W1 {_fmt(between)} < {s.threshold:g})")
    else:
        lines.append(f"  => no collapse: the groups' profiles differ (W1 {_fmt(between)} >= {s.threshold:g})")
    lines.append("")
    for line in result["verdict"]:
        lines += textwrap.wrap(line, 104, initial_indent="  ", subsequent_indent="    ")
    if s.trained_on == "rankings":
        for g, ranked in m.nearest_group.items():
            lines.append(f"    {g}: {_nearest_line(ranked, m.confidence_group[g], s.level, m.consistent_group[g], s.factor)}")
    lines.append(f"  profiles {'symmetrised before matching' if s.symmetrise else 'matched as observed'}; "
                 f"asymmetry (no collapse solution has it) {_fmt(result['asymmetry'])}")
    lines.append("  candidates, nearest first: " + ", ".join(f"{r['label']} {_fmt(r['w1'])}"
                                                            for r in m.nearest_all[:top_k]))
    lines += ["", f"  outputs in {output_dir}: diagnose.json, per_prompt_scores.parquet, summary.txt, {figure.name}"]
    return "\n".join(lines) + "\n"


def diagnose(cfg: DictConfig) -> dict:
    """Score, measure, compare with the theory, write the outputs; returns ``diagnose.json``'s content."""
    output_dir = Path(str(cfg.paths.output_dir))
    output_dir.mkdir(parents=True, exist_ok=True)
    s = read_settings(cfg)
    write_text_atomic(output_dir / "config_resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    rows, scorer, raw = score(cfg)
    profiles = [model_profile(f, s.trained_on, s.output) for f in raw]
    scores = [read_output(f, s.output) for f in raw]
    groups = group_labels([row.openness for row in rows], s.group_by, cfg.diagnose.get("openness_bins"),
                          column_values(cfg, rows))
    m = measure(profiles, groups, s)

    write_scores_table(output_dir / "per_prompt_scores.parquet", rows, scores, groups)
    figure = write_profiles_figure(output_dir / "figures" / "profiles_by_group.png", m, s.candidates,
                                   f"{scorer.description}"[:110])
    top_k = int(cfg.diagnose.get("top_k", 5))
    result = diagnosis_record(str(cfg.reward_model.source), scorer, scores, m, s, str(figure.relative_to(output_dir)))
    result.update(verdict_record(m, s, [score_spread(f) for f in raw]))
    write_json_atomic(output_dir / "diagnose.json", result, indent=2)
    summary = summary_text(scorer, result, m, s, top_k, output_dir, figure)
    write_text_atomic(output_dir / "summary.txt", summary)
    print(summary)
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="diagnose")
def main(cfg: DictConfig) -> None:
    diagnose(cfg)


if __name__ == "__main__":
    main()
