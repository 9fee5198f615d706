"""The PPO module on the tiny GPT-2: a toy reward rises, KL stays finite, π0 gets no gradient;
log-probs of a sequence alone and inside a padded batch agree."""

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rcollapse.data.synthetic_reviews import review_prompt
from rcollapse.maths.ppo_objective import FixedKLController
from rcollapse.models.policy import (
    PolicyWithValueHead,
    build_tiny_gpt2,
    build_tiny_tokenizer_for_generation,
    frozen_reference,
    response_logprobs,
)
from rcollapse.models.reward_model import RewardOutput
from rcollapse.stages.ppo_module import VarianceKLPPOModule

FIRST_HALF = set("abcdefghijklm")


def toy_scorer(prompts, responses):
    """The share of response words that start with a letter in a–m (about ½ for random text)."""
    values = []
    for text in responses:
        words = text.split()
        values.append(sum(w[0] in FIRST_HALF for w in words) / len(words) if words else 0.0)
    r = torch.tensor(values)
    return RewardOutput(r[:, None], r, torch.full_like(r, 0.5))


def _module(seed=0, dropout=0.0, batch_size=32, **kwargs):
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer_for_generation()
    lm = build_tiny_gpt2(tokenizer, n_embd=32, n_layer=1, n_head=2, dropout=dropout)
    policy = PolicyWithValueHead(lm)
    reference = frozen_reference(lm)
    kwargs = {"ppo_epochs": 2, "num_minibatches": 2, **kwargs}
    return VarianceKLPPOModule(policy, reference, tokenizer, toy_scorer,
                               lambda p: torch.optim.Adam(p, lr=3e-3), FixedKLController(0.05),
                               batch_size=batch_size, **kwargs), tokenizer


def test_a_short_run_raises_a_toy_reward_and_keeps_kl_finite():
    module, _ = _module()
    rng = np.random.default_rng(0)
    prompts = [review_prompt(rng) for _ in range(32 * 25)]
    ref_before = {k: v.clone() for k, v in module.reference.state_dict().items()}
    before = float(toy_scorer(None, module.generate_texts(module.policy.lm, prompts[:256])).mean.mean())
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(prompts, batch_size=32, collate_fn=list))
    after = float(toy_scorer(None, module.generate_texts(module.policy.lm, prompts[:256])).mean.mean())
    metrics = trainer.callback_metrics
    assert after > before + 0.1, (before, after)
    assert torch.isfinite(metrics["ppo/train/kl"]) and float(metrics["ppo/train/kl"]) > 0
    assert all(p.grad is None and not p.requires_grad for p in module.reference.parameters())
    for key, value in module.reference.state_dict().items():
        assert torch.equal(value, ref_before[key]), key
    for key in ("ppo/train/score", "ppo/train/weighted_kl", "ppo/train/beta", "ppo/train/approx_kl",
                "ppo/train/clipfrac", "ppo/train/entropy", "ppo/train/value_loss", "ppo/train/explained_var"):
        assert key in metrics, key


def test_logprobs_alone_and_inside_a_padded_batch_agree():
    module, tokenizer = _module(seed=1)
    rollout = module.rollout(["the movie", "i watched this film last night and"])
    seq, attn, p = rollout["sequences"], rollout["attention_mask"], rollout["prompt_length"]
    with torch.no_grad():
        batch_logprobs, _, _ = module.policy_pass(seq, attn, p)
        # the first (shorter) prompt on its own, without its left padding
        pad = int((attn[0, :p] == 0).sum())
        alone_seq, alone_attn = seq[:1, pad:], attn[:1, pad:]
        alone_logprobs, _, _ = module.policy_pass(alone_seq, alone_attn, p - pad)
    mask = rollout["response_mask"][0].bool()
    torch.testing.assert_close(alone_logprobs[0][mask], batch_logprobs[0][mask], atol=1e-5, rtol=1e-5)
    logits = module.policy.lm(input_ids=alone_seq).logits
    torch.testing.assert_close(response_logprobs(logits, alone_seq, p - pad)[0][mask], alone_logprobs[0][mask],
                               atol=1e-5, rtol=1e-5)


def test_rollouts_are_samples_of_the_policy_that_scores_them():
    """k1 and k3 are both unbiased for KL(π‖π0) only when the responses are drawn from π as the
    scoring forward pass computes it (left padding, no stray token_type_ids, no forced tokens):
    their means then agree, and are positive. Generating from a different model breaks this."""
    from rcollapse.maths.ppo_objective import kl_per_token

    module, _ = _module(seed=3)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in module.policy.lm.parameters():  # π ≠ π0
            parameter.add_(0.1 * torch.randn_like(parameter))
    rng = np.random.default_rng(0)
    prompts = [review_prompt(rng) for _ in range(64)]
    k1, k3 = [], []
    for _ in range(20):
        rollout = module.rollout(prompts)
        seq, attn, mask, p = (rollout[k] for k in ("sequences", "attention_mask", "response_mask", "prompt_length"))
        with torch.no_grad():
            logprobs, _, _ = module.policy_pass(seq, attn, p)
            ref_logprobs = module.reference_logprobs(seq, attn, p)
        k1.append((kl_per_token(logprobs, ref_logprobs, "k1") * mask).sum(1))
        k3.append((kl_per_token(logprobs, ref_logprobs, "k3") * mask).sum(1))
    k1, k3 = torch.cat(k1), torch.cat(k3)
    standard_error = float((k1 - k3).std() / len(k1) ** 0.5)
    assert float(k3.mean()) > 0.05
    assert abs(float(k1.mean() - k3.mean())) < 4 * standard_error + 0.02, (float(k1.mean()), float(k3.mean()))


def test_a_policy_with_dropout_scores_its_rollout_deterministically(monkeypatch):
    """GPT-2 from the hub has dropout 0.1: the module turns it off (as TRL does), so before the first
    optimiser step the first minibatch's log-probs equal the rollout's (ratio 1) and no dropout
    module is active, in the policy or its value head."""
    from rcollapse.models.dropout import active_dropout
    from rcollapse.stages import ppo_module

    module, _ = _module(seed=4, dropout=0.1, batch_size=8, ppo_epochs=1, num_minibatches=2)
    assert active_dropout(module.policy) == []
    seen = {}
    original = ppo_module.clipped_policy_loss

    def first_minibatch_ratio(logprobs, old_logprobs, advantages, mask, clip_range):
        if "ratio" not in seen:  # the first call comes before any optimiser step
            seen["ratio"] = (logprobs.detach() - old_logprobs).exp()[mask.bool()]
            seen["active"] = active_dropout(module.policy)
        return original(logprobs, old_logprobs, advantages, mask, clip_range)

    monkeypatch.setattr(ppo_module, "clipped_policy_loss", first_minibatch_ratio)
    rng = np.random.default_rng(0)
    prompts = [review_prompt(rng) for _ in range(8)]
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(prompts, batch_size=8, collate_fn=list))
    assert seen["active"] == []
    torch.testing.assert_close(seen["ratio"], torch.ones_like(seen["ratio"]), atol=1e-6, rtol=0)
    assert float(trainer.callback_metrics["ppo/train/clipfrac"]) < 0.5


def test_with_dropout_left_on_the_ratio_would_be_noise():
    """The check above can fail: the same policy in train mode with dropout 0.1 gives π/π_old ≠ 1
    for one and the same sequence."""
    tokenizer = build_tiny_tokenizer_for_generation()
    torch.manual_seed(4)
    policy = PolicyWithValueHead(build_tiny_gpt2(tokenizer, n_embd=32, n_layer=1, n_head=2, dropout=0.1)).train()
    enc = tokenizer(["the movie was", "a film"], return_tensors="pt", padding=True, add_special_tokens=False)
    first, _ = policy(enc["input_ids"], enc["attention_mask"])
    second, _ = policy(enc["input_ids"], enc["attention_mask"])
    assert not torch.allclose(first, second, atol=1e-4)


def test_sizes_are_computed_once_and_a_batch_that_does_not_divide_is_refused():
    from rcollapse.stages.ppo_module import PPOIterationSizes, PPOSizeError

    sizes = PPOIterationSizes(batch_size=32, num_minibatches=4, ppo_epochs=4)
    assert (sizes.minibatch_size, sizes.optimizer_steps) == (8, 16)
    with pytest.raises(PPOSizeError, match=r"stage\.batch_size=30 does not divide into "
                                           r"stage\.module\.num_minibatches=4 equal minibatches"):
        PPOIterationSizes(batch_size=30, num_minibatches=4, ppo_epochs=4)
    with pytest.raises(PPOSizeError, match=r"stage\.module\.ppo_epochs must be a positive integer"):
        PPOIterationSizes(batch_size=32, num_minibatches=4, ppo_epochs=0)


def test_an_iteration_takes_exactly_the_computed_number_of_optimizer_steps():
    """The trainer's step budget (iterations × optimizer_steps) ends after exactly that many
    iterations: 3 iterations of a batch of 12 in 3 minibatches, 2 epochs = 6 steps each."""
    module, _ = _module(seed=5, batch_size=12, ppo_epochs=2, num_minibatches=3)
    rng = np.random.default_rng(0)
    prompts = [review_prompt(rng) for _ in range(12 * 5)]
    calls = []
    original = module.training_step

    def counted_training_step(batch, batch_idx):
        calls.append(len(batch))
        return original(batch, batch_idx)

    module.training_step = counted_training_step
    trainer = L.Trainer(max_steps=3 * module.sizes.optimizer_steps, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(prompts, batch_size=12, collate_fn=list, drop_last=True))
    assert calls == [12, 12, 12] and trainer.global_step == 18
