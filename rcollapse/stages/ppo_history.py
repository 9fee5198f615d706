"""A PPO run's history: every iteration's ``ppo/train/*`` metrics, and the judge's verdict on the
policy every few iterations (``ppo/eval/judge_mean``, beside the reference policy's).

The history is callback state, so it is saved in every checkpoint and a resumed run's history
(``ppo_history.csv``, ``figures/ppo_training.png``) covers the whole run, the interrupted part
included, once.
"""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import numpy as np
import torch

from rcollapse.analysis.ppo_report import EVAL_JUDGE, EVAL_JUDGE_REF


class PPOHistory(L.Callback):
    """Records each PPO iteration's metrics; with a ``judge``, also scores the policy's responses
    to ``judge_prompts`` every ``judge_every_n_updates`` iterations (and at the last one).

    The judge's sampling runs under a forked RNG seeded with ``judge_seed``: it neither moves the
    training's random stream nor changes its own sampling noise from one evaluation to the next.
    """

    def __init__(self, judge=None, judge_prompts: list[str] | None = None, judge_every_n_updates: int = 0,
                 num_updates: int | None = None, judge_seed: int = 0):
        self.rows: list[dict] = []
        self.judge, self.judge_prompts = judge, list(judge_prompts or [])
        self.judge_every, self.num_updates, self.judge_seed = int(judge_every_n_updates), num_updates, int(judge_seed)
        self.reference_judge: float | None = None

    @property
    def judging(self) -> bool:
        return self.judge is not None and self.judge_every > 0 and bool(self.judge_prompts)

    def judge_mean(self, pl_module, lm) -> float:
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.judge_seed)
            texts = pl_module.generate_texts(lm, self.judge_prompts)
        return float(np.mean(self.judge.score(self.judge_prompts, texts)))

    def on_train_start(self, trainer, pl_module):
        if self.judging and self.reference_judge is None:
            self.reference_judge = self.judge_mean(pl_module, pl_module.reference)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        row = {"step": len(self.rows),
               **{k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("ppo/train/")}}
        last = self.num_updates is not None and row["step"] + 1 >= self.num_updates
        if self.judging and (row["step"] % self.judge_every == 0 or last):
            row[EVAL_JUDGE] = self.judge_mean(pl_module, pl_module.policy.lm)
            row[EVAL_JUDGE_REF] = self.reference_judge
            pl_module.log_dict({EVAL_JUDGE: row[EVAL_JUDGE], EVAL_JUDGE_REF: row[EVAL_JUDGE_REF]},
                               on_step=True, on_epoch=False)
        self.rows.append(row)

    def state_dict(self) -> dict:
        return {"rows": list(self.rows), "reference_judge": self.reference_judge}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = list(state_dict.get("rows", []))
        self.reference_judge = state_dict.get("reference_judge")

    def final_means(self, window: int) -> dict[str, float]:
        """``ppo/final/<name>``: the mean of ``ppo/train/<name>`` over the last ``window``
        iterations, a steadier end-of-training value than the last iteration's alone."""
        last = self.rows[-window:]
        if not last:
            return {}
        keys = [k for k in last[-1] if k.startswith("ppo/train/")]
        return {k.replace("ppo/train/", "ppo/final/"): float(np.mean([r[k] for r in last if k in r])) for k in keys}

    def write_csv(self, path: Path) -> None:
        """One row per iteration; the judge's columns are empty where it did not run."""
        keys = sorted({k for r in self.rows for k in r if k != "step"})
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", *keys])
            writer.writeheader()
            writer.writerows(self.rows)
