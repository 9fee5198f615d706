"""Dropout while training, set explicitly (never left to how a model happened to be loaded).

``from_pretrained`` returns a model in eval mode and Lightning 2.x keeps submodule modes, so a
pretrained backbone would otherwise be fine-tuned with its dropout silently off, and a policy
loaded in train mode would sample and score with dropout on. Two settings:

- enabled: train mode, every dropout at the rate the checkpoint's config gives (what the
  reward-collapse paper's code does through the HF ``Trainer``);
- disabled: every dropout probability set to 0 (what TRL does for its reward and PPO trainers),
  so the model is deterministic while its other train-mode behaviour (e.g. gradient
  checkpointing, which HF models apply only in train mode) is kept.
"""

from __future__ import annotations

from torch import nn


def set_dropout(model: nn.Module, enabled: bool) -> nn.Module:
    """Put ``model`` in train mode with its dropout ``enabled`` (checkpoint rates) or disabled
    (every ``nn.Dropout*`` probability 0; transformers' attention reads the same modules' ``p``)."""
    model.train()
    if not enabled:
        for module in model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.p = 0.0
    return model


def active_dropout(model: nn.Module) -> list[str]:
    """The names of ``model``'s dropout modules that drop anything in its current mode."""
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.modules.dropout._DropoutNd) and module.training and module.p > 0]
