"""Reward models that score every completion of every prompt: what ``python -m rcollapse.diagnose``
reads a reward model's profile from (``reward_model.source``).

- ``run``: a stage=reward run dir, rebuilt from its ``config_resolved.yaml`` (an earlier layout's
  config reads as today's: :func:`rcollapse.runs.run_config.read_run_config`) with its
  ``checkpoints/last.ckpt`` (:func:`run_scorer`);
- ``model``: the ``model`` group, with ``reward_model.checkpoint`` if given (:class:`ProjectModelScorer`);
- ``hub``: any ``AutoModelForSequenceClassification`` reward model (:class:`HubScorer`);
- ``ensemble``: a saved reward ensemble, the mean of its normalised heads (:class:`EnsembleScorer`).

Each gives ``score(rows)``: one vector of the model's raw outputs ``f`` per row (in the row's
completion order: a head's or a logit's value before any sigmoid), with a ``description`` of what
was scored and ``raw_kind`` naming ``f``. :data:`TRAINED_ON_BY_SOURCE` says how each source's
models are trained unless ``reward_model.trained_on`` says otherwise: ``run`` and ``model`` (the
reward stage: rankings, ``R = sigmoid(f)``), ``hub`` and ``ensemble`` (Bradley–Terry on pairs).
``diagnose`` reads the profile from ``f`` accordingly (:func:`rcollapse.analysis.collapse_diagnosis.model_profile`).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rcollapse.runs.checkpoint_files import CheckpointUnreadableError, checkpoint_defect
from rcollapse.runs.device import choose_device
from rcollapse.runs.run_config import read_run_config

SOURCES = ("run", "model", "hub", "ensemble")
# how each source's models are trained, unless reward_model.trained_on says otherwise: the reward
# stage trains on rankings (R = sigmoid(f), all pairs of each ranking); hub reward models and the
# ensemble's heads on preference pairs (Bradley-Terry)
TRAINED_ON_BY_SOURCE = {"run": "rankings", "model": "rankings", "hub": "pairs", "ensemble": "pairs"}


def _batches(rows, size: int):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


@torch.no_grad()
def score_with_reward_model(reward_model, tokenizer, max_length: int, rows, batch_size: int = 32,
                            device="cpu", raw: bool = False) -> list[np.ndarray]:
    """``R = sigmoid(head 0)`` (``raw``: head 0 itself) of a project
    :class:`~rcollapse.models.reward_model.RewardModel` for every completion of every row, exactly
    as the reward stage scores them (its collator)."""
    from rcollapse.data.ranking_collator import RankingCollator

    collate = RankingCollator(tokenizer, max_length=max_length)
    reward_model = reward_model.to(device).eval()
    out = []
    for chunk in _batches(rows, batch_size):
        batch = collate(chunk)
        scores = reward_model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                              batch["token_type_ids"].to(device) if "token_type_ids" in batch else None).scores
        rewards = (scores[:, 0].float() if raw else torch.sigmoid(scores[:, 0].float())).cpu().numpy()
        out.extend(np.split(rewards, np.cumsum(batch["group_sizes"].numpy())[:-1]))
    return out


def _intact_neighbours(checkpoint: Path) -> list[Path]:
    """The other checkpoints beside ``checkpoint`` (``*.ckpt``, the latest name first) that read whole."""
    others = sorted((p for p in checkpoint.parent.glob("*.ckpt") if p != checkpoint), key=lambda p: p.name,
                    reverse=True)
    return [p for p in others if checkpoint_defect(p) is None]


def damaged_checkpoint_error(checkpoint: Path, defect: str) -> CheckpointUnreadableError:
    """What to say of a checkpoint diagnose cannot read: the file, what is wrong, and the cure (an
    intact checkpoint beside it, by name, or retraining)."""
    intact = _intact_neighbours(checkpoint)
    if intact:
        cure = (f"score an intact checkpoint of the same run instead: reward_model.checkpoint={intact[0]}"
                + (f" (intact beside it: {', '.join(p.name for p in intact)})" if len(intact) > 1 else ""))
    else:
        cure = (f"no other intact checkpoint (*.ckpt) is in {checkpoint.parent}: retrain the reward model "
                "(stage=reward), or pass reward_model.checkpoint=<an intact copy of the file>")
    return CheckpointUnreadableError(
        f"reward_model.checkpoint: {checkpoint} cannot be read: {defect} (the file is damaged: a write cut "
        f"short, a full disk or an incomplete copy); {cure}")


def _load_reward_weights(reward_model, checkpoint: Path) -> None:
    """Weights from a Lightning checkpoint of the reward stage (keys ``reward_model.*``) or a plain
    state dict of the reward model; a damaged file is refused before torch reads it."""
    if not checkpoint.is_file():
        raise FileNotFoundError(f"reward_model.checkpoint: no checkpoint file at {checkpoint}")
    defect = checkpoint_defect(checkpoint)
    if defect is not None:
        raise damaged_checkpoint_error(checkpoint, defect)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise damaged_checkpoint_error(checkpoint, f"{type(err).__name__}: {str(err).splitlines()[0]}") from err
    state = state.get("state_dict", state)
    if any(k.startswith("reward_model.") for k in state):
        state = {k.removeprefix("reward_model."): v for k, v in state.items() if k.startswith("reward_model.")}
    reward_model.load_state_dict(state)


class Scorer:
    """What a source gives: ``score(rows)`` → one score vector per row, and how to read them."""

    description: str = ""
    raw_kind: str = ""  # what the raw output f is
    trained_utility: dict | None = None

    def score(self, rows) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


class ProjectModelScorer(Scorer):
    """A project reward model (``source=run``: rebuilt from a stage=reward run's
    ``config_resolved.yaml`` with its ``checkpoints/last.ckpt``; ``source=model``: the ``model``
    group of this config, with ``reward_model.checkpoint`` if given)."""

    raw_kind = "head 0 (the reward stage trains R = sigmoid(head 0))"

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
                                       self.device, raw=True)


def run_scorer(rm: DictConfig, device) -> ProjectModelScorer:
    """The reward model of a stage=reward run dir (``rm``: diagnose's ``reward_model`` node, with
    ``run_dir`` and optionally ``checkpoint``), rebuilt from the run's own config, read as today's
    layout whichever layout wrote it."""
    run_dir = rm.get("run_dir")
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
    checkpoint = rm.get("checkpoint") or run_dir / "checkpoints" / "last.ckpt"
    scorer = ProjectModelScorer(run_cfg.model, Path(str(checkpoint)), f"stage=reward run {run_dir} ({checkpoint})",
                                int(rm.batch_size), device)
    scorer.trained_utility = OmegaConf.to_container(run_cfg.utility)
    return scorer


class HubScorer(Scorer):
    """Any ``AutoModelForSequenceClassification`` reward model, by hub name or local directory:
    logit ``label_index`` of the (prompt, completion) pair. Hub reward models are trained on
    preference pairs (Bradley–Terry)."""

    def __init__(self, name_or_path: str, label_index: int, max_length: int, batch_size: int, device):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from rcollapse.models.hub_models import (
            ModelUnavailableError,
            _offline_message,
            require_local_or_hub,
        )

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
        self.label_index = int(label_index)
        self.max_length, self.batch_size, self.device = max_length, batch_size, device
        self.model.to(device).eval()
        self.description = f"hub reward model {name_or_path}"
        self.raw_kind = f"logit {self.label_index}"

    @torch.no_grad()
    def score(self, rows):
        from rcollapse.data.ranking_collator import RankingCollator

        collate = RankingCollator(self.tokenizer, max_length=self.max_length)
        out = []
        for chunk in _batches(rows, self.batch_size):
            batch = collate(chunk)
            inputs = {k: batch[k].to(self.device) for k in ("input_ids", "attention_mask", "token_type_ids")
                      if k in batch}
            values = self.model(**inputs).logits[:, self.label_index].float().cpu().numpy()
            out.extend(np.split(values, np.cumsum(batch["group_sizes"].numpy())[:-1]))
        return out


class EnsembleScorer(Scorer):
    """A saved reward ensemble (``stage=ensemble``'s ``ensemble/``): the mean of its normalised heads,
    each trained on preference pairs (Bradley–Terry)."""

    raw_kind = "mean over heads of the normalised head rewards (s_k - mean_k) / std_k"

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


def build_scorer(rm: DictConfig, model_cfg: DictConfig, accelerator: str = "auto") -> Scorer:
    """The scorer ``rm`` (diagnose's ``reward_model`` node) names by ``source``; ``model_cfg`` is
    the ``model`` group (``source=model``). It scores on ``reward_model.device``, or with ``auto``
    on the device :func:`rcollapse.runs.device.choose_device` gives the trainer's ``accelerator``."""
    source = str(rm.source)
    if source not in SOURCES:
        raise ValueError(f"reward_model.source must be one of {', '.join(SOURCES)}, got {source!r}")
    device = choose_device(accelerator, str(rm.get("device", "auto")))
    batch_size = int(rm.batch_size)
    if source == "run":
        return run_scorer(rm, device)
    if source == "model":
        checkpoint = rm.get("checkpoint")
        return ProjectModelScorer(model_cfg, Path(str(checkpoint)) if checkpoint else None,
                                  "the model group's reward model" + (f" with {checkpoint}" if checkpoint
                                                                       else " (as built: untrained head)"),
                                  batch_size, device)
    if source == "hub":
        if not rm.get("name_or_path"):
            raise ValueError("reward_model.name_or_path: give a hub name or a local directory of an "
                             "AutoModelForSequenceClassification reward model")
        return HubScorer(str(rm.name_or_path), int(rm.label_index), int(rm.max_length), batch_size, device)
    if not rm.get("artifact"):
        raise ValueError("reward_model.artifact: give a saved ensemble dir (a stage=ensemble run's ensemble/)")
    return EnsembleScorer(str(rm.artifact), batch_size, device)
