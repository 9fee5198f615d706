"""The two phases' schedules of ``stage=ensemble`` and what a sharded phase 1 needs (issue 25).

One rule plans both phases' steps (:func:`phase2_steps`): ``round(epochs × steps per epoch)``,
an epoch being the training pairs at the global batch (``dataset.batch_size`` or
``stage.ensemble.head_batch_size`` per process × processes, :func:`epoch_steps`, the training
sampler's count). Phase 1 plans ``stage.ensemble.epochs`` by it (:func:`phase1_plan`; null:
``stage.max_steps``), phase 2 ``stage.ensemble.head_epochs``; either's lr may follow
:func:`cosine_schedule` over its planned steps (the paper's: no warm-up). Under Lightning's FSDP
(``hardware=a40x4_fsdp``) the trained module holds shards: :func:`phase1_state_dict` gathers the
whole model's weights.
"""

from __future__ import annotations

import math

import torch

HEAD_LR_SCHEDULES = ("constant", "cosine")
LR_SCHEDULES = HEAD_LR_SCHEDULES  # phase 1's stage.ensemble.lr_schedule takes the same


def epoch_steps(num_pairs: int, batch_size: int, world_size: int = 1) -> int:
    """Optimiser steps in one epoch of ``num_pairs`` training pairs: each of the ``world_size``
    processes reads ``ceil(num_pairs / world_size)`` of them (the training sampler's shard) in
    batches of ``batch_size`` (per process), so one step consumes ``batch_size · world_size``
    pairs (the global batch)."""
    per_process = math.ceil(num_pairs / max(1, world_size))
    return max(1, math.ceil(per_process / batch_size))


def phase2_steps(num_pairs: int, batch_size: int, epochs: float, world_size: int = 1,
                 key: str = "stage.ensemble.head_epochs") -> tuple[int, int]:
    """(optimiser steps per epoch, planned steps): ``round(epochs × steps per epoch)``, at least
    one; ``epochs`` may be a fraction (the paper's half epoch). Both phases plan by this rule."""
    if not epochs > 0:
        raise ValueError(f"{key} must be > 0, got {epochs}")
    per_epoch = epoch_steps(num_pairs, batch_size, world_size)
    return per_epoch, max(1, round(epochs * per_epoch))


def phase1_plan(epochs: float | None, max_steps: int, num_pairs: int, batch_size: int,
                world_size: int) -> tuple[int, int]:
    """(planned steps, steps to run) of phase 1. ``stage.ensemble.epochs`` null: ``stage.max_steps``
    both. Set: the plan is that many epochs of the training pairs at the global batch
    (:func:`phase2_steps`'s rule; the cosine's horizon) and ``stage.max_steps`` caps the steps run
    (a smoke run keeps the schedule's shape, cut short)."""
    if epochs is None:
        return max_steps, max_steps
    _, planned = phase2_steps(num_pairs, batch_size, epochs, world_size, key="stage.ensemble.epochs")
    return planned, min(planned, max_steps)


def cosine_schedule(total_steps: int):
    """optimizer -> a cosine decay of the learning rate from its value to 0 over ``total_steps``
    (no warm-up), as HF's ``get_cosine_schedule_with_warmup(0, total_steps)``."""
    def build(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    return build


def shards_weights(strategy) -> bool:
    """``trainer.strategy`` (a name or a ``_target_`` node) is Lightning's FSDP."""
    target = strategy.get("_target_", "") if hasattr(strategy, "get") else strategy
    return isinstance(target, str) and ("fsdp" in target.lower())


def sharded(strategy) -> bool:
    """Phase 1 ran under a strategy that shards the weights (Lightning's FSDP): its module holds
    shards, not the model."""
    from lightning.pytorch.strategies import FSDPStrategy

    return isinstance(strategy, FSDPStrategy)


def phase1_state_dict(trainer, module) -> dict[str, torch.Tensor]:
    """The reward model's whole state dict: its own, or under FSDP the one Lightning's strategy
    gathers (a collective: every rank calls it; rank 0 receives it)."""
    if not sharded(trainer.strategy):
        return module.reward_model.state_dict()
    state = trainer.strategy.lightning_module_state_dict()
    return {k.removeprefix("reward_model."): v for k, v in state.items() if k.startswith("reward_model.")}
