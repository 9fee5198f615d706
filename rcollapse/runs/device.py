"""The one rule for the device that work outside the Lightning trainer runs on (scoring, judging,
cached features, the evaluation after training)."""

from __future__ import annotations

import torch

GPU_ACCELERATORS = ("gpu", "cuda", "auto")


def choose_device(accelerator: str | None = "auto", requested: str | None = "auto") -> torch.device:
    """The device for work the trainer does not place itself.

    - ``requested`` (e.g. diagnose's ``reward_model.device``) other than ``auto`` (or None) is used
      as given: ``cpu``, ``cuda``, ``cuda:1``.
    - Else ``cuda`` when the trainer's accelerator (``trainer.accelerator``, set by the hardware
      group) is ``gpu``, ``cuda`` or ``auto`` (None counts as ``auto``) and CUDA is available;
      ``cpu`` otherwise (``accelerator: cpu``, another accelerator, or no CUDA).

    So ``hardware=cpu`` keeps everything on the CPU even on a GPU machine, and a CPU-only machine
    always gets the CPU.
    """
    if requested is not None and str(requested) != "auto":
        return torch.device(str(requested))
    wants_gpu = str(accelerator if accelerator is not None else "auto") in GPU_ACCELERATORS
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")
