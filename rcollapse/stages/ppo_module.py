"""Variance-weighted-KL PPO as a LightningModule (Banerjee & Gopalan, Section 5), CleanRL-style.

One ``training_step`` is one PPO iteration on a batch of prompts, in named steps:

1. **rollout**: sample responses (≤ ``max_new_tokens``) with the KV cache, under ``no_grad``;
2. **score**: decode and score them with the reward ensemble: the optimised reward (one head, or a
   combination), and the variance that weights the KL;
3. **rewards**: per-token ``−β·w·KL_t``, the score on the last real response token;
4. **advantages**: GAE over the response tokens (whitened if asked);
5. **update**: ``ppo_epochs`` passes over shuffled minibatches: clipped policy and value losses.

``kl_weight="one"`` is vanilla PPO (``w = 1``). Manual optimisation; the KL controller's
state is checkpointed with the module. Metrics ``ppo/train/*`` every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch

from rcollapse.maths.ppo_objective import (
    clipped_policy_loss,
    clipped_value_loss,
    combine_heads,
    explained_variance,
    gae,
    kl_per_token,
    kl_weight,
    masked_mean,
    masked_whiten,
    per_token_rewards,
)
from rcollapse.models.dropout import set_dropout
from rcollapse.models.policy import position_ids_from_mask, response_logprobs
from rcollapse.runs.training_run import NonFiniteLossError, after_non_finite_loss


class PPOSizeError(ValueError):
    """The PPO batch does not divide into the configured minibatches."""


@dataclass(frozen=True)
class PPOIterationSizes:
    """The derived sizes of one PPO iteration, computed once (the stage's step budget, checkpoint
    interval and resume, and the module's minibatch loop all read them from here).

    A batch of ``batch_size`` prompts is split into ``num_minibatches`` equal minibatches, each
    taken ``ppo_epochs`` times: ``optimizer_steps`` optimiser steps per iteration. A batch that does
    not divide exactly is refused, so no minibatch is silently smaller or extra."""

    batch_size: int
    num_minibatches: int
    ppo_epochs: int

    def __post_init__(self):
        for key, value in (("stage.batch_size", self.batch_size), ("stage.module.num_minibatches", self.num_minibatches),
                           ("stage.module.ppo_epochs", self.ppo_epochs)):
            if not (isinstance(value, int) and value > 0):
                raise PPOSizeError(f"{key} must be a positive integer, got {value!r}")
        if self.batch_size % self.num_minibatches:
            raise PPOSizeError(
                f"stage.batch_size={self.batch_size} does not divide into stage.module.num_minibatches="
                f"{self.num_minibatches} equal minibatches; choose a batch size that is a multiple of it "
                f"(e.g. stage.batch_size={self.batch_size - self.batch_size % self.num_minibatches or self.num_minibatches})")

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def optimizer_steps(self) -> int:
        """Optimiser steps per PPO iteration (the trainer's ``global_step`` advances by this)."""
        return self.ppo_epochs * self.num_minibatches


class VarianceKLPPOModule(L.LightningModule):
    def __init__(self, policy, reference, tokenizer, scorer, optimizer, kl_controller, batch_size: int,
                 kl_weight: str = "variance", normalise_kl_weight: bool = False,
                 kl_estimator: str = "k1",
                 reward_combination: str = "head", reward_head: int = 0, reward_penalty: float = 1.0,
                 ppo_epochs: int = 4, num_minibatches: int = 4, clip_range: float = 0.2,
                 clip_range_value: float = 0.2, vf_coef: float = 0.1, gamma: float = 1.0, lam: float = 0.95,
                 whiten_advantages: bool = True, max_new_tokens: int = 10, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, max_grad_norm: float = 1.0, sample_every_n_steps: int = 10):
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["policy", "reference", "tokenizer", "scorer", "optimizer", "kl_controller"])
        self.sizes = PPOIterationSizes(int(batch_size), int(num_minibatches), int(ppo_epochs))
        # no dropout in the policy or its value head (as TRL): the rollout's log-probs, every
        # minibatch's and the reference's must come from one deterministic model, or π/π_old is noise
        set_dropout(policy, False)
        self.policy, self.reference, self.tokenizer = policy, reference, tokenizer
        self.scorer, self.optimizer_factory, self.kl_controller = scorer, optimizer, kl_controller
        self.samples: list[dict] = []  # sample prompts/responses/scores/weights at intervals
        # normalise_kl_weight: the mean KL weight over the reference policy's rollouts (the first
        # iteration's, drawn before any update: π = π0), so that E_π0[w] = 1; checkpointed
        self.register_buffer("kl_weight_scale", torch.tensor(float("nan")), persistent=True)

    # ---- 1. rollout ----------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, prompts: list[str], lm=None) -> dict:
        """Responses of ``lm`` (default: the policy's; the judged evaluations also sample π0)."""
        h = self.hparams
        lm = self.policy.lm if lm is None else lm
        enc = self.encode_prompts(prompts)
        was_training = lm.training
        lm.eval()
        # plain sampling from π, EOS allowed at once: forcing tokens (min_new_tokens) would draw the
        # responses from another distribution than the log-probs and the KL estimate assume
        sequences = lm.generate(
            **enc, do_sample=True, max_new_tokens=h.max_new_tokens, temperature=h.temperature,
            top_k=h.top_k, top_p=h.top_p, pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id, use_cache=True)
        lm.train(was_training)
        prompt_length = enc["input_ids"].size(1)
        responses = sequences[:, prompt_length:]
        # real response tokens: up to and including the first EOS; what follows is padding
        is_eos = responses == self.tokenizer.eos_token_id
        after_eos = (is_eos.long().cumsum(1) - is_eos.long()) > 0
        response_mask = (~after_eos).long()
        attention_mask = torch.cat([enc["attention_mask"], response_mask], 1)
        return {"sequences": sequences, "attention_mask": attention_mask,
                "response_mask": response_mask, "prompt_length": prompt_length}

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Left-padded prompt ids and mask, nothing else: the forward passes that score the samples
        take exactly these (a tokenizer's ``token_type_ids`` would change GPT-2's generation only)."""
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    # ---- 2. score ------------------------------------------------------------------------------
    def decode_responses(self, rollout: dict) -> list[str]:
        """The responses as text (real tokens only), for a reward model with its own tokenizer."""
        responses = rollout["sequences"][:, rollout["prompt_length"]:]
        mask = rollout["response_mask"]
        return self.tokenizer.batch_decode(responses * mask + self.tokenizer.pad_token_id * (1 - mask),
                                           skip_special_tokens=True)

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.hparams
        out = self.scorer(prompts, responses)
        scores = combine_heads(out.scores.to(self.device), h.reward_combination, h.reward_head, h.reward_penalty)
        variance = out.variance.to(self.device)
        if h.normalise_kl_weight and torch.isnan(self.kl_weight_scale):
            if self.global_step > 0:
                raise RuntimeError("stage.module.normalise_kl_weight: no reference scale after the first iteration "
                                   "(a checkpoint from a run without stage.module.normalise_kl_weight?)")
            self.kl_weight_scale.fill_(float(kl_weight(variance, h.kl_weight).mean().clamp_min(1e-12)))
        weights = kl_weight(variance, h.kl_weight, self.kl_weight_scale if h.normalise_kl_weight else 1.0)
        return scores, variance, weights

    # ---- forward passes ------------------------------------------------------------------------
    def policy_pass(self, sequences, attention_mask, prompt_length):
        logits, values = self.policy(sequences, attention_mask)
        logprobs = response_logprobs(logits, sequences, prompt_length, self.hparams.temperature)
        from trl.trainer.utils import entropy_from_logits  # lazy: importing trl takes seconds

        # a statistic only (no entropy bonus in the loss): kept out of the autograd graph
        entropy = entropy_from_logits(logits[:, prompt_length - 1:-1].detach().float())
        return logprobs, values[:, prompt_length - 1:-1].float(), entropy

    @torch.no_grad()
    def reference_logprobs(self, sequences, attention_mask, prompt_length):
        logits = self.reference(input_ids=sequences, attention_mask=attention_mask,
                                position_ids=position_ids_from_mask(attention_mask)).logits
        return response_logprobs(logits, sequences, prompt_length, self.hparams.temperature)

    # ---- one PPO iteration ---------------------------------------------------------------------
    def training_step(self, prompts: list[str], batch_idx: int):
        h = self.hparams
        rollout = self.rollout(prompts)
        texts = self.decode_responses(rollout)
        scores, variance, weights = self.score(prompts, texts)
        seq, attn, mask, p = rollout["sequences"], rollout["attention_mask"], rollout["response_mask"], rollout["prompt_length"]

        # 3. rewards
        with torch.no_grad():
            old_logprobs, old_values, _ = self.policy_pass(seq, attn, p)
            ref_logprobs = self.reference_logprobs(seq, attn, p)
            kl = kl_per_token(old_logprobs, ref_logprobs, h.kl_estimator) * mask
            beta = self.kl_controller.value
            rewards = per_token_rewards(scores, kl, weights, mask, beta)
            # 4. advantages
            advantages, returns = gae(rewards, old_values, mask, h.gamma, h.lam)
            if h.whiten_advantages:
                advantages = masked_whiten(advantages, mask)

        # 5. update
        optimizer = self.optimizers()
        batch_size, minibatch_size = self.sizes.batch_size, self.sizes.minibatch_size
        if seq.size(0) != batch_size:
            raise PPOSizeError(f"a PPO batch of {seq.size(0)} prompts, expected stage.batch_size={batch_size}")
        stats = {"clipfrac": [], "approx_kl": [], "value_loss": [], "policy_loss": [], "entropy": []}
        for _ in range(h.ppo_epochs):
            order = torch.randperm(batch_size, device=self.device)
            for start in range(0, batch_size, minibatch_size):
                mb = order[start:start + minibatch_size]
                mb_logprobs, mb_values, mb_entropy = self.policy_pass(seq[mb], attn[mb], p)
                pg_loss, clipfrac, approx_kl = clipped_policy_loss(mb_logprobs, old_logprobs[mb], advantages[mb],
                                                                   mask[mb], h.clip_range)
                vf_loss = clipped_value_loss(mb_values, old_values[mb], returns[mb], mask[mb], h.clip_range_value)
                loss = pg_loss + h.vf_coef * vf_loss
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(f"PPO loss is {loss.item()} at step {self.global_step}; lower "
                                             f"stage.optimizer.lr or check the rewards; {after_non_finite_loss(self)}")
                optimizer.zero_grad()
                self.manual_backward(loss)
                self.clip_gradients(optimizer, gradient_clip_val=h.max_grad_norm, gradient_clip_algorithm="norm")
                optimizer.step()
                for key, value in (("clipfrac", clipfrac), ("approx_kl", approx_kl), ("value_loss", vf_loss),
                                   ("policy_loss", pg_loss), ("entropy", masked_mean(mb_entropy, mask[mb]))):
                    stats[key].append(float(value.detach()))

        kl_per_sequence = kl.sum(1)
        mean_kl = float(kl_per_sequence.mean())
        # 1 when this iteration's β is the run's fixed one (a fixed controller, or an adaptive one
        # frozen after its calibration: stage.kl_controller.freeze_after), 0 while it calibrates
        beta_fixed = float(getattr(self.kl_controller, "frozen", True))
        self.kl_controller.update(mean_kl, batch_size)
        metrics = {
            "ppo/train/score": float(scores.mean()),
            "ppo/train/kl": mean_kl,
            "ppo/train/weighted_kl": float((weights * kl_per_sequence).mean()),
            "ppo/train/beta": beta,
            "ppo/train/beta_fixed": beta_fixed,
            "ppo/train/kl_weight_scale": float(self.kl_weight_scale) if self.hparams.normalise_kl_weight else 1.0,
            "ppo/train/variance": float(variance.mean()),
            "ppo/train/response_length": float(mask.sum(1).float().mean()),
            "ppo/train/explained_var": explained_variance(old_values, returns, mask),
            **{f"ppo/train/{k}": sum(v) / len(v) for k, v in stats.items()},
        }
        self.log_dict(metrics, batch_size=batch_size, prog_bar=False)
        iteration = self.global_step // self.sizes.optimizer_steps - 1
        if iteration % h.sample_every_n_steps == 0:
            for i in range(min(4, batch_size)):
                self.samples.append({"step": iteration, "prompt": prompts[i], "response": texts[i],
                                     "score": float(scores[i]), "variance": float(variance[i]),
                                     "weight": float(weights[i])})

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["kl_controller"] = self.kl_controller.state_dict()
        checkpoint["ppo_samples"] = list(self.samples)  # a resumed run keeps the samples taken so far
        # sampling continues the same random stream after a resume
        checkpoint["rng_state"] = {"torch": torch.get_rng_state(),
                                   "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        # the frozen reference is rebuilt from the same initial weights: not saved
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("reference.")]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "kl_controller" in checkpoint:
            self.kl_controller.load_state_dict(checkpoint["kl_controller"])
        self.samples = list(checkpoint.get("ppo_samples", []))
        # applied just before the next iteration: creating the resumed dataloader's iterator draws
        # from the global RNG, which an uninterrupted run did at the start of the epoch instead
        self._rng_state_to_restore = checkpoint.get("rng_state")
        self.strict_loading = False

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        rng_state = getattr(self, "_rng_state_to_restore", None)
        if rng_state is not None:
            torch.set_rng_state(rng_state["torch"])
            if rng_state["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng_state["cuda"])
            self._rng_state_to_restore = None

    def configure_optimizers(self):
        return self.optimizer_factory(self.policy.parameters())

    # ---- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate_texts(self, lm, prompts: list[str], batch_size: int = 64) -> list[str]:
        """Responses of ``lm`` (the policy's or the reference's) to ``prompts``."""
        h = self.hparams
        texts = []
        was_training = lm.training
        lm.eval()
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            enc = self.encode_prompts(chunk)
            out = lm.generate(**enc, do_sample=True, max_new_tokens=h.max_new_tokens,
                              temperature=h.temperature, top_k=h.top_k, top_p=h.top_p,
                              pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
            texts += self.tokenizer.batch_decode(out[:, enc["input_ids"].size(1):], skip_special_tokens=True)
        lm.train(was_training)
        return texts
