"""A parameter-free lexical encoder: token counts and negated-token counts of the response.

The offline testbed's stand-in for the high-dimensional representation of a large pretrained
backbone, for the frozen-backbone ensemble (``model=ngram``). Its feature of a (prompt, response)
pair is ``[c, n]`` (2·V numbers for a vocabulary of V): ``c[t]`` counts token ``t`` in the response
(the tokenizer's second segment, ``token_type_ids == 1``; the whole attended input when there are
none) and ``n[t]`` counts the times ``t`` follows a negation token ("not", "never"), so "not great"
has a direction of its own. Every word and every negated word is a separate direction: one the
training pairs never show (an adjective held out of them, praise they never negate) is a direction
no head's training constrains, where heads drawn from different seeds keep different weights, so
σ² grows exactly where the data leave the reward undetermined. The tiny transformer encoder
(``model=tiny``), trained in phase 1, pools to a few directions that every linear head shares,
and its heads cannot disagree there (docs/stages.md, "Heads that can disagree").

It is a Hugging Face ``PreTrainedModel`` registered with ``AutoModel`` (``model_type``
``rcollapse_ngram``), so the saved ensemble (``save_pretrained``) loads like any other backbone.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

NEGATIONS = ("not", "never")


class NgramEncoderConfig(PretrainedConfig):
    model_type = "rcollapse_ngram"

    def __init__(self, vocab_size: int = 1, negation_ids: list[int] | None = None,
                 special_ids: list[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.negation_ids = [int(i) for i in (negation_ids or [])]
        self.special_ids = [int(i) for i in (special_ids or [])]
        self.hidden_size = 2 * self.vocab_size


class NgramEncoder(PreTrainedModel):
    """``forward(input_ids, attention_mask, token_type_ids)`` → ``last_hidden_state`` [B, 1, 2V]:
    the response's token counts and negated-token counts (read with ``pooling: cls``)."""

    config_class = NgramEncoderConfig
    base_model_prefix = "ngram"
    main_input_name = "input_ids"

    def __init__(self, config: NgramEncoderConfig):
        super().__init__(config)
        negation = torch.zeros(config.vocab_size, dtype=torch.bool)
        negation[config.negation_ids] = True
        special = torch.zeros(config.vocab_size, dtype=torch.bool)
        special[config.special_ids] = True
        self.register_buffer("is_negation", negation)
        self.register_buffer("is_special", special)
        # a fixed scale of the counts (1): never trained, there so that the model has a floating-point
        # parameter, which Hugging Face's save_pretrained reads its dtype from
        self.count_scale = torch.nn.Parameter(torch.ones(()), requires_grad=False)
        self.post_init()

    def _init_weights(self, module) -> None:  # no weights: nothing to initialise
        return

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs) -> BaseModelOutput:
        counted = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        if token_type_ids is not None and bool((token_type_ids == 1).any()):
            counted = counted & (token_type_ids == 1)
        counted = counted & ~self.is_special[input_ids]
        previous = torch.nn.functional.pad(input_ids[:, :-1], (1, 0), value=input_ids.new_tensor(0).item())
        negated = counted & self.is_negation[previous] & torch.nn.functional.pad(counted[:, :-1], (1, 0))
        size = self.config.vocab_size
        features = torch.zeros(input_ids.size(0), 2 * size, device=input_ids.device)
        features.scatter_add_(1, input_ids, counted.float())
        features.scatter_add_(1, input_ids + size, negated.float())
        return BaseModelOutput(last_hidden_state=(features * self.count_scale).unsqueeze(1))


AutoConfig.register(NgramEncoderConfig.model_type, NgramEncoderConfig)
AutoModel.register(NgramEncoderConfig, NgramEncoder)


def build_ngram_encoder(tokenizer, negations: tuple[str, ...] | list[str] = NEGATIONS) -> NgramEncoder:
    """The encoder for ``tokenizer``'s vocabulary; each word of ``negations`` must be one token."""
    ids = []
    for word in negations:
        token_ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(token_ids) != 1:
            raise ValueError(f"model.backbone.negations: {word!r} is {len(token_ids)} tokens of this tokenizer; "
                             "each negation must be a single token")
        ids.append(token_ids[0])
    return NgramEncoder(NgramEncoderConfig(vocab_size=len(tokenizer), negation_ids=ids,
                                           special_ids=list(tokenizer.all_special_ids)))
