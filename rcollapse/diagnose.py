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

The definitions are those of :mod:`rcollapse.analysis.collapse_diagnosis`.
"""

from __future__ import annotations

import math
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rcollapse.config.resolvers import register_resolvers
from rcollapse.runs.run_config import read_run_config

register_resolvers()

SOURCES = ("run", "model", "hub", "ensemble")
SPLITS = ("test", "train")


# ---- scoring ---------------------------------------------------------------------------------


def _device(cfg: DictConfig) -> torch.device:
    choice = str(cfg.reward_model.get("device", "auto"))
    if choice != "auto":
        return torch.device(choice)
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    return torch.device("cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu")


def _batches(rows, size: int):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


@torch.no_grad()
def score_with_reward_model(reward_model, tokenizer, max_length: int, rows, batch_size: int = 32,
                            device="cpu") -> list[np.ndarray]:
    """``R = sigmoid(head 0)`` of a project :class:`~rcollapse.models.reward_model.RewardModel` for
    every completion of every row, exactly as the reward stage scores them (its collator)."""
    from rcollapse.data.ranking_collator import RankingCollator

    collate = RankingCollator(tokenizer, max_length=max_length)
    reward_model = reward_model.to(device).eval()
    out = []
    for chunk in _batches(rows, batch_size):
        batch = collate(chunk)
        scores = reward_model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                              batch["token_type_ids"].to(device) if "token_type_ids" in batch else None).scores
        rewards = torch.sigmoid(scores[:, 0].float()).cpu().numpy()
        out.extend(np.split(rewards, np.cumsum(batch["group_sizes"].numpy())[:-1]))
    return out


def _load_reward_weights(reward_model, checkpoint: Path) -> None:
    """Weights from a Lightning checkpoint of the reward stage (keys ``reward_model.*``) or a plain
    state dict of the reward model."""
    if not checkpoint.is_file():
        raise FileNotFoundError(f"reward_model.checkpoint: no checkpoint file at {checkpoint}")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    if any(k.startswith("reward_model.") for k in state):
        state = {k.removeprefix("reward_model."): v for k, v in state.items() if k.startswith("reward_model.")}
    reward_model.load_state_dict(state)


class Scorer:
    """What a source gives: ``score(rows)`` → one score vector per row, and how to read them."""

    description: str = ""
    score_kind: str = ""
    trained_utility: dict | None = None

    def score(self, rows) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


class ProjectModelScorer(Scorer):
    """A project reward model (``source=run``: rebuilt from a stage=reward run's
    ``config_resolved.yaml`` with its ``checkpoints/last.ckpt``; ``source=model``: the ``model``
    group of this config, with ``reward_model.checkpoint`` if given)."""

    score_kind = "sigmoid(head 0): R(x, y) in [0, 1], as the reward stage trains it"

    def __init__(self, model_cfg: DictConfig, checkpoint: Path | None, description: str, batch_size: int, device):
        self.tokenizer = instantiate(model_cfg.tokenizer)
        backbone = instantiate(model_cfg.backbone, tokenizer=self.tokenizer)
        self.reward_model = instantiate(model_cfg.reward_model, backbone=backbone)
        if checkpoint is not None:
            _load_reward_weights(self.reward_model, checkpoint)
        self.max_length = int(model_cfg.max_length)
        self.description, self.batch_size, self.device = description, batch_size, device

    def score(self, rows):
        return score_with_reward_model(self.reward_model, self.tokenizer, self.max_length, rows, self.batch_size,
                                       self.device)


def run_scorer(cfg: DictConfig, device) -> ProjectModelScorer:
    run_dir = cfg.reward_model.get("run_dir")
    if not run_dir:
        raise ValueError("reward_model.run_dir: give a stage=reward run dir (it holds config_resolved.yaml and "
                         "checkpoints/last.ckpt), e.g. reward_model.run_dir=outputs/runs/<date>/<time>")
    run_dir = Path(str(run_dir)).expanduser()
    config_file = run_dir / "config_resolved.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"reward_model.run_dir: {run_dir} has no config_resolved.yaml; is it a run dir?")
    run_cfg = OmegaConf.create(read_run_config(run_dir))  # an earlier layout's run reads as today's
    stage = OmegaConf.select(run_cfg, "stage.name")
    if stage != "reward":
        raise ValueError(f"reward_model.run_dir: {run_dir} is a stage={stage} run; diagnose scores a stage=reward "
                         "run (for a stage=ensemble run use reward_model.source=ensemble "
                         f"reward_model.artifact={run_dir}/ensemble)")
    checkpoint = cfg.reward_model.get("checkpoint") or run_dir / "checkpoints" / "last.ckpt"
    scorer = ProjectModelScorer(run_cfg.model, Path(str(checkpoint)), f"stage=reward run {run_dir} ({checkpoint})",
                                int(cfg.reward_model.batch_size), device)
    scorer.trained_utility = OmegaConf.to_container(run_cfg.utility)
    return scorer


class HubScorer(Scorer):
    """Any ``AutoModelForSequenceClassification`` reward model, by hub name or local directory:
    logit ``label_index`` of the (prompt, completion) pair, through a sigmoid or raw."""

    def __init__(self, name_or_path: str, output: str, label_index: int, max_length: int, batch_size: int, device):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from rcollapse.models.hub_models import (
            ModelUnavailableError,
            _offline_message,
            require_local_or_hub,
        )

        if output not in ("sigmoid", "raw"):
            raise ValueError(f"reward_model.output must be sigmoid or raw, got {output!r}")
        alternative = ("reward_model.source=run with a stage=reward run dir, or reward_model.source=model "
                       "with `model=tiny`")
        source = require_local_or_hub(name_or_path, "reward_model.name_or_path", alternative)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModelForSequenceClassification.from_pretrained(source)
        except OSError as err:
            raise ModelUnavailableError(_offline_message(name_or_path, "reward_model.name_or_path",
                                                         str(err).splitlines()[0], alternative)) from err
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.output, self.label_index = output, int(label_index)
        self.max_length, self.batch_size, self.device = max_length, batch_size, device
        self.model.to(device).eval()
        self.description = f"hub reward model {name_or_path}"
        self.score_kind = (f"sigmoid(logit {self.label_index})" if output == "sigmoid" else
                           f"raw logit {self.label_index}")

    @torch.no_grad()
    def score(self, rows):
        from rcollapse.data.ranking_collator import RankingCollator

        collate = RankingCollator(self.tokenizer, max_length=self.max_length)
        out = []
        for chunk in _batches(rows, self.batch_size):
            batch = collate(chunk)
            inputs = {k: batch[k].to(self.device) for k in ("input_ids", "attention_mask", "token_type_ids")
                      if k in batch}
            logits = self.model(**inputs).logits[:, self.label_index].float()
            values = (torch.sigmoid(logits) if self.output == "sigmoid" else logits).cpu().numpy()
            out.extend(np.split(values, np.cumsum(batch["group_sizes"].numpy())[:-1]))
        return out


class EnsembleScorer(Scorer):
    """A saved reward ensemble (``stage=ensemble``'s ``ensemble/``): the mean of its normalised heads."""

    score_kind = "mean over heads of the normalised head rewards (s_k - mean_k) / std_k"

    def __init__(self, artifact: str, batch_size: int, device):
        from rcollapse.models.ensemble_artifact import load_ensemble

        self.ensemble = load_ensemble(artifact, device=device)
        self.batch_size = batch_size
        self.description = f"reward ensemble {artifact} ({self.ensemble.num_heads} heads)"

    def score(self, rows):
        prompts = [row.prompt for row in rows for _ in row.completions]
        responses = [c for row in rows for c in row.completions]
        mean = self.ensemble.score(prompts, responses, batch_size=self.batch_size).mean.float().cpu().numpy()
        return np.split(mean, np.cumsum([len(row.completions) for row in rows])[:-1])


def build_scorer(cfg: DictConfig) -> Scorer:
    rm = cfg.reward_model
    source = str(rm.source)
    if source not in SOURCES:
        raise ValueError(f"reward_model.source must be one of {', '.join(SOURCES)}, got {source!r}")
    device = _device(cfg)
    batch_size = int(rm.batch_size)
    if source == "run":
        return run_scorer(cfg, device)
    if source == "model":
        checkpoint = rm.get("checkpoint")
        return ProjectModelScorer(cfg.model, Path(str(checkpoint)) if checkpoint else None,
                                  "the model group's reward model" + (f" with {checkpoint}" if checkpoint
                                                                       else " (as built: untrained head)"),
                                  batch_size, device)
    if source == "hub":
        if not rm.get("name_or_path"):
            raise ValueError("reward_model.name_or_path: give a hub name or a local directory of an "
                             "AutoModelForSequenceClassification reward model")
        return HubScorer(str(rm.name_or_path), str(rm.output), int(rm.label_index), int(rm.max_length),
                         batch_size, device)
    if not rm.get("artifact"):
        raise ValueError("reward_model.artifact: give a saved ensemble dir (a stage=ensemble run's ensemble/)")
    return EnsembleScorer(str(rm.artifact), batch_size, device)


# ---- data ------------------------------------------------------------------------------------


def load_rows(cfg: DictConfig):
    split = str(cfg.diagnose.split)
    if split not in SPLITS:
        raise ValueError(f"diagnose.split must be one of {', '.join(SPLITS)}, got {split!r}")
    source = instantiate(cfg.dataset.datamodule.source)
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


def diagnose(cfg: DictConfig) -> dict:
    """Score, measure, compare with the theory, write the outputs; returns ``diagnose.json``'s content."""
    import pandas as pd

    from rcollapse.analysis.collapse_diagnosis import (
        TheoryCache,
        candidates_from_grid,
        collapse_report,
        consistent_candidates,
        group_labels,
        nearest_confidence,
        nearest_profiles,
        normalised_profile,
        profile_asymmetry,
    )
    from rcollapse.analysis.collapse_metrics import pair_accuracy
    from rcollapse.analysis.diagnosis_plots import plot_profiles_by_group
    from rcollapse.runs.atomic_files import atomic_writer, write_json_atomic, write_text_atomic

    output_dir = Path(str(cfg.paths.output_dir))
    output_dir.mkdir(parents=True, exist_ok=True)
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
    write_text_atomic(output_dir / "config_resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    rows = load_rows(cfg)
    scorer = build_scorer(cfg)
    scores = [np.asarray(s, float) for s in scorer.score(rows)]
    profiles = [normalised_profile(s) for s in scores]
    openness = [row.openness for row in rows]
    groups = group_labels(openness, str(d.group_by), d.get("openness_bins"), column_values(cfg, rows))

    report = collapse_report(profiles, groups)
    cache = TheoryCache()
    nearest_all = nearest_profiles(profiles, candidates, cache, symmetrise)
    confidence_all = nearest_confidence(profiles, candidates, cache, symmetrise, resamples, int(cfg.seed))
    by_group: dict[str, list[np.ndarray]] = {}
    for p, g in zip(profiles, groups, strict=True):
        by_group.setdefault(g, []).append(p)
    by_group = dict(sorted(by_group.items()))
    nearest_group = {g: nearest_profiles(ps, candidates, cache, symmetrise) for g, ps in by_group.items()}
    confidence_group = {g: nearest_confidence(ps, candidates, cache, symmetrise, resamples, int(cfg.seed))
                        for g, ps in by_group.items()}

    consistent_all = consistent_candidates(nearest_all, factor)
    consistent_group = {g: consistent_candidates(r, factor) for g, r in nearest_group.items()}

    def told_apart(ranked: list[dict], confidence: dict[str, float], consistent: list[str]) -> bool:
        return bool(confidence.get(ranked[0]["label"], 0.0) >= level and consistent == [ranked[0]["label"]])
    between = report["between_group_distance"]
    collapsed = None if math.isnan(between) else bool(between < threshold)

    # per (prompt, completion) table
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
    with atomic_writer(output_dir / "per_prompt_scores.parquet", "wb") as handle:
        pd.DataFrame.from_records(records).to_parquet(handle, index=False)

    # the figure: each group's profiles, the overall nearest theory and the group's own
    sizes_of = {g: [len(p) for p in ps] for g, ps in by_group.items()}
    overlays = {}
    for g in by_group:
        n = int(np.bincount(sizes_of[g]).argmax())
        overall_best = next(c for c in candidates if c.label == nearest_all[0]["label"])
        group_best = next(c for c in candidates if c.label == nearest_group[g][0]["label"])
        overlays[g] = {f"nearest overall: {overall_best.label}": cache.profile(overall_best, n)}
        if group_best.label != overall_best.label:
            overlays[g][f"nearest for {g}: {group_best.label}"] = cache.profile(group_best, n)
    title = f"{scorer.description}"[:110]
    figure = plot_profiles_by_group(by_group, output_dir / "figures" / "profiles_by_group.png", overlays, title)

    top_k = int(d.get("top_k", 5))
    result = {
        "reward_model": {"source": str(cfg.reward_model.source), "description": scorer.description,
                         "score_kind": scorer.score_kind, "trained_utility": scorer.trained_utility},
        "data": {"split": str(d.split), "num_prompts": len(rows),
                 "completions_per_prompt": {str(n): int(c) for n, c in
                                            zip(*np.unique([len(s) for s in scores], return_counts=True), strict=True)},
                 "group_by": str(d.group_by)},
        "pair_accuracy": float(pair_accuracy(scores)),
        "collapse_index": report["collapse_index"],
        "within_group_dispersion": report["within_group_dispersion"],
        "between_group_distance": report["between_group_distance"],
        "between_group_pairwise": report["pairwise"],
        "groups": report["groups"],
        "collapse_threshold": threshold,
        "collapsed": collapsed,
        "asymmetry": profile_asymmetry(profiles),
        "asymmetry_by_group": {g: profile_asymmetry(ps) for g, ps in by_group.items()},
        "symmetrised": symmetrise,
        "nearest": {"overall": nearest_all, "by_group": nearest_group},
        "nearest_utility": nearest_all[0]["label"],
        "nearest_utility_by_group": {g: r[0]["label"] for g, r in nearest_group.items()},
        "nearest_confidence": {"overall": confidence_all, "by_group": confidence_group,
                               "resamples": resamples, "level": level},
        "consistent_utilities": consistent_all,
        "consistent_utilities_by_group": consistent_group,
        "consistent_factor": factor,
        "nearest_told_apart": told_apart(nearest_all, confidence_all, consistent_all),
        "nearest_told_apart_by_group": {g: told_apart(nearest_group[g], confidence_group[g], consistent_group[g])
                                        for g in by_group},
        "figure": str(figure.relative_to(output_dir)),
        "definitions": {
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
            "consistent_utilities": f"candidates whose w1 is within consistent_factor ({factor:g}) times the "
                                    "nearest's (or 0.001): not told apart from it by this model's profile",
            "nearest_told_apart": "the nearest candidate's share >= nearest_confidence.level and no other "
                                  "candidate is consistent",
            "collapsed": f"between_group_distance < collapse_threshold ({threshold:g})",
        },
    }
    write_json_atomic(output_dir / "diagnose.json", result, indent=2)

    lines = [f"reward-collapse diagnosis of {scorer.description}",
             f"  scores: {scorer.score_kind}",
             f"  data: {len(rows)} prompts of the {d.split} split, grouped by {d.group_by}; pair accuracy "
             f"{_fmt(result['pair_accuracy'])}"]
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
    if collapsed is None:
        lines.append("  one group only: no between-group comparison")
    elif collapsed:
        lines.append(f"  => reward collapse: the groups share one profile shape (W1 {_fmt(between)} < {threshold:g})")
    else:
        lines.append(f"  => no collapse: the groups' profiles differ (W1 {_fmt(between)} >= {threshold:g})")
    lines += ["", "  this model behaves as if trained with "
                  f"{_nearest_line(nearest_all, confidence_all, level, consistent_all, factor)}"]
    for g, ranked in nearest_group.items():
        lines.append(f"    {g}: {_nearest_line(ranked, confidence_group[g], level, consistent_group[g], factor)}")
    lines.append(f"  profiles {'symmetrised before matching' if symmetrise else 'matched as observed'}; "
                 f"asymmetry (no collapse solution has it) {_fmt(result['asymmetry'])}")
    lines.append("  candidates, nearest first: " + ", ".join(f"{r['label']} {_fmt(r['w1'])}"
                                                            for r in nearest_all[:top_k]))
    lines += ["", f"  outputs in {output_dir}: diagnose.json, per_prompt_scores.parquet, summary.txt, {figure.name}"]
    summary = "\n".join(lines) + "\n"
    write_text_atomic(output_dir / "summary.txt", summary)
    print(summary)
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="diagnose")
def main(cfg: DictConfig) -> None:
    diagnose(cfg)


if __name__ == "__main__":
    main()
