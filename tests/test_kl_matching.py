"""KL matching as a tool: a KL weight normalised to mean 1 over the reference policy's rollouts
(β means the same for any ensemble), and an adaptive controller frozen after calibration that
brings two arms to the same final KL."""

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rcollapse.data.synthetic_reviews import review_prompt
from rcollapse.maths.ppo_objective import AdaptiveKLController, kl_weight
from rcollapse.models.reward_model import RewardOutput
from tests.test_ppo_module import FIRST_HALF, _module


def test_kl_weight_divided_by_its_reference_mean_has_mean_one_whatever_the_ensemble_scale():
    variance = torch.tensor([0.5, 1.0, 2.0, 4.5])
    for scale_of_ensemble in (1.0, 100.0):
        v = variance * scale_of_ensemble
        reference_mean = kl_weight(v, "variance").mean()
        torch.testing.assert_close(kl_weight(v, "variance", reference_mean), variance / variance.mean())
    torch.testing.assert_close(kl_weight(variance, "std", 2.0), variance.sqrt() / 2)


def test_adaptive_controller_freezes_after_calibration_and_checkpoints_its_count():
    controller = AdaptiveKLController(beta=0.1, target=1.0, horizon=10, freeze_after=3)
    values = [controller.update(current_kl=3.0, num_steps=1) for _ in range(5)]
    assert values[0] > 0.1 and values[2] > values[1] and values[3] == values[4] == values[2]
    restored = AdaptiveKLController(beta=0.1, target=1.0, horizon=10, freeze_after=3)
    restored.load_state_dict(controller.state_dict())
    assert restored.frozen and restored.update(10.0, 1) == values[2]
    with pytest.raises(ValueError, match=r"^stage\.kl_controller\.freeze_after must be >= 0"):
        AdaptiveKLController(0.1, 1.0, freeze_after=-1)


def varying_uncertainty_scorer(prompts, responses):
    """The toy reward of tests/test_ppo_module.py, with a variance that differs between responses
    (high for short ones) and a scale far from 1, as a real ensemble's is."""
    scores, variances = [], []
    for text in responses:
        words = text.split()
        scores.append(sum(w[0] in FIRST_HALF for w in words) / len(words) if words else 0.0)
        variances.append(40.0 / (1 + len(words)))
    r = torch.tensor(scores)
    return RewardOutput(r[:, None], r, torch.tensor(variances))


def _final_kl(module, prompts, iterations):
    trainer = L.Trainer(max_steps=iterations * module.sizes.optimizer_steps, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    kls = []
    original = module.log_dict

    def keep_kl(metrics, **kwargs):
        kls.append(metrics["ppo/train/kl"])
        return original(metrics, **kwargs)

    module.log_dict = keep_kl
    trainer.fit(module, DataLoader(prompts, batch_size=module.sizes.batch_size, collate_fn=list, drop_last=True))
    return float(np.mean(kls[-5:])), module


def test_a_shared_target_then_frozen_beta_matches_the_arms_final_kl():
    rng = np.random.default_rng(0)
    prompts = [review_prompt(rng) for _ in range(16 * 40)]
    finals = {}
    for arm, weighted in (("vanilla", False), ("variance_aware", True)):
        controller = AdaptiveKLController(beta=0.05, target=1.0, horizon=16, freeze_after=25)
        module, _ = _module(seed=7, batch_size=16, ppo_epochs=1, num_minibatches=1,
                            kl_weight="variance" if weighted else "one",
                            normalise_kl_weight=True)
        module.scorer, module.kl_controller = varying_uncertainty_scorer, controller
        finals[arm], module = _final_kl(module, prompts, iterations=30)
        assert controller.frozen
        if weighted:  # normalised on the reference rollouts: w has mean 1 there, not 40/(1 + length)
            assert 1.0 < float(module.kl_weight_scale) < 40.0
    gap = abs(finals["vanilla"] - finals["variance_aware"]) / min(finals.values())
    assert min(finals.values()) > 0.2 and gap < 0.25, finals
