"""The PPO history's over-optimisation points: the same judged responses scored by the judge (gold)
and the optimised reward (proxy), their KL(π‖π0) against a hand computation, the rows' keys at the
judged iterations, and the history's round trip through the checkpoint state."""

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rcollapse.analysis.ppo_report import (
    EVAL_JUDGE,
    EVAL_JUDGE_REF,
    EVAL_KL,
    EVAL_PROXY,
    EVAL_PROXY_REF,
    overoptimisation_curve,
    plot_training,
)
from rcollapse.data.synthetic_reviews import review_prompt
from rcollapse.maths.ppo_objective import FixedKLController
from rcollapse.models.policy import (
    PolicyWithValueHead,
    build_tiny_gpt2,
    build_tiny_tokenizer_for_generation,
    frozen_reference,
)
from rcollapse.models.reward_model import RewardOutput
from rcollapse.stages.ppo_history import PPOHistory, sequence_kl
from rcollapse.stages.ppo_module import VarianceKLPPOModule

EVAL_KEYS = (EVAL_JUDGE, EVAL_JUDGE_REF, EVAL_PROXY, EVAL_PROXY_REF, EVAL_KL)


def two_head_scorer(prompts, responses):
    """Head 0: the number of words; head 1: the number of characters / 10."""
    words = torch.tensor([float(len(r.split())) for r in responses])
    chars = torch.tensor([len(r) / 10 for r in responses])
    scores = torch.stack([words, chars], 1)
    return RewardOutput(scores, scores.mean(1), scores.var(1))


class CountingJudge:
    """The gold: the share of words that start with a letter in a–m; remembers what it was shown."""

    def __init__(self):
        self.seen: list[list[str]] = []

    def score(self, prompts, responses):
        self.seen.append(list(responses))
        return [sum(w[0] in "abcdefghijklm" for w in r.split()) / max(len(r.split()), 1) for r in responses]


def _module(seed=0, batch_size=8, **kwargs):
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer_for_generation()
    lm = build_tiny_gpt2(tokenizer, n_embd=32, n_layer=1, n_head=2)
    kwargs = {"ppo_epochs": 1, "num_minibatches": 2, "reward_combination": "head", "reward_head": 1, **kwargs}
    return VarianceKLPPOModule(PolicyWithValueHead(lm), frozen_reference(lm), tokenizer, two_head_scorer,
                               lambda p: torch.optim.Adam(p, lr=3e-3), FixedKLController(0.05),
                               batch_size=batch_size, **kwargs)


def _prompts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [review_prompt(rng) for _ in range(n)]


def test_sequence_kl_is_the_sum_of_the_log_ratios_over_the_real_response_tokens():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-0.2, -3.0, -1.0]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, -0.5], [-0.7, -2.0, -9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])  # the second response ends after two tokens
    # (−1 + 1.5) + (−2 + 1) + 0 = −0.5 ; (−0.2 + 0.7) + (−3 + 2) = −0.5, its third token not counted
    torch.testing.assert_close(sequence_kl(logprobs, ref_logprobs, mask), torch.tensor([-0.5, -0.5]))


def _hand_kl(module, rollout) -> list[float]:
    """Each response's KL, one sequence at a time without padding: Σ_t log softmax(π) − log softmax(π0)
    at the sampled tokens, up to and including the first EOS."""
    seq, attn, p = rollout["sequences"], rollout["attention_mask"], rollout["prompt_length"]
    eos = module.tokenizer.eos_token_id
    kls = []
    for row, mask in zip(seq, attn, strict=True):
        pad = int((mask[:p] == 0).sum())
        response = row[p:].tolist()
        length = response.index(eos) + 1 if eos in response else len(response)
        ids = row[pad:p + length][None]
        with torch.no_grad():
            pi = torch.log_softmax(module.policy.lm(input_ids=ids).logits[0].double(), -1)
            pi0 = torch.log_softmax(module.reference(input_ids=ids).logits[0].double(), -1)
        start = p - pad  # the first response token's index in ids
        kls.append(sum(float(pi[t - 1, ids[0, t]] - pi0[t - 1, ids[0, t]]) for t in range(start, start + length)))
    return kls


def test_judged_responses_are_scored_by_gold_and_proxy_and_their_kl_matches_a_hand_computation():
    module = _module(seed=1)
    judge = CountingJudge()
    prompts = _prompts(12)
    history = PPOHistory(judge, prompts, judge_every_n_updates=1, judge_seed=7, batch_size=5)  # 3 chunks

    # π = π0: the KL of the policy's responses is exactly 0
    same = history.judged_responses(module, module.policy.lm)
    np.testing.assert_allclose(same.kl, 0.0, atol=1e-5)

    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in module.policy.lm.parameters():  # π ≠ π0
            parameter.add_(0.2 * torch.randn_like(parameter))
    judged = history.judged_responses(module, module.policy.lm)
    # the same responses, drawn again under the judge's seed, chunk by chunk, for the hand computation
    with torch.random.fork_rng():
        torch.manual_seed(7)
        rollouts = [module.rollout(prompts[i:i + 5]) for i in range(0, 12, 5)]
    texts = [t for r in rollouts for t in module.decode_responses(r)]
    assert judged.texts == texts and judge.seen[-1] == texts  # the judge saw exactly these responses
    hand = [k for r in rollouts for k in _hand_kl(module, r)]
    np.testing.assert_allclose(judged.kl, hand, rtol=1e-4, atol=1e-4)
    assert abs(float(np.mean(hand))) > 1e-3  # a real KL was measured, not 0
    # the proxy is the optimised reward (head 1: characters / 10) of the same responses
    np.testing.assert_allclose(judged.proxy, [len(t) / 10 for t in texts], rtol=1e-6)
    np.testing.assert_allclose(judged.gold, CountingJudge().score(prompts, texts))
    # the judge's sampling does not move the training's random stream
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    history.judged_responses(module, module.policy.lm)
    assert torch.equal(torch.rand(1), expected)


def test_the_reference_is_judged_with_kl_zero_and_without_the_module_s_stateful_score(monkeypatch):
    """The proxy comes straight from the scorer: the module's score() may fit state on its first
    call (a KL-weight scale from the first rollouts), which an evaluation must not preempt."""
    module = _module(seed=2)

    def refused(*args, **kwargs):
        raise AssertionError("the evaluation called the module's score()")

    monkeypatch.setattr(module, "score", refused)
    history = PPOHistory(CountingJudge(), _prompts(6), judge_every_n_updates=1)
    reference = history.judged_responses(module, module.reference)
    assert np.all(reference.kl == 0) and len(reference.proxy) == len(reference.gold) == 6
    assert not module.reference.training  # π0 stays in eval mode


def test_the_history_rows_carry_the_curve_at_the_judged_iterations_and_survive_the_state_round_trip(tmp_path):
    module = _module(seed=3)
    prompts = _prompts(8 * 5)
    history = PPOHistory(CountingJudge(), _prompts(6, seed=1), judge_every_n_updates=2, num_updates=4)
    trainer = L.Trainer(max_steps=4 * module.sizes.optimizer_steps, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[history])
    trainer.fit(module, DataLoader(prompts, batch_size=8, collate_fn=list, drop_last=True))
    assert [r["step"] for r in history.rows] == [0, 1, 2, 3]
    judged = [r["step"] for r in history.rows if EVAL_KL in r]
    assert judged == [0, 2, 3]  # every 2 iterations and the last
    for row in history.rows:
        if row["step"] in judged:
            assert all(np.isfinite(row[k]) for k in EVAL_KEYS), row
            assert row[EVAL_PROXY_REF] == history.reference_proxy and row[EVAL_JUDGE_REF] == history.reference_judge
        else:
            assert not any(k in row for k in EVAL_KEYS)
    assert EVAL_KL in trainer.callback_metrics and EVAL_PROXY in trainer.callback_metrics

    restored = PPOHistory(CountingJudge(), _prompts(6, seed=1), judge_every_n_updates=2, num_updates=4)
    restored.load_state_dict(torch.load(_saved(history.state_dict(), tmp_path), weights_only=False))
    assert restored.rows == history.rows
    assert (restored.reference_proxy, restored.reference_judge) == (history.reference_proxy, history.reference_judge)

    history.write_csv(tmp_path / "ppo_history.csv")
    import pandas as pd

    curve = overoptimisation_curve(pd.read_csv(tmp_path / "ppo_history.csv").to_dict("records"))
    assert curve["step"].tolist() == [-1, 0, 2, 3] and curve["kl"].iloc[0] == 0
    assert curve["proxy"].iloc[0] == pytest.approx(history.reference_proxy)
    assert curve["gold"].tolist()[1:] == pytest.approx([history.rows[s][EVAL_JUDGE] for s in (0, 2, 3)])
    assert plot_training(history.rows, tmp_path / "ppo_training.png").stat().st_size > 5000


def _saved(state, tmp_path):
    path = tmp_path / "state.pt"
    torch.save(state, path)
    return path


def test_the_judge_scores_in_its_own_batches_and_the_history_can_judge_every_prompt():
    """``judge.batch_size`` splits the judge's calls (the real judge's memory), not its scores;
    ``stage.judge_num_prompts: null`` (every test prompt) reaches the history whole."""
    from rcollapse.stages.ppo_stage import judge_prompts

    module, prompts = _module(seed=2), _prompts(11, seed=3)
    every = judge_prompts(prompts, None)
    assert every == prompts
    whole, chunked = CountingJudge(), CountingJudge()
    chunked.batch_size = 4
    a = PPOHistory(whole, every, judge_every_n_updates=1, judge_seed=5, batch_size=3).judged_responses(
        module, module.policy.lm)
    b = PPOHistory(chunked, every, judge_every_n_updates=1, judge_seed=5, batch_size=3).judged_responses(
        module, module.policy.lm)
    assert a.texts == b.texts and len(a.texts) == 11
    assert [len(s) for s in whole.seen] == [11] and [len(s) for s in chunked.seen] == [4, 4, 3]
    np.testing.assert_array_equal(a.gold, b.gold)
    np.testing.assert_allclose(b.gold, CountingJudge().score(prompts, b.texts))
