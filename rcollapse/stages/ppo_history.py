"""A PPO run's history: every iteration's ``ppo/train/*`` metrics, and every few iterations the
over-optimisation point of the policy (Gao et al. 2023, *Scaling laws for reward model
over-optimization*): the responses it samples for a fixed set of judge prompts, scored by the
judge (the gold, ``ppo/eval/judge_mean``) and by the reward PPO optimises (the proxy,
``ppo/eval/proxy_mean``), with their KL from the reference policy (``ppo/eval/kl``); the
reference policy's own gold and proxy beside them (``*_ref``, its KL is 0).

Every judged response is also kept (:attr:`PPOHistory.judged`: iteration, prompt, response, gold,
proxy, the ensemble's mean and σ², KL): the samples on which the uncertainty report asks whether
σ² knows where the reward is wrong as the policy moves away from π0 (``ppo_judged_samples.csv``).

The history is callback state, so it is saved in every checkpoint and a resumed run's history
(``ppo_history.csv``, ``figures/ppo_training.png``) covers the whole run, the interrupted part
included, once.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch

from rcollapse.analysis.ppo_report import (
    EVAL_JUDGE,
    EVAL_JUDGE_REF,
    EVAL_KL,
    EVAL_PROXY,
    EVAL_PROXY_REF,
)
from rcollapse.maths.ppo_objective import combine_heads, kl_per_token
from rcollapse.models.judges import batch_ranges, judge_in_batches
from rcollapse.runs.atomic_files import atomic_writer

JUDGED_COLUMNS = ["step", "policy", "prompt", "response", "gold", "proxy", "mean", "variance", "kl"]


def sequence_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """KL(π‖π0) of each sampled response [B]: the sum over its real tokens of the k1 log-ratio
    ``log π(y_t|·) − log π0(y_t|·)`` (an unbiased estimate of the sequence-level KL; its mean over
    the prompts is ``ppo/eval/kl``)."""
    return (kl_per_token(logprobs, ref_logprobs, "k1") * response_mask.to(logprobs.dtype)).sum(1)


@dataclass
class JudgedResponses:
    """One policy's responses to the judge prompts, with their gold, proxy and KL per prompt."""

    texts: list[str]
    gold: np.ndarray
    proxy: np.ndarray
    kl: np.ndarray
    mean: np.ndarray  # the ensemble's mean over heads
    variance: np.ndarray  # and its variance over heads (σ²)


class PPOHistory(L.Callback):
    """Records each PPO iteration's metrics; with a ``judge``, also samples the policy's responses
    to ``judge_prompts`` every ``judge_every_n_updates`` iterations (and at the last one) and scores
    these same responses with the judge (gold) and with the ensemble's optimised reward (proxy:
    ``stage.module.reward_combination`` of the heads, as PPO optimises it), and measures their
    KL(π‖π0). The reference policy's responses are judged once, at the start.

    The judge's sampling runs under a forked RNG seeded with ``judge_seed``: it neither moves the
    training's random stream nor changes its own sampling noise from one evaluation to the next.
    ``batch_size`` prompts are sampled at a time (``stage.judge_batch_size``); the judge scores in
    its own batches (``judge.batch_size``).
    """

    def __init__(self, judge=None, judge_prompts: list[str] | None = None, judge_every_n_updates: int = 0,
                 num_updates: int | None = None, judge_seed: int = 0, batch_size: int = 64):
        self.rows: list[dict] = []
        self.judged: list[dict] = []  # every judged response (see keep)
        self.judge, self.judge_prompts = judge, list(judge_prompts or [])
        self.judge_every, self.num_updates, self.judge_seed = int(judge_every_n_updates), num_updates, int(judge_seed)
        self.batch_size = int(batch_size)
        self.reference_judge: float | None = None
        self.reference_proxy: float | None = None

    @property
    def judging(self) -> bool:
        return self.judge is not None and self.judge_every > 0 and bool(self.judge_prompts)

    @torch.no_grad()
    def judged_responses(self, pl_module, lm) -> JudgedResponses:
        """``lm``'s (the policy's or the reference's) responses to the judge prompts, sampled as the
        training's rollouts are, each scored by the judge and the proxy, with its KL from π0."""
        h = pl_module.hparams
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        texts, kls = [], []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.judge_seed)
            for start, stop in batch_ranges(len(self.judge_prompts), self.batch_size, "sampling for the judge"):
                rollout = pl_module.rollout(self.judge_prompts[start:stop], lm=lm)
                texts += pl_module.decode_responses(rollout)
                seq, attn, mask, p = (rollout[k] for k in ("sequences", "attention_mask", "response_mask",
                                                            "prompt_length"))
                if lm is pl_module.reference:  # π0 against itself
                    kls.append(torch.zeros(seq.size(0)))
                    continue
                logprobs = pl_module.policy_pass(seq, attn, p)[0]
                kls.append(sequence_kl(logprobs, pl_module.reference_logprobs(seq, attn, p), mask).cpu())
        # the proxy straight from the scorer: the module's score() may also fit state (a KL-weight scale)
        out = pl_module.scorer(self.judge_prompts, texts)
        proxy = combine_heads(out.scores, h.reward_combination, h.reward_head, h.reward_penalty)
        return JudgedResponses(texts, judge_in_batches(self.judge, self.judge_prompts, texts, desc="judging"),
                               proxy.detach().float().cpu().numpy(), torch.cat(kls).double().numpy(),
                               out.mean.detach().float().cpu().numpy(), out.variance.detach().float().cpu().numpy())

    def keep(self, step: int, policy: str, judged: JudgedResponses) -> None:
        """Add the judged responses to :attr:`judged`."""
        for i, text in enumerate(judged.texts):
            self.judged.append({"step": step, "policy": policy, "prompt": self.judge_prompts[i], "response": text,
                                "gold": float(judged.gold[i]), "proxy": float(judged.proxy[i]),
                                "mean": float(judged.mean[i]), "variance": float(judged.variance[i]),
                                "kl": float(judged.kl[i])})

    def on_train_start(self, trainer, pl_module):
        if self.judging and (self.reference_judge is None or self.reference_proxy is None):
            reference = self.judged_responses(pl_module, pl_module.reference)
            self.reference_judge, self.reference_proxy = float(reference.gold.mean()), float(reference.proxy.mean())
            self.keep(-1, "reference", reference)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        row = {"step": len(self.rows),
               **{k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("ppo/train/")}}
        last = self.num_updates is not None and row["step"] + 1 >= self.num_updates
        if self.judging and (row["step"] % self.judge_every == 0 or last):
            judged = self.judged_responses(pl_module, pl_module.policy.lm)
            self.keep(row["step"], "policy", judged)
            evaluation = {EVAL_JUDGE: float(judged.gold.mean()), EVAL_PROXY: float(judged.proxy.mean()),
                          EVAL_KL: float(judged.kl.mean()),
                          EVAL_JUDGE_REF: self.reference_judge, EVAL_PROXY_REF: self.reference_proxy}
            row.update(evaluation)
            pl_module.log_dict(evaluation, on_step=True, on_epoch=False)
        self.rows.append(row)

    def state_dict(self) -> dict:
        return {"rows": list(self.rows), "reference_judge": self.reference_judge,
                "reference_proxy": self.reference_proxy, "judged": list(self.judged)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = list(state_dict.get("rows", []))
        self.reference_judge = state_dict.get("reference_judge")
        self.reference_proxy = state_dict.get("reference_proxy")
        self.judged = list(state_dict.get("judged", []))

    def final_means(self, window: int) -> dict[str, float]:
        """``ppo/final/<name>``: the mean of ``ppo/train/<name>`` over the last ``window``
        iterations, a steadier end-of-training value than the last iteration's alone."""
        last = self.rows[-window:]
        if not last:
            return {}
        keys = [k for k in last[-1] if k.startswith("ppo/train/")]
        return {k.replace("ppo/train/", "ppo/final/"): float(np.mean([r[k] for r in last if k in r])) for k in keys}

    def write_judged_csv(self, path: Path) -> None:
        """``ppo_judged_samples.csv``: every judged response (the reference policy's at step −1)."""
        with atomic_writer(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=JUDGED_COLUMNS)
            writer.writeheader()
            writer.writerows(self.judged)

    def write_csv(self, path: Path) -> None:
        """One row per iteration; the judge's columns (``ppo/eval/*``) are empty where it did not run."""
        keys = sorted({k for r in self.rows for k in r if k != "step"})
        with atomic_writer(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", *keys])
            writer.writeheader()
            writer.writerows(self.rows)
