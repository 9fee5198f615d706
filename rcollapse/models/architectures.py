"""The real backbones' architectures without the hub: their shapes, built at full size from a config.

``rcollapse/models/architectures/NAME.json`` holds the architecture values (sizes, layers, heads,
key/value heads, vocabulary, positions, attention types) of each model's published
``config.json``, and no weights. From them:

- :func:`architecture_config` gives the ``transformers`` config;
- :func:`build_from_architecture` builds the randomly initialised model at the real shape, on the
  ``meta`` device (structure and parameter count only: no memory, no time) or on ``cpu``/``cuda``
  (e.g. a GPU benchmark at the real size);
- :func:`parameter_count` counts a model's parameters (shared tensors once) and
  :func:`architecture_parameter_count` a named architecture's, from a meta build;
- :func:`tiny_architecture_config` is the same architecture family shrunk to a few thousand
  parameters (the same attention kinds, grouped or relative attention included), for tests.

``ARCHITECTURE_OF_HUB_NAME`` maps the hub names of the model groups to these names.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch
from torch import nn

ARCHITECTURE_DIR = Path(__file__).with_name("architectures")
DEVICES = ("meta", "cpu", "cuda")


def architecture_names() -> list[str]:
    """Every architecture shipped (the JSON files' stems): deberta-v3-base, fsfairx-llama3-rm (the PPO
    judge's Llama-3-8B sequence classifier), gemma-2b-it, gpt-neo-1.3B, gpt2."""
    return sorted(p.stem for p in ARCHITECTURE_DIR.glob("*.json"))


@cache
def _record(name: str) -> dict:
    path = ARCHITECTURE_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown architecture {name!r}; the architectures are {', '.join(architecture_names())}")
    return json.loads(path.read_text(encoding="utf-8"))


def architecture_record(name: str) -> dict:
    """The JSON record: ``hub_name``, ``auto_class``, ``reported_parameters``, ``config`` (a copy)."""
    return json.loads(json.dumps(_record(name)))


ARCHITECTURE_OF_HUB_NAME = {
    "microsoft/deberta-v3-base": "deberta-v3-base",
    "EleutherAI/gpt-neo-1.3B": "gpt-neo-1.3B",
    "google/gemma-2b-it": "gemma-2b-it",
    "openai-community/gpt2": "gpt2",
    "gpt2": "gpt2",
    "sfairXC/FsfairX-LLaMA3-RM-v0.1": "fsfairx-llama3-rm",
}


def architecture_for(name_or_path: str) -> str:
    """The architecture name of a hub name (``model.name_or_path``) or an architecture name."""
    if name_or_path in ARCHITECTURE_OF_HUB_NAME:
        return ARCHITECTURE_OF_HUB_NAME[name_or_path]
    if (ARCHITECTURE_DIR / f"{name_or_path}.json").is_file():
        return name_or_path
    raise ValueError(f"no architecture for {name_or_path!r}; known hub names: "
                     f"{', '.join(sorted(ARCHITECTURE_OF_HUB_NAME))}; architectures: {', '.join(architecture_names())}")


def architecture_config(name: str, **overrides):
    """The ``transformers.PretrainedConfig`` of architecture ``name`` (or a hub name of one), its
    published values with ``overrides`` on top (e.g. ``attn_implementation``-free size changes)."""
    from transformers import AutoConfig

    values = dict(architecture_record(architecture_for(name))["config"])
    values.update(overrides)
    model_type = values.pop("model_type")
    return AutoConfig.for_model(model_type, **values)


def _auto_class(name: str, causal_lm: bool | None):
    import transformers

    if causal_lm is None:
        return getattr(transformers, architecture_record(architecture_for(name))["auto_class"])
    return transformers.AutoModelForCausalLM if causal_lm else transformers.AutoModel


def build_from_config(config, device: str | torch.device = "meta", dtype: torch.dtype | str = torch.float32,
                      causal_lm: bool = False, auto_class: str | None = None) -> nn.Module:
    """A randomly initialised model of ``config`` built directly on ``device`` in ``dtype``
    (``meta``: parameters without storage, nothing initialised or allocated); ``auto_class`` (a
    ``transformers`` Auto class name, e.g. AutoModelForSequenceClassification) overrides ``causal_lm``."""
    import transformers
    from transformers import AutoModel, AutoModelForCausalLM

    from rcollapse.models.backbone_options import dtype_kwargs, resolve_dtype

    device = torch.device(device)
    if device.type not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device}")
    auto = getattr(transformers, auto_class) if auto_class else AutoModelForCausalLM if causal_lm else AutoModel
    with torch.device(device):
        model = auto.from_config(config, **dtype_kwargs(resolve_dtype(dtype, "dtype")))
    return model


def build_from_architecture(name: str, device: str | torch.device = "meta", dtype: torch.dtype | str = torch.float32,
                            causal_lm: bool | None = None, **overrides) -> nn.Module:
    """The randomly initialised model of architecture ``name`` at its real shape on ``device``
    (``meta`` | ``cpu`` | ``cuda``) in ``dtype`` (``float32`` | ``bfloat16``). ``causal_lm``: with
    the LM head (AutoModelForCausalLM) or the bare model (AutoModel); None: the architecture's own
    use (the reward backbones bare, gpt2 the policy with its head)."""
    config = architecture_config(name, **overrides)
    auto = _auto_class(name, causal_lm)
    if causal_lm and config.model_type == "deberta-v2":
        raise ValueError(f"{name} is an encoder: it has no causal-LM form (causal_lm=False)")
    return build_from_config(config, device, dtype, causal_lm=auto.__name__ == "AutoModelForCausalLM",
                             auto_class=auto.__name__)


def parameter_count(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (a tied tensor counted once; meta tensors count too)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def architecture_parameter_count(name: str, causal_lm: bool | None = None) -> int:
    """Parameters of architecture ``name`` at its real shape (built on the meta device)."""
    return parameter_count(build_from_architecture(name, "meta", causal_lm=causal_lm))


# The same families shrunk: what the family's switches and pooling are tested on.
_TINY = {
    "deberta-v2": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 4,
                   "vocab_size": 1000, "max_position_embeddings": 128, "position_buckets": 16},
    "gpt_neo": {"hidden_size": 32, "num_heads": 4, "num_layers": 4, "vocab_size": 1000,
                "max_position_embeddings": 128, "attention_types": [[["global", "local"], 2]], "window_size": 4,
                "attention_layers": ["global", "local"] * 2},
    "gemma": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 1,
              "head_dim": 8, "num_hidden_layers": 4, "vocab_size": 1000, "max_position_embeddings": 128},
    "gpt2": {"n_embd": 32, "n_head": 4, "n_layer": 4, "vocab_size": 1000, "n_positions": 128, "n_ctx": 128},
    "llama": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "num_hidden_layers": 4, "vocab_size": 1000, "max_position_embeddings": 128, "pad_token_id": None},
}


def tiny_architecture_config(name: str, vocab_size: int | None = None, dropout: float = 0.0, **overrides):
    """Architecture ``name``'s family at a toy size (4 layers, width 32): the published config's
    kind of attention (deberta-v3's relative attention, gpt-neo's global/local layers, gemma's
    multi-query attention) kept, ``vocab_size`` (default 1000) and dropout ``dropout``."""
    record = architecture_record(architecture_for(name))
    model_type = record["config"]["model_type"]
    values = dict(_TINY[model_type])
    if vocab_size is not None:
        values["vocab_size"] = vocab_size
    dropout_keys = [k for k in record["config"] if "drop" in k and "prob" in k or k.endswith("_pdrop")
                    or k in ("attention_dropout", "embed_dropout", "resid_dropout")]
    values.update(dict.fromkeys(dropout_keys, dropout))
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):  # special ids inside the small vocabulary
        if isinstance(record["config"].get(key), int) and record["config"][key] >= values["vocab_size"]:
            values[key] = values["vocab_size"] - 1
    values.update(overrides)
    return architecture_config(name, **values)
