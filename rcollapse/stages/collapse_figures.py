"""Saves the collapse figures and reward vectors beside the run's numbers, and logs them to W&B.

Paper Fig. 3 (final reward by rank, open vs closed, per evaluation split) and Fig. 4 (the
profiles over training, one curve per validation). The validations' reward vectors travel in the
checkpoint and ``reward_history.json`` is rewritten after each validation, so a resumed run's
history and figure cover the whole run: the checkpoint at step N is taken before step N's
validation, which a resume does not repeat; that one comes from the file. A resume at the last
step runs that validation after the fit (:mod:`rcollapse.runs.checkpointed_metrics`): the figure
is drawn again with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.trainer.states import TrainerFn

from rcollapse.analysis.collapse_metrics import pooled_by_type
from rcollapse.analysis.collapse_plots import plot_rewards_by_rank, plot_rewards_over_training
from rcollapse.runs.atomic_files import write_json_atomic


class CollapseFiguresCallback(L.Callback):
    def __init__(self, output_dir: str, title: str = ""):
        self.output_dir = Path(output_dir)
        self.title = title
        self.history: list[tuple[int, list[np.ndarray], np.ndarray]] = []

    # The module fills ``eval_rewards`` in its *_step hooks; callbacks' epoch-end hooks run
    # before the module's, so the vectors of the finished epoch are all there.
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        collected = pl_module.eval_rewards.get("val")
        if collected:
            vectors = [v for v, _ in collected]
            openness = np.array([o for _, o in collected])
            # one entry per step: a validation repeated after a resume replaces the earlier one
            self.history = [entry for entry in self.history if entry[0] != trainer.global_step]
            self.history.append((trainer.global_step, vectors, openness))
            write_json_atomic(self.history_path, self._history_records())
            self._log_histograms(trainer, vectors, openness)

    @property
    def history_path(self) -> Path:
        return self.output_dir / "reward_history.json"

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        """On a resume, add the validations the interrupted part wrote after its last checkpoint
        (up to the resumed step; later ones are run again)."""
        if not trainer.is_global_zero or trainer.ckpt_path is None or not self.history_path.exists():
            return
        try:
            written = json.loads(self.history_path.read_text())
        except (OSError, ValueError):
            return
        have = {step for step, _, _ in self.history}
        missing = [e for e in written if e["step"] not in have and e["step"] <= trainer.global_step]
        if missing:
            self.load_state_dict({"history": self._history_records() + missing})
            self.history.sort(key=lambda entry: entry[0])

    def _history_records(self) -> list[dict]:
        return [{"step": int(step), "rewards": [v.tolist() for v in vecs], "openness": op.tolist()}
                for step, vecs, op in self.history]

    def state_dict(self) -> dict:
        """The validations so far, as plain lists (checkpoints load with ``weights_only``)."""
        return {"history": self._history_records()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = [(int(e["step"]), [np.asarray(v, dtype=np.float64) for v in e["rewards"]],
                         np.asarray(e["openness"], dtype=np.float64)) for e in state_dict.get("history", [])]

    def on_fit_end(self, trainer: L.Trainer, pl_module) -> None:
        self._write_history(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # a validation after the fit: the one a resume at the last step ran
            self._write_history(trainer)

    def _write_history(self, trainer: L.Trainer) -> None:
        """``figures/rewards_over_training.png`` and ``reward_history.json`` of the validations so far."""
        if not trainer.is_global_zero or not self.history:
            return
        path = plot_rewards_over_training(
            self.history, self.output_dir / "figures" / "rewards_over_training.png",
            title=f"{self.title} (test prompts over training)".strip(),
        )
        write_json_atomic(self.history_path, self._history_records())
        self._log_images(trainer, {"rm/figures/rewards_over_training": path})

    def on_test_end(self, trainer: L.Trainer, pl_module) -> None:
        # after the module's on_test_epoch_end, which computes the theory profiles to overlay
        if not trainer.is_global_zero:
            return
        images = {}
        for split, collected in pl_module.eval_rewards.items():
            if split == "val" or not collected:
                continue
            vectors = [v for v, _ in collected]
            openness = np.array([o for _, o in collected])
            overlay = {f"theory ({kind})": r for kind, r in pl_module.theory_profiles.get(split, {}).items()}
            path = plot_rewards_by_rank(
                vectors, openness, self.output_dir / "figures" / f"rewards_by_rank_{split}.png",
                title=f"{self.title} ({split} prompts)".strip(), overlay=overlay,
            )
            images[f"rm/figures/rewards_by_rank_{split}"] = path
            payload = {"rewards": [v.tolist() for v in vectors], "openness": openness.tolist()}
            write_json_atomic(self.output_dir / f"rewards_{split}.json", payload)
        self._log_images(trainer, images)

    @staticmethod
    def _log_histograms(trainer: L.Trainer, vectors, openness) -> None:
        """Per-type histograms of the test prompts' rewards, so runs compare on a W&B dashboard."""
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not loggers:
            return
        import wandb

        open_rewards, closed_rewards = pooled_by_type(vectors, openness)
        payload = {f"rm/val/{kind}_rewards": wandb.Histogram(values.tolist(), num_bins=20)
                   for kind, values in (("open", open_rewards), ("closed", closed_rewards)) if values.size}
        payload["trainer/global_step"] = trainer.global_step
        for logger in loggers:
            logger.experiment.log(payload)

    @staticmethod
    def _log_images(trainer: L.Trainer, images: dict[str, Path]) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for key, path in images.items():
                    logger.log_image(key=key, images=[str(path)])
