"""The switches of a real model group (``model.dtype``, ``model.gradient_checkpointing``,
``model.freeze_layers``, ``model.lora``), as small functions on a loaded Hugging Face model.

The loaders of :mod:`rcollapse.models.hub_models` (reward-model backbones) and
:mod:`rcollapse.models.policy` (the PPO policy) call them through keyword arguments the model
group passes; :func:`check_backbone_options` checks every value before anything is loaded, and
each error names the config key.

- ``dtype``: ``float32`` (what deberta and gpt2 load in today) or ``bfloat16``; passed to
  ``from_pretrained`` as its dtype (``torch_dtype`` before transformers 4.56).
- ``gradient_checkpointing``: recompute each layer's activations in the backward pass
  (``gradient_checkpointing_enable``, non-reentrant, so frozen embeddings and LoRA work).
- ``freeze_layers``: ``null`` trains everything; an integer ``N >= 0`` freezes the embeddings and
  the lowest ``N`` transformer layers, as the reward-collapse paper's code (OpenAssistant's
  ``freeze_top_n_layers``, which despite its name freezes the embeddings and the layers with an
  index below N). The layer list is found per architecture (:data:`LAYER_LISTS`).
- ``lora``: ``null`` is full fine-tuning; ``{r, alpha, dropout, target_modules}`` wraps the model
  with ``peft`` LoRA adapters: only the adapters train (and whatever is built on the model
  afterwards, e.g. the reward heads). ``peft`` is an optional dependency: ``pip install
  'rcollapse[lora]'``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
LORA_KEYS = ("r", "alpha", "dropout", "target_modules")

# model_type -> (path of the transformer layer list, paths of the embedding modules), both relative
# to the bare model (``model.base_model``: e.g. GPT2Model inside GPT2LMHeadModel). DeBERTa-v2/v3
# keeps its relative position embeddings (and the LayerNorm that only normalises them) in the
# encoder: they are embeddings shared by every layer.
LAYER_LISTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "deberta-v2": ("encoder.layer", ("embeddings", "encoder.rel_embeddings", "encoder.LayerNorm")),
    "deberta": ("encoder.layer", ("embeddings",)),
    "bert": ("encoder.layer", ("embeddings",)),
    "gpt2": ("h", ("wte", "wpe")),
    "gpt_neo": ("h", ("wte", "wpe")),
    "gemma": ("layers", ("embed_tokens",)),
    "gemma2": ("layers", ("embed_tokens",)),
    "llama": ("layers", ("embed_tokens",)),
}
# where to look for the layer list of an architecture not in LAYER_LISTS
GENERIC_LAYER_PATHS = ("encoder.layer", "layers", "h", "transformer.h", "model.layers")


class BackboneOptionError(ValueError):
    """A ``model.*`` switch has a value that cannot be applied; the message names the key."""


class LoraUnavailableError(ImportError):
    """``model.lora`` is set but ``peft`` is not installed."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def resolve_dtype(dtype, key: str = "model.dtype") -> torch.dtype:
    """``float32`` | ``bfloat16`` (or the torch dtype itself) as a ``torch.dtype``."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.strip().lower() in DTYPES:
        return DTYPES[dtype.strip().lower()]
    raise BackboneOptionError(f"{key}: must be one of {', '.join(DTYPES)}, got {dtype!r}")


def dtype_kwargs(dtype) -> dict:
    """The keyword that gives ``from_pretrained`` / ``from_config`` its dtype: ``dtype`` from
    transformers 4.56 on, ``torch_dtype`` before."""
    import transformers
    from packaging.version import Version

    name = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    return {name: resolve_dtype(dtype)}


def plain_value(value):
    """A DictConfig / ListConfig as plain Python containers (others unchanged)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return value
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def check_lora_config(lora_cfg, key: str = "model.lora") -> dict | None:
    """``model.lora`` as a plain dict with every key checked, or None (full fine-tuning)."""
    lora_cfg = plain_value(lora_cfg)
    if lora_cfg is None:
        return None
    if not isinstance(lora_cfg, Mapping):
        raise BackboneOptionError(f"{key}: must be null (full fine-tuning) or a mapping with keys "
                                  f"{', '.join(LORA_KEYS)}, got {lora_cfg!r}")
    unknown = sorted(set(lora_cfg) - set(LORA_KEYS))
    if unknown:
        raise BackboneOptionError(f"{key}: unknown key(s) {', '.join(map(str, unknown))}; the keys are "
                                  f"{', '.join(LORA_KEYS)}")
    missing = [k for k in ("r", "target_modules") if lora_cfg.get(k) is None]
    if missing:
        raise BackboneOptionError(f"{key}.{missing[0]}: required when {key} is set")
    r, alpha, dropout = lora_cfg["r"], lora_cfg.get("alpha", lora_cfg["r"]), lora_cfg.get("dropout", 0.0)
    if not (_is_int(r) and r >= 1):
        raise BackboneOptionError(f"{key}.r: must be an integer >= 1 (the adapters' rank), got {r!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0:
        raise BackboneOptionError(f"{key}.alpha: must be a number > 0, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise BackboneOptionError(f"{key}.dropout: must be a number in [0, 1), got {dropout!r}")
    targets = lora_cfg["target_modules"]
    if isinstance(targets, str):
        targets = targets if targets == "all-linear" else [targets]
    if targets != "all-linear" and (not isinstance(targets, list) or not targets
                                    or not all(isinstance(t, str) and t for t in targets)):
        raise BackboneOptionError(f"{key}.target_modules: must be a non-empty list of module names (e.g. "
                                  f"[q_proj, v_proj]) or 'all-linear', got {targets!r}")
    return {"r": r, "alpha": alpha, "dropout": float(dropout), "target_modules": targets}


def check_freeze_layers(n, num_layers: int | None = None, key: str = "model.freeze_layers",
                        where: str = "the model") -> int | None:
    """``model.freeze_layers``: None, or an integer in ``[0, num_layers]`` (when the count is known)."""
    if n is None:
        return None
    if not _is_int(n) or n < 0:
        raise BackboneOptionError(f"{key}: must be null (train every layer) or an integer >= 0 (freeze the "
                                  f"embeddings and that many of the lowest layers), got {n!r}")
    if num_layers is not None and n > num_layers:
        raise BackboneOptionError(f"{key}: {n} exceeds the {num_layers} transformer layers of {where}")
    return n


def check_backbone_options(dtype="float32", gradient_checkpointing=False, freeze_layers=None, lora=None,
                           prefix: str = "model") -> None:
    """Every switch's value, before anything is loaded (the layer count is checked once known)."""
    resolve_dtype(dtype, f"{prefix}.dtype")
    if not isinstance(gradient_checkpointing, bool):
        raise BackboneOptionError(f"{prefix}.gradient_checkpointing: must be true or false, got "
                                  f"{gradient_checkpointing!r}")
    check_freeze_layers(freeze_layers, key=f"{prefix}.freeze_layers")
    check_lora_config(lora, f"{prefix}.lora")


SWITCHES = {"dtype": "float32", "gradient_checkpointing": False, "freeze_layers": None, "lora": None}


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare transformer: inside a peft wrapper and a task head (``base_model``)."""
    if hasattr(model, "get_base_model"):  # a peft PeftModel
        model = model.get_base_model()
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


def _get(module: nn.Module, path: str) -> nn.Module | None:
    for part in path.split("."):
        module = getattr(module, part, None)
        if not isinstance(module, nn.Module):
            return None
    return module


def layer_list(model: nn.Module, key: str = "model.freeze_layers") -> tuple[nn.ModuleList, str]:
    """The transformer layer list of ``model`` and its path (deberta ``encoder.layer``, gpt2 and
    gpt_neo ``h``, gemma ``layers``), found by the config's ``model_type``."""
    bare = _unwrap(model)
    model_type = getattr(getattr(bare, "config", None), "model_type", None)
    paths = (LAYER_LISTS[model_type][0],) if model_type in LAYER_LISTS else GENERIC_LAYER_PATHS
    for path in paths:
        layers = _get(bare, path)
        if isinstance(layers, nn.ModuleList):
            return layers, path
    raise BackboneOptionError(f"{key}: cannot find the transformer layers of a {type(bare).__name__} "
                              f"(model_type {model_type!r}; looked for {', '.join(paths)}); add it to "
                              f"rcollapse.models.backbone_options.LAYER_LISTS")


def embedding_modules(model: nn.Module) -> list[nn.Module]:
    """The modules that embed the input: the token embedding (``get_input_embeddings``) and, per
    architecture, the position embeddings (gpt2/gpt_neo ``wpe``, deberta-v3's relative ones)."""
    bare = _unwrap(model)
    modules = [bare.get_input_embeddings()] if hasattr(bare, "get_input_embeddings") else []
    model_type = getattr(getattr(bare, "config", None), "model_type", None)
    for path in LAYER_LISTS.get(model_type, ("", ()))[1]:
        module = _get(bare, path)
        if module is not None and all(module is not m for m in modules):
            modules.append(module)
    return [m for m in modules if m is not None]


def freeze_lower_layers(model: nn.Module, n: int | None, key: str = "model.freeze_layers") -> nn.Module:
    """Freeze the embeddings and the lowest ``n`` transformer layers (``None``: nothing).

    Fails naming ``key`` when ``n`` exceeds the model's layer count. Adapters inside a frozen
    layer are frozen too (LoRA then trains the upper layers only). A tied LM head (GPT-2's)
    shares the token embedding, so it is frozen with it."""
    if check_freeze_layers(n, key=key) is None:
        return model
    layers, path = layer_list(model, key)
    check_freeze_layers(n, len(layers), key, f"this {type(_unwrap(model)).__name__} ({path})")
    for module in [*embedding_modules(model), *layers[:n]]:
        module.requires_grad_(False)
    return model


def enable_gradient_checkpointing(model: nn.Module) -> nn.Module:
    """Recompute activations in the backward pass (non-reentrant: works when the embeddings are
    frozen or only LoRA adapters train). Only in train mode: a policy still samples with its KV
    cache."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(target, "supports_gradient_checkpointing", False):
        raise BackboneOptionError(f"model.gradient_checkpointing: {type(target).__name__} does not support it")
    # transformers >= 5.x calls it activation checkpointing (the old name warns)
    if hasattr(target, "activation_checkpointing_enable"):
        target.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        target.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def gradient_checkpointing_enabled(model: nn.Module) -> bool:
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(target, "is_activation_checkpointing"):
        return bool(target.is_activation_checkpointing)
    return bool(getattr(target, "is_gradient_checkpointing", False))


def apply_lora(model: nn.Module, lora_cfg, task_type: str | None = None, key: str = "model.lora") -> nn.Module:
    """Wrap ``model`` with ``peft`` LoRA adapters (``lora_cfg`` None: ``model`` unchanged).

    ``lora_cfg``: ``r`` (rank), ``alpha`` (scale alpha/r), ``dropout``, ``target_modules`` (module
    names, e.g. ``[q_proj, v_proj]``, or ``all-linear``). The base weights are frozen, the
    adapters' B matrices start at 0 (the wrapped model computes what the base model did). A model
    with adapters saves (``save_pretrained``) only the adapters: :func:`merge_lora` first to save
    a whole model."""
    lora_cfg = check_lora_config(lora_cfg, key)
    if lora_cfg is None:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise LoraUnavailableError(f"{key} is set (LoRA adapters) but the peft package is not installed: "
                                   f"`pip install 'rcollapse[lora]'` (or set {key}=null for full "
                                   f"fine-tuning)") from err
    config = LoraConfig(r=lora_cfg["r"], lora_alpha=lora_cfg["alpha"], lora_dropout=lora_cfg["dropout"],
                        target_modules=lora_cfg["target_modules"], bias="none", task_type=task_type)
    try:
        return get_peft_model(model, config)
    except ValueError as err:  # e.g. a target module name the model does not have
        raise BackboneOptionError(f"{key}.target_modules={lora_cfg['target_modules']}: {err}") from err


def merge_lora(model: nn.Module) -> nn.Module:
    """The plain model with its LoRA adapters merged into the weights (a model without adapters
    unchanged): what to ``save_pretrained`` so that ``AutoModel.from_pretrained`` reloads it."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def positions_follow_attention_mask(model: nn.Module) -> nn.Module:
    """Give ``model`` (a decoder with absolute or rotary positions) position ids from the attention
    mask whenever it is called without them: 0, 1, 2, ... over each row's real tokens, so a
    sequence gets the same hidden states alone and in a padded batch, left or right padded (the
    reward model calls its backbone without position ids). A forward pre-hook: nothing is saved."""

    def hook(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is None or kwargs.get("position_ids") is not None or kwargs.get("past_key_values") is not None:
            return None
        kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp_min(0)
        return args, kwargs

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return model


def float32_hidden_states(model: nn.Module) -> nn.Module:
    """Return the backbone's ``last_hidden_state`` in float32 (a forward hook), so that pooled
    features meet the reward heads' float32 weights when the backbone computes in bfloat16 without
    autocast (CPU, ``trainer.precision=32-true``)."""

    def hook(module, args, output):
        hidden = getattr(output, "last_hidden_state", None)
        if hidden is not None and hidden.dtype != torch.float32:
            output.last_hidden_state = hidden.float()
        return output

    model.register_forward_hook(hook)
    return model


def apply_backbone_options(model: nn.Module, dtype="float32", gradient_checkpointing: bool = False,
                           freeze_layers: int | None = None, lora=None, task_type: str | None = None,
                           prefix: str = "model") -> nn.Module:
    """Apply the switches to a loaded model in the order that composes: gradient checkpointing
    (on the bare model), LoRA (freezes the base), then ``freeze_layers`` (embeddings, lowest N
    layers, their adapters included). ``dtype`` is the loader's (checked here)."""
    check_backbone_options(dtype, gradient_checkpointing, freeze_layers, lora, prefix)
    if freeze_layers is not None:  # the count, before wrapping
        layers, path = layer_list(model, f"{prefix}.freeze_layers")
        check_freeze_layers(freeze_layers, len(layers), f"{prefix}.freeze_layers",
                            f"this {type(_unwrap(model)).__name__} ({path})")
    if gradient_checkpointing:
        enable_gradient_checkpointing(model)
    model = apply_lora(model, lora, task_type, f"{prefix}.lora")
    return freeze_lower_layers(model, freeze_layers, f"{prefix}.freeze_layers")


# The transformer layer class of each real backbone's architecture (module, class name): the units
# in which Lightning's FSDPStrategy shards a model (hardware=a40x4_fsdp), one layer at a time.
TRANSFORMER_LAYERS: dict[str, tuple[str, str]] = {
    "gemma": ("transformers.models.gemma.modeling_gemma", "GemmaDecoderLayer"),
    "gpt_neo": ("transformers.models.gpt_neo.modeling_gpt_neo", "GPTNeoBlock"),
    "gpt2": ("transformers.models.gpt2.modeling_gpt2", "GPT2Block"),
    "llama": ("transformers.models.llama.modeling_llama", "LlamaDecoderLayer"),
    "deberta-v2": ("transformers.models.deberta_v2.modeling_deberta_v2", "DebertaV2Layer"),
}


def transformer_layer_classes(model_types: list[str] | None = None) -> set[type]:
    """The layer classes of ``model_types`` (default: every real backbone's, :data:`TRANSFORMER_LAYERS`),
    for ``FSDPStrategy(auto_wrap_policy=...)``: each instance becomes one FSDP unit, the rest of the
    model (embeddings, final norm, heads) the root unit."""
    import importlib

    unknown = sorted(set(model_types or ()) - set(TRANSFORMER_LAYERS))
    if unknown:
        raise BackboneOptionError(f"transformer_layer_classes (the FSDP wrap policy of the hardware file): unknown "
                                  f"model types {unknown}; known: {', '.join(TRANSFORMER_LAYERS)}")
    return {getattr(importlib.import_module(module), name)
            for key, (module, name) in TRANSFORMER_LAYERS.items() if model_types is None or key in model_types}


def trainable_parameter_count(model: nn.Module) -> int:
    """Parameters (each shared tensor once) that require a gradient."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
