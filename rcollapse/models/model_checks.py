"""The config check of a model group's switches, before anything is loaded (no download): each
value (:mod:`rcollapse.models.backbone_options`) and ``freeze_layers`` against the layer count of a
known architecture (:mod:`rcollapse.models.architectures`)."""

from __future__ import annotations

from rcollapse.models.architectures import ARCHITECTURE_OF_HUB_NAME, architecture_config
from rcollapse.models.backbone_options import (
    SWITCHES,
    check_backbone_options,
    check_freeze_layers,
    plain_value,
)


def check_model_options(model_cfg, prefix: str = "model") -> None:
    """The switches of a composed model group (``cfg.model``), for the config checks: every value,
    and ``freeze_layers`` against the layer count of the architecture that ``name_or_path`` names
    when it is one of :mod:`rcollapse.models.architectures` (no download). A group without the
    switches (tiny, minilm, ...) passes."""
    if model_cfg is None or not any(key in model_cfg for key in SWITCHES):
        return
    values = {key: plain_value(model_cfg.get(key, default)) for key, default in SWITCHES.items()}
    check_backbone_options(**values, prefix=prefix)
    name = model_cfg.get("name_or_path")
    if values["freeze_layers"] is not None and isinstance(name, str):
        if name in ARCHITECTURE_OF_HUB_NAME:
            layers = architecture_config(name).num_hidden_layers
            check_freeze_layers(values["freeze_layers"], layers, f"{prefix}.freeze_layers", f"{name}")
