"""The PPO policy: a causal LM with a scalar value head, and the helpers that score token sequences.

``model=tiny_gpt2`` builds a small GPT-2 from a config over the project's tiny tokenizer (no
download); ``model=gpt2`` loads ``openai-community/gpt2`` by hub name or local directory (the
clear offline error otherwise). Sequences are prompt (left-padded) + response (right-padded);
position ids follow the attention mask, so a sequence gets the same log-probs alone and inside a
padded batch.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from rcollapse.models.hub_models import _from_pretrained, load_pretrained_tokenizer


class PolicyWithValueHead(nn.Module):
    """``lm`` (a causal LM) and a linear value head on its last hidden states."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        hidden = lm.config.hidden_size
        self.value_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask):
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask,
                      position_ids=position_ids_from_mask(attention_mask), output_hidden_states=True)
        hidden = out.hidden_states[-1].to(self.value_head.weight.dtype)  # a bfloat16 LM, a float32 head
        return out.logits, self.value_head(hidden).squeeze(-1)


def frozen_reference(lm: nn.Module) -> nn.Module:
    """A frozen copy of the policy's LM (π0): eval mode, no gradient."""
    reference = copy.deepcopy(lm).eval()
    reference.requires_grad_(False)
    return reference


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, … over each row's real tokens (left padding gets 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def build_tiny_tokenizer_for_generation():
    """The project's tiny WordPiece tokenizer, set up for a causal LM: left padding (prompts are
    generated from), ``[SEP]`` as end of sequence, ``[PAD]`` as padding."""
    from rcollapse.models.tiny_encoder import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.padding_side = "left"
    tokenizer.eos_token = "[SEP]"
    # a causal LM takes no segment ids: GPT-2 would add the embedding of token 0 to every position
    # it is given token_type_ids for, so generation and scoring would see different models
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    return tokenizer


def build_tiny_gpt2(tokenizer, n_embd: int = 64, n_layer: int = 2, n_head: int = 4, n_positions: int = 64,
                    vocab_size: int | None = None, dropout: float = 0.0):
    """A randomly initialised GPT-2 sized from the arguments, its vocabulary ``tokenizer``'s or, for
    benchmarks at a real model's shape, ``vocab_size`` (ids past the tokenizer's decode to nothing);
    ``dropout`` on residuals, embeddings and attention (GPT-2's own is 0.1; the PPO module turns it
    off whatever it is)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=max(len(tokenizer), vocab_size or 0), n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                        n_positions=n_positions, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
    return GPT2LMHeadModel(config)


# What the offline error of a hub policy suggests instead (not the encoders of the reward stage).
OFFLINE_POLICY = "`model=tiny_gpt2` (a small GPT-2 policy built from a config, no download)"


def load_pretrained_causal_lm(name_or_path: str, key: str = "model.name_or_path", tokenizer=None,
                              dtype: str = "float32", gradient_checkpointing: bool = False,
                              freeze_layers: int | None = None, lora=None):
    """A pretrained causal LM by hub name or local directory. ``tokenizer`` (what the PPO stage
    passes every policy builder) must fit the model's vocabulary. The switches (``model.dtype``,
    ``model.gradient_checkpointing``, ``model.freeze_layers``, ``model.lora``) are those of
    :mod:`rcollapse.models.backbone_options`; their defaults load the model as it always was."""
    from transformers import AutoModelForCausalLM

    from rcollapse.models.backbone_options import apply_backbone_options, check_backbone_options

    check_backbone_options(dtype, gradient_checkpointing, freeze_layers, lora)
    lm = _from_pretrained(AutoModelForCausalLM, name_or_path, key, OFFLINE_POLICY, dtype, freeze_layers)
    if tokenizer is not None and len(tokenizer) > lm.get_input_embeddings().num_embeddings:
        raise ValueError(f"{key}={name_or_path}: the tokenizer has {len(tokenizer)} tokens, the model's embedding "
                         f"{lm.get_input_embeddings().num_embeddings}: they are not one model's")
    return apply_backbone_options(lm, dtype, gradient_checkpointing, freeze_layers, lora, task_type="CAUSAL_LM")


def load_pretrained_generation_tokenizer(name_or_path: str, key: str = "model.name_or_path"):
    """The model's tokenizer with left padding and a pad token (GPT-2 has none: EOS is used)."""
    tokenizer = load_pretrained_tokenizer(name_or_path, key, OFFLINE_POLICY)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def response_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, prompt_length: int,
                      temperature: float = 1.0) -> torch.Tensor:
    """log π(y_t | x, y_<t) of each response token [B, T_resp]: the logits at position p predict
    the token at p + 1, so the response's tokens (from ``prompt_length``) read logits from one
    position earlier. Uses TRL's memory-light ``selective_log_softmax``."""
    from trl.trainer.utils import selective_log_softmax  # lazy: importing trl takes seconds

    logits = logits[:, prompt_length - 1:-1].float()
    return selective_log_softmax(logits / temperature, input_ids[:, prompt_length:])
