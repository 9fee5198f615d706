"""The saved reward ensemble: what ``stage=ensemble`` writes and the PPO stage loads.

A directory with ``backbone/`` (``save_pretrained``), ``tokenizer/``, ``heads.pt`` (the k linear
heads) and ``ensemble.json`` (number of heads, their initialisation seeds, pooling, maximum
length, ``normalisation``: each head's ``mean`` and ``std`` over the training responses, and
``head_features``: the pooled features each head reads, null when every head reads all).
:func:`load_ensemble` gives a :class:`RewardEnsemble` whose :meth:`~RewardEnsemble.score`
returns every head's reward and their mean and sample variance σ² for (prompt, response) texts,
on one of two scales (:data:`SCALES`, the config key ``stage.ensemble_scale``):

- ``raw``: the heads as trained, ``s_k``: the uncertainty-aware RLHF paper's scale (its Fig. 6:
  σ² of the chosen reward about 3–14; its β = 0.05 multiplies that σ², its vanilla β = 0.2 a
  raw head's reward). A head's offset, which the pairwise loss never trains, is part of σ² here.
- ``normalised``: ``z_k = (s_k − mean_k) / std_k``, each head z-scored over the training
  responses: σ² = 1 − (mean correlation between heads) on average, at most 2.

Both come from the same forward (``z`` is the affine image of ``s``), with σ² the unbiased
sample variance over heads on either scale (:func:`~rcollapse.models.reward_model.reward_output`).

Version 2 added the normalisation. A version-1 artifact is refused (:class:`OutdatedArtifactError`):
its heads' rewards carry untrained offsets, so their variance measures the offsets more than
disagreement about the input, and the normalisation cannot be recovered without the training
data; ``python run.py stage=ensemble`` writes a new one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import rcollapse.models.ngram_encoder  # noqa: F401  (registers the ngram backbone with AutoModel)
from rcollapse.data.preference_collator import PreferenceCollator
from rcollapse.models.reward_model import RewardModel, RewardOutput, reward_output
from rcollapse.runs.atomic_files import atomic_writer, write_json_atomic

ARTIFACT_VERSION = 2
# the scales an ensemble scores on (stage.ensemble_scale): the heads as trained, or z-scored
SCALES = ("raw", "normalised")


def check_scale(scale: str, key: str = "stage.ensemble_scale") -> str:
    """``scale`` if it is one of :data:`SCALES`, else a ValueError naming ``key``."""
    if scale not in SCALES:
        raise ValueError(f"{key} must be one of {', '.join(SCALES)} (raw: the heads as trained, the paper's "
                         f"scale; normalised: each head z-scored over the training responses), got {scale!r}")
    return scale


class OutdatedArtifactError(ValueError):
    """A reward-ensemble artifact this code cannot score with: written before (or after) the format."""


def save_ensemble(reward_model: RewardModel, tokenizer, path: str | Path, max_length: int,
                  head_seeds: list[int], extra: dict | None = None) -> Path:
    """Write the artifact. The model's head normalisation must be fitted
    (:meth:`~rcollapse.models.reward_model.RewardModel.fit_normalisation`): it is saved with the heads."""
    norm = reward_model.normalisation
    if not bool(norm.fitted):
        raise ValueError("save_ensemble: the reward model's head normalisation is not fitted; call "
                         "reward_model.fit_normalisation(<pooled features of the training responses>) first "
                         "(stage=ensemble does so at the end of phase 2)")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    backbone = reward_model.backbone
    if hasattr(backbone, "merge_and_unload"):  # LoRA adapters: save the merged weights, which reload alone
        import copy

        from rcollapse.models.backbone_options import merge_lora

        backbone = merge_lora(copy.deepcopy(backbone))
    backbone.save_pretrained(str(path / "backbone"))
    tokenizer.save_pretrained(str(path / "tokenizer"))
    with atomic_writer(path / "heads.pt", "wb") as handle:
        torch.save(reward_model.heads.state_dict(), handle)
    meta = {"version": ARTIFACT_VERSION, "num_heads": reward_model.num_heads, "pooling": reward_model.pooling,
            "max_length": int(max_length), "head_seeds": [int(s) for s in head_seeds],
            "normalisation": {"mean": norm.mean.float().cpu().tolist(), "std": norm.std.float().cpu().tolist()},
            # the pooled features each head reads (indices), or null when every head reads all
            "head_features": (None if bool(reward_model.feature_mask.bool().all())
                              else [row.nonzero().flatten().tolist() for row in reward_model.feature_mask.cpu()]),
            **(extra or {})}
    write_json_atomic(path / "ensemble.json", meta, indent=2)  # last, and whole: it marks the artifact complete
    return path


def read_ensemble_meta(path: str | Path) -> dict:
    """``ensemble.json`` of the artifact at ``path``, checked: it exists, and its version is this
    code's (:data:`ARTIFACT_VERSION`), with the heads' normalisation."""
    path = Path(path)
    meta_file = path / "ensemble.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"{path} is not a reward-ensemble artifact (no ensemble.json); "
                                "`python run.py stage=ensemble` writes one in its run dir under ensemble/")
    meta = json.loads(meta_file.read_text())
    version = int(meta.get("version", 1))
    if version > ARTIFACT_VERSION:
        raise OutdatedArtifactError(f"{path} is a version-{version} reward-ensemble artifact, newer than this "
                                    f"code reads (version {ARTIFACT_VERSION}): update rcollapse")
    if version < ARTIFACT_VERSION or "normalisation" not in meta:
        raise OutdatedArtifactError(
            f"{path} is a version-{version} reward-ensemble artifact, without the per-head normalisation "
            f"(version {ARTIFACT_VERSION}): its heads' rewards carry arbitrary offsets that the pairwise loss "
            "never trains, so their variance would measure those offsets rather than disagreement about the "
            "input. Make a new one: re-run `python run.py stage=ensemble` with the same options (it writes "
            "<run dir>/ensemble/); stage=ppo retrains its cached offline ensemble by itself.")
    return meta


class RewardEnsemble:
    """A loaded ensemble: ``score(prompts, responses)`` → :class:`RewardOutput` (scores [N, k],
    every head's reward on ``scale``, :data:`SCALES`; mean [N], variance [N] over heads)."""

    def __init__(self, reward_model: RewardModel, tokenizer, max_length: int, meta: dict,
                 scale: str = "normalised"):
        self.reward_model = reward_model.eval()
        self.tokenizer = tokenizer
        self.collate = PreferenceCollator(tokenizer, max_length)
        self.meta = meta
        self.scale = check_scale(scale)

    @property
    def num_heads(self) -> int:
        return self.reward_model.num_heads

    def to(self, device) -> RewardEnsemble:
        self.reward_model.to(device)
        return self

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str], batch_size: int = 64,
              scale: str | None = None) -> RewardOutput:
        """Every head's reward, their mean and sample variance, on ``scale`` (None: the ensemble's
        own, set at :func:`load_ensemble`): ``raw`` the heads as trained, ``normalised`` z-scored."""
        scale = self.scale if scale is None else check_scale(scale, "scale")
        device = next(self.reward_model.parameters()).device
        model = self.reward_model
        parts = []
        for start in range(0, len(prompts), batch_size):
            batch = self.collate.encode(prompts[start:start + batch_size], responses[start:start + batch_size])
            features = model.features(**{k: v.to(device) for k, v in batch.items()})
            parts.append(model.raw_head_scores(features) if scale == "raw" else model.head_scores(features))
        return reward_output(torch.cat(parts))


def load_ensemble(path: str | Path, device: str | torch.device = "cpu", scale: str = "normalised") -> RewardEnsemble:
    """The saved ensemble at ``path`` on ``device``, scoring on ``scale`` (:data:`SCALES`) unless
    :meth:`RewardEnsemble.score` is given another."""
    from transformers import AutoModel, AutoTokenizer

    path = Path(path)
    meta = read_ensemble_meta(path)
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # e.g. a BERT pooler the reward heads never use, "newly initialised"
    try:
        backbone = AutoModel.from_pretrained(str(path / "backbone"))
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"))
    model = RewardModel(backbone, num_heads=int(meta["num_heads"]), pooling=meta["pooling"])
    model.heads.load_state_dict(torch.load(path / "heads.pt", map_location="cpu", weights_only=True))
    model.normalisation.set(torch.tensor(meta["normalisation"]["mean"]), torch.tensor(meta["normalisation"]["std"]))
    if meta.get("head_features") is not None:
        mask = torch.zeros_like(model.feature_mask)
        for k, indices in enumerate(meta["head_features"]):
            mask[k, indices] = 1
        model.set_feature_mask(mask)
    return RewardEnsemble(model, tokenizer, int(meta["max_length"]), meta, scale=scale).to(device)
