"""The PPO module on the tiny GPT-2: a toy reward rises, KL stays finite, π0 gets no gradient;
log-probs of a sequence alone and inside a padded batch agree."""

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from rcollapse.data.synthetic_reviews import review_prompt
from rcollapse.models.policy import (
    PolicyWithValueHead,
    build_tiny_gpt2,
    build_tiny_tokenizer_for_generation,
    frozen_reference,
    response_logprobs,
)
from rcollapse.models.reward_model import RewardOutput
from rcollapse.ppo_objective import FixedKLController
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


def _module(seed=0, **kwargs):
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer_for_generation()
    lm = build_tiny_gpt2(tokenizer, n_embd=32, n_layer=1, n_head=2)
    policy = PolicyWithValueHead(lm)
    reference = frozen_reference(lm)
    return VarianceKLPPOModule(policy, reference, tokenizer, toy_scorer,
                               lambda p: torch.optim.Adam(p, lr=3e-3), FixedKLController(0.05),
                               ppo_epochs=2, num_minibatches=2, **kwargs), tokenizer


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
    from rcollapse.ppo_objective import kl_per_token

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
