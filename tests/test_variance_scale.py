"""One sigma^2 scale for everything that consumes an ensemble (issue 25, items 1-3 and 6): the saved
ensemble scores on the raw scale (the heads as trained, the paper's: its Fig. 6 sigma^2 of 3-14) and
on the normalised one (each head z-scored over the training responses); stage.ensemble_scale picks
one for PPO and for the ensemble stage's report, which gives sigma^2 on both."""

import numpy as np
import pytest
import torch

from rcollapse.analysis.ensemble_report import variance_summary
from rcollapse.config.checks import ConfigError, validate_config
from rcollapse.models.ensemble_artifact import SCALES, load_ensemble, save_ensemble
from rcollapse.stages.ensemble_stage import scores_on_both_scales
from tests.conftest import compose_config
from tests.test_ensemble_normalisation import PROMPTS, RESPONSES, _tiny_model


def _by_hand_sample_variance(rows):
    """Σ (s_k − mean)² / (k − 1) per row, in plain Python: the reference."""
    out = []
    for row in rows:
        k = len(row)
        mean = sum(row) / k
        out.append(sum((s - mean) ** 2 for s in row) / (k - 1))
    return out


@pytest.fixture
def saved(tmp_path):
    tokenizer, model = _tiny_model(num_heads=4)
    model.fit_normalisation(torch.randn(256, 32) * 3 + 1)  # stands in for the training responses' features
    save_ensemble(model, tokenizer, tmp_path / "ensemble", max_length=64, head_seeds=[1, 2, 3])
    return tmp_path / "ensemble", model


def _raw_heads_by_hand(model, ensemble):
    """Each head's raw output w_k · f + b_k on the pooled features, by a plain matrix product."""
    batch = ensemble.collate.encode(PROMPTS, RESPONSES)
    with torch.no_grad():
        features = model.features(**batch).double()
    weight, bias = model.heads.weight.detach().double(), model.heads.bias.detach().double()
    return (features @ weight.T + bias).tolist()


def test_raw_sigma2_is_the_sample_variance_of_the_raw_heads(saved):
    path, model = saved
    ensemble = load_ensemble(path, scale="raw")
    raw_by_hand = _raw_heads_by_hand(model, ensemble)
    out = ensemble.score(PROMPTS, RESPONSES)
    np.testing.assert_allclose(out.scores.numpy(), raw_by_hand, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.mean.numpy(), [sum(r) / 4 for r in raw_by_hand], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.variance.numpy(), _by_hand_sample_variance(raw_by_hand), rtol=1e-4, atol=1e-6)
    # the heads' offsets (biases from -2 to 3) are in raw sigma^2: far above the normalised one
    normalised = ensemble.score(PROMPTS, RESPONSES, scale="normalised")
    assert float(out.variance.min()) > 2 * float(normalised.variance.max())


def test_normalised_scores_are_the_z_scored_raw_ones(saved):
    path, model = saved
    ensemble = load_ensemble(path)  # the default: normalised
    assert ensemble.scale == "normalised"
    mean, std = ensemble.meta["normalisation"]["mean"], ensemble.meta["normalisation"]["std"]
    raw_by_hand = _raw_heads_by_hand(model, ensemble)
    z_by_hand = [[(s - m) / d for s, m, d in zip(row, mean, std, strict=True)] for row in raw_by_hand]
    out = ensemble.score(PROMPTS, RESPONSES)
    np.testing.assert_allclose(out.scores.numpy(), z_by_hand, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.variance.numpy(), _by_hand_sample_variance(z_by_hand), rtol=1e-4, atol=1e-6)
    # the model's own forward (PPO's judged samples, diagnose) is the normalised scale
    with torch.no_grad():
        forward = model(**ensemble.collate.encode(PROMPTS, RESPONSES))
    np.testing.assert_allclose(forward.variance.numpy(), out.variance.numpy(), rtol=1e-5, atol=1e-6)


def test_a_scale_that_is_neither_is_refused_naming_the_key(saved):
    path, _ = saved
    with pytest.raises(ValueError, match=r"^stage\.ensemble_scale must be one of raw, normalised"):
        load_ensemble(path, scale="z")
    with pytest.raises(ValueError, match=r"^scale must be one of raw, normalised"):
        load_ensemble(path).score(PROMPTS, RESPONSES, scale="paper")
    assert SCALES == ("raw", "normalised")


def test_the_ensemble_stage_reports_sigma2_on_both_scales(saved):
    _, model = saved
    torch.manual_seed(0)
    chosen_z, rejected_z = torch.randn(50, 4), torch.randn(50, 4)

    class Module:  # what scores_on_both_scales reads of the stage's module
        reward_model = model

    both = scores_on_both_scales(Module, {"chosen": chosen_z, "rejected": rejected_z})
    mean, std = model.normalisation.mean, model.normalisation.std
    torch.testing.assert_close(both["raw"][0], chosen_z * std + mean)
    torch.testing.assert_close(both["normalised"][1], rejected_z)
    metrics = {}
    for scale, (c, r) in both.items():
        metrics.update(variance_summary(c, r, scale))
    for scale, (c, r) in both.items():
        by_hand = np.array(_by_hand_sample_variance(c.double().tolist()))
        diff = np.array(_by_hand_sample_variance((c - r).double().tolist()))
        assert metrics[f"ens/test/var_chosen_median_{scale}"] == pytest.approx(np.median(by_hand), rel=1e-5)
        assert metrics[f"ens/test/var_chosen_mean_{scale}"] == pytest.approx(by_hand.mean(), rel=1e-5)
        assert metrics[f"ens/test/var_chosen_p90_{scale}"] == pytest.approx(np.percentile(by_hand, 90), rel=1e-5)
        assert metrics[f"ens/test/var_diff_median_{scale}"] == pytest.approx(np.median(diff), rel=1e-5)
    assert metrics["ens/test/var_chosen_median_raw"] != pytest.approx(metrics["ens/test/var_chosen_median_normalised"])


# ---- the configs: which scale and beta each experiment runs with ---------------------------------


def test_ppo_study_composes_with_the_raw_scale_and_the_calibrated_paper_betas(tmp_path):
    cfg = compose_config(["experiment=ppo_study", "stage.ensemble_path=/some/ensemble"], tmp_path)
    s = cfg.stage
    assert s.ensemble_scale == "raw" and s.module.kl_weight == "one"  # the sweep's first arm: paper_vanilla
    controller = s.kl_controller
    assert controller._target_.endswith("AdaptiveKLController")
    assert (controller.beta, controller.target, controller.freeze_after) == (0.2, 1.3, 64)
    assert s.num_updates == 192 and s.batch_size == 128 and s.final_window <= 192 - 64
    aware = compose_config(["experiment=ppo_study", "stage.ensemble_path=/some/ensemble",
                            "ppo_arm=paper_variance_aware"], tmp_path)
    assert aware.stage.ensemble_scale == "raw" and aware.stage.module.kl_weight == "variance"
    assert not aware.stage.module.normalise_kl_weight  # beta multiplies sigma^2 itself, as in the paper
    assert aware.stage.kl_controller.beta == 0.05
    # one KL target and one calibration window for both arms: the paper's KL matching
    for key in ("_target_", "target", "horizon", "freeze_after"):
        assert aware.stage.kl_controller[key] == controller[key], key
    validate_config(cfg)
    validate_config(aware)


def test_the_ensemble_experiments_and_the_offline_defaults_keep_their_scales(tmp_path):
    assert compose_config(["experiment=ensemble_gemma"], tmp_path).stage.ensemble_scale == "raw"
    for overrides in (["stage=ensemble"], ["stage=ppo"], ["experiment=ensemble_gemma_offline"],
                      ["+sweep=ppo_study"], ["experiment=ppo_study_offline"]):
        assert compose_config(overrides, tmp_path).stage.ensemble_scale == "normalised", overrides


@pytest.mark.parametrize("overrides, key, words", [
    (["stage=ppo", "stage.ensemble_scale=paper"], "stage.ensemble_scale", "raw, normalised"),
    (["stage=ensemble", "stage.ensemble_scale=z"], "stage.ensemble_scale", "raw, normalised"),
    # a calibration that never ends: beta would never be fixed
    (["stage=ppo", "ppo_arm=paper_vanilla", "stage.num_updates=64"], "stage.kl_controller.freeze_after",
     "never be fixed"),
    # the final KL's window reaching back into the calibration
    (["stage=ppo", "ppo_arm=paper_vanilla", "stage.final_window=129"], "stage.final_window", "calibration"),
    # a calibration key on the fixed controller
    (["stage=ppo", "+stage.kl_controller.freeze_after=3"], "stage.kl_controller.freeze_after", "adaptive"),
])
def test_an_inconsistent_scale_or_calibration_is_refused_naming_the_key(overrides, key, words, tmp_path):
    with pytest.raises(ConfigError) as err:
        validate_config(compose_config(overrides, tmp_path))
    message = str(err.value)
    assert message.startswith(key) and words in message, message
