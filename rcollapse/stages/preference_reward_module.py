"""Reward heads trained on preference pairs with the Bradley–Terry loss (the ensemble stage's module).

One module serves both phases of the ensemble stage (Banerjee & Gopalan, Section 4):

- phase 1: a backbone with one head, all trained (the ordinary reward model);
- phase 2: k heads on the same backbone, frozen (``freeze_backbone=True``), trained with the
  summed loss Σ_k ℓ(θ_k). Batches hold either tokens (the backbone runs, under ``no_grad``
  when frozen) or cached pooled features (``{"features": [2B, H]}``: the backbone never runs).

Optional bootstrap (beyond the paper): ``bootstrap_weights`` [N_train, k], each head's count
of each training pair (multinomial resampling), weights the per-head losses.
Metrics: ``ens/train/loss`` (Σ over heads), ``ens/train/loss_per_head`` (mean over heads),
``ens/train/loss_ema`` (of that mean), ``ens/train/loss_ema_max_head`` (the largest of the heads'
own loss EMAs: phase 2 may stop when every head is near a loss), ``ens/train/lr`` (the step's
learning rate: a cosine's), ``ens/val/loss``, ``ens/val/acc_mean``; at test time the per-pair
scores of every head are kept in :attr:`test_scores` for the accuracy table and variance
analysis (``rcollapse.analysis.ensemble_report``).
"""

from __future__ import annotations

import math

import lightning as L
import torch

from rcollapse.maths.preference_objective import bradley_terry_loss_per_head, pair_wins
from rcollapse.models.dropout import set_dropout
from rcollapse.models.reward_model import RewardModel
from rcollapse.runs.training_run import NonFiniteLossError, after_non_finite_loss


class PreferenceRewardModule(L.LightningModule):
    def __init__(self, reward_model: RewardModel, optimizer, freeze_backbone: bool = False,
                 bootstrap_weights: torch.Tensor | None = None, loss_ema_decay: float = 0.95,
                 dropout: bool = True, lr_scheduler=None):
        super().__init__()
        self.save_hyperparameters(ignore=["reward_model", "optimizer", "bootstrap_weights", "lr_scheduler"])
        self.reward_model = reward_model
        self.optimizer_factory = optimizer
        # optimizer -> a scheduler stepped every training step (None: constant learning rate)
        self.lr_scheduler_factory = lr_scheduler
        self.freeze_backbone = bool(freeze_backbone)
        self.dropout = bool(dropout)
        if self.freeze_backbone:
            reward_model.backbone.requires_grad_(False)
            # checkpoints leave the frozen backbone out (it is rebuilt from phase 1), so loading
            # one must accept the missing keys
            self.strict_loading = False
        self.register_buffer("bootstrap_weights", bootstrap_weights, persistent=True)
        self.loss_ema_decay = float(loss_ema_decay)
        self.register_buffer("loss_ema", torch.tensor(float("nan")), persistent=True)
        self.register_buffer("loss_ema_heads", torch.full((reward_model.num_heads,), float("nan")), persistent=True)
        self.test_scores: dict[str, torch.Tensor] | None = None
        self._test_parts: list = []

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_backbone:
            self.reward_model.backbone.eval()  # frozen features: no dropout, as when cached
        return self

    def on_fit_start(self) -> None:  # before Lightning checks the modes at the start of training
        # set, not inherited: from_pretrained gives eval mode, phase 1 leaves train mode, and
        # Lightning keeps either; a frozen backbone gives features without dropout, as when cached
        if self.freeze_backbone:
            self.reward_model.backbone.eval()
        else:
            set_dropout(self.reward_model, self.dropout)

    def scores(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen [B, k], rejected [B, k]) rewards of every head, through the model's head
        normalisation (the identity while phase 2 trains; fitted after it)."""
        if "features" in batch:
            scores = self.reward_model.head_scores(batch["features"])
        else:
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
            if self.freeze_backbone:
                with torch.no_grad():
                    features = self.reward_model.features(**inputs)
                scores = self.reward_model.head_scores(features)
            else:
                scores = self.reward_model(**inputs).scores
        half = scores.size(0) // 2
        return scores[:half], scores[half:]

    def training_step(self, batch, batch_idx):
        chosen, rejected = self.scores(batch)
        weights = None if self.bootstrap_weights is None else self.bootstrap_weights[batch["index"]]
        per_head = bradley_terry_loss_per_head(chosen, rejected, weights)
        loss = per_head.sum()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"ensemble training loss is {loss.item()} at step {self.global_step}; lower the learning rate "
                f"(model.lr / stage.ensemble.head_lr) or check the data; {after_non_finite_loss(self)}")
        mean_head = float(per_head.detach().mean())
        ema = float(self.loss_ema)
        self.loss_ema.fill_(mean_head if math.isnan(ema) else self.loss_ema_decay * ema + (1 - self.loss_ema_decay) * mean_head)
        heads = per_head.detach().to(self.loss_ema_heads)
        self.loss_ema_heads.copy_(torch.where(torch.isnan(self.loss_ema_heads), heads,
                                              self.loss_ema_decay * self.loss_ema_heads + (1 - self.loss_ema_decay) * heads))
        size = chosen.size(0)
        self.log("ens/train/loss", loss, prog_bar=True, batch_size=size)
        self.log("ens/train/loss_per_head", mean_head, batch_size=size)
        self.log("ens/train/loss_ema", float(self.loss_ema), prog_bar=True, batch_size=size)
        self.log("ens/train/loss_ema_max_head", float(self.loss_ema_heads.max()), batch_size=size)
        if self._trainer is not None and self.trainer.optimizers:  # the lr of this step (a schedule's)
            self.log("ens/train/lr", float(self.trainer.optimizers[0].param_groups[0]["lr"]), batch_size=size)
        return loss

    def validation_step(self, batch, batch_idx):
        chosen, rejected = self.scores(batch)
        size = chosen.size(0)
        self.log("ens/val/loss", bradley_terry_loss_per_head(chosen, rejected).mean(), batch_size=size)
        self.log("ens/val/acc_mean", pair_wins(chosen.mean(1), rejected.mean(1)).mean(), prog_bar=True,
                 batch_size=size)

    def on_test_epoch_start(self) -> None:
        self._test_parts = []

    def test_step(self, batch, batch_idx):
        chosen, rejected = self.scores(batch)
        self._test_parts.append((batch["index"].cpu(), chosen.detach().cpu(), rejected.detach().cpu()))

    def on_test_epoch_end(self) -> None:
        index = torch.cat([p[0] for p in self._test_parts])
        order = torch.argsort(index)
        self.test_scores = {"index": index[order],
                            "chosen": torch.cat([p[1] for p in self._test_parts])[order],
                            "rejected": torch.cat([p[2] for p in self._test_parts])[order]}
        self._test_parts = []

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.freeze_backbone:
            state = checkpoint["state_dict"]
            for key in [k for k in state if k.startswith("reward_model.backbone.")]:
                del state[key]

    def configure_optimizers(self):
        params = [p for p in self.reward_model.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.lr_scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.lr_scheduler_factory(optimizer), "interval": "step"}}
