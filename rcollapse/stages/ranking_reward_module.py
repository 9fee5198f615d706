"""Stage 1: a ranking reward model trained with a pluggable utility ``U`` (reward collapse).

``R(x, y) = sigmoid(f_θ(x, y))``; every completion of a prompt is encoded once per step, all
``i < j`` pairs of a prompt come from that one forward by index, and the utility is chosen per
prompt (prompt-aware utilities get each prompt's openness). Loss: the negative of the paper's
eq. (1)/(4), averaged within each prompt then across prompts (``rcollapse.maths.ranking_objective``).
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import numpy as np
import torch

from rcollapse.analysis.collapse_metrics import collapse_metrics, wasserstein1
from rcollapse.maths.ranking_objective import pad_groups, pair_accuracy, ranking_loss
from rcollapse.maths.theory import solve_collapse
from rcollapse.models.dropout import set_dropout
from rcollapse.runs.training_run import NonFiniteLossError, after_non_finite_loss


class RankingRewardModule(L.LightningModule):
    def __init__(
        self,
        reward_model: torch.nn.Module,
        utility: Callable,
        optimizer: Callable[..., torch.optim.Optimizer],
        warmup_ratio: float = 0.1,
        test_split_names: tuple[str, ...] = ("test", "train"),
        dropout: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["reward_model", "utility", "optimizer", "test_split_names"])
        self.reward_model = reward_model
        self.utility = utility
        self.optimizer_factory = optimizer
        self.warmup_ratio = warmup_ratio
        self.test_split_names = tuple(test_split_names)
        self.dropout = bool(dropout)
        # Per-prompt reward vectors collected during evaluation: {split: [(vector, openness)]}.
        self.eval_rewards: dict[str, list[tuple[np.ndarray, float]]] = {}
        # The collapse program's prediction for each prompt type of a split: {split: {type: r}}.
        self.theory_profiles: dict[str, dict[str, np.ndarray]] = {}
        self._solved: dict[tuple[float, int], np.ndarray] = {}

    # ---- the forward: one pass over all B·n completions -------------------------------------
    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards ``R = sigmoid(head)`` laid out [B, n_max] (best first) and the validity mask."""
        if "packed" in batch:  # padding-free batch (dataset.packing=true): same [S] outputs
            out = self.reward_model.packed_forward(batch["packed"])
        else:
            out = self.reward_model(
                batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
            )
        rewards = torch.sigmoid(out.scores[:, 0])
        return pad_groups(rewards, batch["group_sizes"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        rewards, mask = self(batch)
        loss = ranking_loss(rewards, mask, batch["openness"], self.utility)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"rm/train/loss is {loss.item()} at global step {self.global_step} "
                f"(batch of rows {batch['row_ids']}). Lower model.lr, check these rows, or raise utility.eps; "
                f"{after_non_finite_loss(self)}"
            )
        batch_size = rewards.size(0)
        self.log("rm/train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("rm/train/pair_acc", pair_accuracy(rewards.detach(), mask), batch_size=batch_size)
        return loss

    def setup(self, stage: str) -> None:
        # packing: refuse a backbone without a packed forward before the first step, naming the key
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if getattr(datamodule, "packing", False):
            from rcollapse.models.reward_model import check_packing_supported

            check_packing_supported(self.reward_model.backbone)

    def on_fit_start(self) -> None:  # before Lightning checks the modes at the start of training
        # set, not inherited: from_pretrained gives eval mode, which Lightning would keep
        set_dropout(self.reward_model, self.dropout)

    # ---- evaluation: collect every prompt's reward vector ------------------------------------
    def _collect(self, split: str, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rewards, mask = self(batch)
        loss = ranking_loss(rewards, mask, batch["openness"], self.utility)
        bucket = self.eval_rewards.setdefault(split, [])
        for row, row_mask, openness in zip(rewards.float().cpu(), mask.cpu(), batch["openness"].cpu()):
            bucket.append((row[row_mask].numpy().copy(), float(openness)))
        return rewards, mask, loss

    def on_validation_epoch_start(self) -> None:
        self.eval_rewards.pop("val", None)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        rewards, _, loss = self._collect("val", batch)
        self.log("rm/val/loss", loss, batch_size=rewards.size(0), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._log_collapse("val", "rm/val")

    def on_test_epoch_start(self) -> None:
        for name in self.test_split_names:
            self.eval_rewards.pop(name, None)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        split = self.test_split_names[dataloader_idx]
        rewards, mask, loss = self._collect(split, batch)
        self.log(f"rm/{split}/eval_loss", loss, batch_size=rewards.size(0), add_dataloader_idx=False,
                 sync_dist=True)

    def on_test_epoch_end(self) -> None:
        for split in self.test_split_names:
            self._log_collapse(split, f"rm/{split}")
            self._log_theory_distance(split, f"rm/{split}")

    def predicted_profile(self, openness: float, n: int) -> np.ndarray:
        """The collapse program's solution for the utility this prompt type trains with (same n)."""
        key = (openness, n)
        if key not in self._solved:
            self._solved[key] = solve_collapse(self.utility.for_openness(openness), n).rewards
        return self._solved[key]

    def _log_theory_distance(self, split: str, prefix: str) -> None:
        """Paper Fig. 1: W1 between each type's observed rewards and the predicted collapsed ones."""
        collected = self.eval_rewards.get(split) or []
        profiles = {}
        for kind, is_kind in (("open", lambda o: o > 0), ("closed", lambda o: o <= 0)):
            chosen = [(v, o) for v, o in collected if is_kind(o)]
            if not chosen:
                continue
            n = int(np.bincount([len(v) for v, _ in chosen]).argmax())  # the usual number of completions
            openness = float(np.median([o for _, o in chosen]))
            predicted = self.predicted_profile(openness, n)
            observed = np.concatenate([v for v, _ in chosen if len(v) == n])
            profiles[kind] = predicted
            self.log(f"{prefix}/theory_distance_{kind}", wasserstein1(observed, predicted),
                     add_dataloader_idx=False, sync_dist=True)
        self.theory_profiles[split] = profiles

    def _log_collapse(self, split: str, prefix: str) -> None:
        collected = self.eval_rewards.get(split)
        if not collected:
            return
        vectors = [v for v, _ in collected]
        openness = np.array([o for _, o in collected])
        metrics = collapse_metrics(vectors, openness, prefix)
        # pair_acc (rm/val/pair_acc, …) is computed over every prompt of the split here.
        # Under DDP every rank evaluates every prompt (see RankingDataModule), so these values are
        # equal on all ranks; sync_dist averages equal numbers and keeps Lightning content.
        pair_acc = metrics.pop(f"{prefix}/pair_acc")
        self.log(f"{prefix}/pair_acc", pair_acc, prog_bar=split == "val", add_dataloader_idx=False,
                 sync_dist=True)
        self.log_dict(metrics, add_dataloader_idx=False, sync_dist=True)

    # ---- optimisation: AdamW-style partial + linear warm-up ------------------------------------
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = max(1, int(self.warmup_ratio * total))

        def warmup_then_constant(step: int) -> float:
            return min(1.0, (step + 1) / warmup)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_constant)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
