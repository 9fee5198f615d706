"""A reward model: one text encoder (the backbone) and ``k`` scalar linear heads.

``k = 1`` is the ordinary reward model of the ranking stage; the ensemble stage uses
``k > 1`` heads on one backbone, so that one forward gives every head's reward.

Every head's output passes through a :class:`HeadNormalisation` (``z_k = (s_k − mean_k) / std_k``):
the identity until it is fitted. The pairwise (Bradley–Terry) loss sees only reward differences,
so a head's offset, and the scale it happens to reach, carry no information; the ensemble stage
fits the normalisation after training (each head's mean and std over the training responses),
so that the heads' mean and variance compare rewards on one scale. It lives in the model (as
buffers), so every path that scores with the model, and the saved ensemble, applies it.

A head may see only some of the pooled features (:attr:`RewardModel.feature_mask` [k, H], all ones
by default): linear heads trained on the same frozen features with a convex loss all reach the
same optimum, so an ensemble whose heads should disagree where the data leave the reward
undetermined gives each head its own random subset (the ensemble stage's ``head_feature_fraction``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

POOLINGS = ("cls", "mean", "last")


class RewardOutput(NamedTuple):
    """Per-sequence head outputs ``scores`` [S, k], and their mean and sample variance over heads."""

    scores: torch.Tensor
    mean: torch.Tensor
    variance: torch.Tensor


def reward_output(scores: torch.Tensor) -> RewardOutput:
    """:class:`RewardOutput` of the heads' scores [S, k]: their mean and their sample variance over
    heads (unbiased, k − 1 in the denominator; 0 for one head), the σ² of the uncertainty-aware
    RLHF paper's Section 4 (Fig. 6) and of its PPO penalty (Section 5)."""
    variance = scores.var(dim=1, unbiased=True) if scores.size(1) > 1 else torch.zeros_like(scores[:, 0])
    return RewardOutput(scores=scores, mean=scores.mean(dim=1), variance=variance)


def pool_hidden_states(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Reduce ``hidden`` [S, L, H] to [S, H]: first token, masked mean, or last real token (the
    last position the mask attends, whichever side the tokenizer pads)."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    if pooling == "last":
        positions = torch.arange(attention_mask.size(1), device=attention_mask.device)
        last = (attention_mask.long() * positions).argmax(1)
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    raise ValueError(f"model.reward_model.pooling must be one of {POOLINGS}, got {pooling!r}")


class HeadNormalisation(nn.Module):
    """Per-head affine map ``z = (s − mean) / std`` of the heads' scores [S, k]; the identity
    (mean 0, std 1, ``fitted`` false) until :meth:`fit` or :meth:`set` is called."""

    def __init__(self, num_heads: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_heads))
        self.register_buffer("std", torch.ones(num_heads))
        self.register_buffer("fitted", torch.tensor(False))

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return (scores - self.mean.to(scores.dtype)) / self.std.to(scores.dtype)

    def inverse(self, normalised: torch.Tensor) -> torch.Tensor:
        """The heads' raw scores ``s = z · std + mean`` back from normalised ones ``z`` [S, k]."""
        return normalised * self.std.to(normalised.dtype) + self.mean.to(normalised.dtype)

    @torch.no_grad()
    def set(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(f"head normalisation: expected mean and std of shape {tuple(self.mean.shape)}, "
                             f"got {tuple(mean.shape)} and {tuple(std.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise ValueError(f"head normalisation: every std must be finite and > 0 (a head that gives every "
                             f"response the same reward cannot be normalised), got mean {mean.tolist()}, "
                             f"std {std.tolist()}")
        self.mean.copy_(mean)
        self.std.copy_(std)
        self.fitted.fill_(True)

    def fit(self, raw_scores: torch.Tensor) -> None:
        """Each head's mean and (population) std over ``raw_scores`` [N, k], un-normalised outputs."""
        raw_scores = raw_scores.detach().double()
        self.set(raw_scores.mean(0), raw_scores.std(0, correction=0))

    def reset(self) -> None:
        """Back to the identity (not fitted)."""
        with torch.no_grad():
            self.mean.zero_()
            self.std.fill_(1.0)
            self.fitted.fill_(False)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # checkpoints written before the normalisation existed hold none: they load as the identity
        absent = [name for name in ("mean", "std", "fitted") if prefix + name not in state_dict]
        if len(absent) == 3:
            self.reset()
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return f"num_heads={self.mean.numel()}, fitted={bool(self.fitted)}"


class RewardModel(nn.Module):
    """``f_θ(x, y)``: backbone → pooled features → ``num_heads`` linear heads."""

    def __init__(self, backbone: nn.Module, num_heads: int = 1, pooling: str = "cls", head_init_std: float | None = None):
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"model.reward_model.num_heads must be >= 1, got {num_heads}")
        if pooling not in POOLINGS:
            raise ValueError(f"model.reward_model.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        hidden_size = backbone.config.hidden_size
        self.heads = nn.Linear(hidden_size, num_heads)
        if head_init_std is not None:
            nn.init.normal_(self.heads.weight, std=head_init_std)
            nn.init.zeros_(self.heads.bias)
        self.normalisation = HeadNormalisation(num_heads)
        # head k reads the pooled features where feature_mask[k] is 1 (all, unless set_feature_mask)
        self.register_buffer("feature_mask", torch.ones(num_heads, hidden_size))

    @torch.no_grad()
    def set_feature_mask(self, mask: torch.Tensor) -> None:
        """Restrict head k to the features where ``mask[k]`` is 1 ([k, H] of 0/1; each row non-empty)."""
        mask = torch.as_tensor(mask, dtype=self.feature_mask.dtype)
        if mask.shape != self.feature_mask.shape:
            raise ValueError(f"feature mask: expected shape {tuple(self.feature_mask.shape)}, got {tuple(mask.shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()) or not bool((mask.sum(1) > 0).all()):
            raise ValueError("feature mask: entries must be 0 or 1 and every head must read at least one feature")
        self.feature_mask.copy_(mask)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # checkpoints written before the feature mask existed hold none: every head reads every feature
        state_dict.setdefault(prefix + "feature_mask", torch.ones_like(self.feature_mask))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    @property
    def num_heads(self) -> int:
        return self.heads.out_features

    def features(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """Pooled backbone features [S, H]."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.backbone(**kwargs).last_hidden_state
        return pool_hidden_states(hidden, attention_mask, self.pooling)

    def raw_head_scores(self, features: torch.Tensor) -> torch.Tensor:
        """[S, k] the heads' outputs on pooled features, before the normalisation."""
        weight = self.heads.weight * self.feature_mask.to(self.heads.weight.dtype)
        # a bfloat16 backbone's features meet the float32 heads in the heads' dtype
        return nn.functional.linear(features.to(weight.dtype), weight, self.heads.bias).float()

    def head_scores(self, features: torch.Tensor) -> torch.Tensor:
        """[S, k] the heads' rewards on pooled features: normalised (once fitted)."""
        return self.normalisation(self.raw_head_scores(features))

    @torch.no_grad()
    def fit_normalisation(self, features: torch.Tensor, batch_size: int = 4096) -> None:
        """Fit :attr:`normalisation` to the heads' raw outputs on pooled ``features`` [N, H]
        (e.g. every chosen and rejected response of the training pairs)."""
        device = self.heads.weight.device
        self.normalisation.fit(torch.cat([self.raw_head_scores(features[i:i + batch_size].to(device))
                                          for i in range(0, features.size(0), batch_size)]))

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> RewardOutput:
        return reward_output(self.head_scores(self.features(input_ids, attention_mask, token_type_ids)))

    # ---- packed (padding-free) forward: rcollapse/data/packed_batches.py ----------------------------
    def packed_features(self, packed: dict) -> torch.Tensor:
        """Pooled features [S, H] of the sequences packed in ``packed`` (``batch["packed"]``), in their
        original order: the backbone runs on the packed rows with a block-diagonal mask and
        per-sequence position ids, then each sequence is pooled from its own span."""
        hidden = packed_hidden_states(self.backbone, packed)  # [R, P, H]
        rows, starts, lengths = packed["sequence_rows"], packed["sequence_starts"], packed["sequence_lengths"]
        if self.pooling == "cls":
            return hidden[rows, starts]
        if self.pooling == "last":
            return hidden[rows, starts + lengths - 1]
        index = packed["sequence_index"].reshape(-1)
        real = index >= 0
        flat = hidden.reshape(-1, hidden.size(-1))[real]
        sums = flat.new_zeros(lengths.numel(), hidden.size(-1)).index_add(0, index[real], flat)
        return sums / lengths.clamp_min(1).unsqueeze(1).to(sums.dtype)

    def packed_forward(self, packed: dict) -> RewardOutput:
        """:meth:`forward` for a packed batch: the same outputs, per sequence, in the original order."""
        return reward_output(self.head_scores(self.packed_features(packed)))


PACKING_KEY = "dataset.packing"
PACKED_ATTENTION = ("eager", "sdpa")  # the implementations that take a dense [R, 1, P, P] mask


def _base_model(backbone: nn.Module) -> nn.Module:
    """The Hugging Face model under a LoRA (peft) wrapper, or the backbone itself."""
    get_base = getattr(backbone, "get_base_model", None)
    return get_base() if callable(get_base) else backbone


def packing_unsupported(backbone: nn.Module) -> str | None:
    """Why ``backbone`` cannot run packed batches, or None when it can.

    Supported: BERT-family encoders (``model_type`` bert: the tiny encoder, MiniLM), which take a
    ready 4-D additive mask and ``position_ids``; DeBERTa-v2/v3 without its convolution layer
    (relative positions are i − j, unchanged inside a block; the encoder takes a 3-D mask, the
    embeddings a 2-D one). Not: decoders (GPT-2, GPT-Neo, Gemma), the n-gram backbone, RoBERTa-style
    position ids (offset by the padding id), DeBERTa-v2 with ``conv_kernel_size`` (it mixes
    neighbouring tokens across sequences), flash/flex attention (no dense mask)."""
    base = _base_model(backbone)
    config = getattr(base, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type == "bert":
        if getattr(config, "is_decoder", False):
            return "a BERT configured as a decoder"
        implementation = getattr(config, "_attn_implementation", "eager")
        if implementation not in PACKED_ATTENTION:
            return f"attention implementation {implementation!r} takes no block-diagonal mask (use eager or sdpa)"
        return None
    if model_type == "deberta-v2":
        if getattr(base.encoder, "conv", None) is not None:
            return "DeBERTa-v2 with a convolution layer (conv_kernel_size > 0) mixes tokens across sequences"
        if getattr(base, "z_steps", 0) > 1:
            return "DeBERTa-v2 with z_steps > 1"
        return None
    return f"{type(base).__name__} (model_type {model_type!r}) has no packed forward"


def check_packing_supported(backbone: nn.Module) -> None:
    """Raise naming ``dataset.packing`` when ``backbone`` cannot run packed batches."""
    reason = packing_unsupported(backbone)
    if reason is not None:
        raise ValueError(
            f"{PACKING_KEY}=true needs a backbone that takes a block-diagonal attention mask and per-sequence "
            f"position ids (BERT-family encoders: model=tiny, model=minilm; DeBERTa-v2/v3: model=deberta); "
            f"this one cannot: {reason}. Set {PACKING_KEY}=false."
        )


def packed_hidden_states(backbone: nn.Module, packed: dict) -> torch.Tensor:
    """The backbone's last hidden states [R, P, H] on packed rows, each sequence attending only to itself."""
    check_packing_supported(backbone)
    base = _base_model(backbone)
    sequence_index = packed["sequence_index"]
    same = sequence_index.unsqueeze(2) == sequence_index.unsqueeze(1)  # [R, P, P]; padding is its own block
    token_type_ids = packed.get("token_type_ids")
    if base.config.model_type == "deberta-v2":
        embeddings = base.embeddings(input_ids=packed["input_ids"], token_type_ids=token_type_ids,
                                     position_ids=packed["position_ids"], mask=packed["attention_mask"])
        return base.encoder(embeddings, same.long(), output_hidden_states=False, return_dict=True).last_hidden_state
    dtype = base.get_input_embeddings().weight.dtype
    additive = torch.zeros(same.shape, dtype=dtype, device=same.device).masked_fill(~same, torch.finfo(dtype).min)
    kwargs = {"input_ids": packed["input_ids"], "attention_mask": additive.unsqueeze(1),
              "position_ids": packed["position_ids"]}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    return backbone(**kwargs).last_hidden_state
