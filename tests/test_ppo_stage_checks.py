"""stage=ppo refuses bad settings before anything trains, naming the whole key; only the offline
policy falls back to the offline ensemble; that ensemble's cache key is what shapes it."""

import re

import pytest

from rcollapse.config.checks import ConfigError
from rcollapse.pipeline import run
from rcollapse.stages import ppo_stage
from tests.conftest import compose_config

TINY = ["stage=ppo", "stage.batch_size=16", "stage.num_updates=2", "model.sft_steps=5",
        "trainer.enable_progress_bar=false", "stage.ensemble_overrides=['stage.ensemble.num_heads=3']"]


def _refused(overrides, tmp_path, monkeypatch):
    """The error of a run with ``overrides``; fails the test if any training started."""

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the config was checked")

    monkeypatch.setattr(ppo_stage, "sft_warmup", no_training)
    monkeypatch.setattr(ppo_stage, "shared_offline_ensemble", no_training)
    with pytest.raises(ConfigError) as err:
        run(compose_config([*TINY, *overrides], tmp_path))
    return str(err.value)


@pytest.mark.parametrize("override, key, choices", [
    ("stage.module.kl_estimator=k2", "stage.module.kl_estimator", "k1, k3"),
    ("stage.module.reward_combination=median", "stage.module.reward_combination", "head, mean, min, mean_minus_std"),
    ("stage.module.kl_weight=var", "stage.module.kl_weight", "one, std, variance"),
    ("stage.module.max_new_tokens=0", "stage.module.max_new_tokens", ">= 1"),
    ("stage.module.num_minibatches=0", "stage.module.num_minibatches", ">= 1"),
    ("stage.kl_controller.beta=-0.1", "stage.kl_controller.beta", ">= 0"),
    ("+stage.kl_controller.freeze_after=-1", "stage.kl_controller.freeze_after", ">= 0 or null"),
])
def test_a_bad_ppo_choice_fails_before_any_training_naming_key_and_choices(override, key, choices, tmp_path,
                                                                           monkeypatch):
    message = _refused([override], tmp_path, monkeypatch)
    assert re.match(rf"{re.escape(key)}: ", message), message
    assert choices in message


def test_a_batch_that_does_not_divide_into_minibatches_is_refused_naming_both_keys(tmp_path, monkeypatch):
    message = _refused(["stage.batch_size=30", "stage.module.num_minibatches=4"], tmp_path, monkeypatch)
    assert "stage.batch_size=30 does not divide into stage.module.num_minibatches=4" in message


def test_a_reward_head_the_offline_ensemble_does_not_have_is_refused_before_it_trains(tmp_path, monkeypatch):
    message = _refused(["stage.module.reward_head=3"], tmp_path, monkeypatch)
    assert message.startswith("stage.module.reward_head: must lie in [0, 2] (the ensemble has 3 heads), got 3")
    assert not (tmp_path / "cache").exists()  # neither the SFT warm-up nor the ensemble ran


def test_a_reward_head_a_saved_ensemble_does_not_have_is_refused(tmp_path, monkeypatch):
    artifact = tmp_path / "ensemble"
    artifact.mkdir()
    (artifact / "ensemble.json").write_text('{"version": 2, "num_heads": 10, "normalisation": {}}')
    message = _refused([f"stage.ensemble_path={artifact}", "stage.module.reward_head=10"], tmp_path, monkeypatch)
    assert message.startswith("stage.module.reward_head: must lie in [0, 9] (the ensemble has 10 heads)")
    message = _refused([f"stage.ensemble_path={tmp_path / 'nothing'}"], tmp_path, monkeypatch)
    assert message.startswith("stage.ensemble_path: ") and "no ensemble.json" in message
    (artifact / "ensemble.json").write_text('{"version": 1, "num_heads": 10}')  # before the normalisation
    message = _refused([f"stage.ensemble_path={artifact}"], tmp_path, monkeypatch)
    assert message.startswith("stage.ensemble_path: ") and "version-1" in message
    assert "re-run `python run.py stage=ensemble`" in message


@pytest.mark.parametrize("stage, model, fits", [("reward", "gpt2", "model=tiny|minilm|deberta"),
                                                ("ensemble", "tiny_gpt2", "model=tiny|minilm|deberta"),
                                                ("ppo", "tiny", "model=tiny_gpt2|gpt2")])
def test_a_model_group_that_does_not_fit_the_stage_is_refused_naming_the_ones_that_do(stage, model, fits, tmp_path):
    # stage=ppo chooses its own model default: the override comes after it
    with pytest.raises(ConfigError) as err:
        run(compose_config([f"stage={stage}", f"model={model}"], tmp_path))
    assert str(err.value).startswith("model: ") and fits in str(err.value)


def test_model_dropout_takes_true_or_false_only(tmp_path):
    with pytest.raises(ConfigError, match=r"^model\.dropout: must be true .* or false .*got 'sometimes'"):
        run(compose_config(["model.dropout=sometimes"], tmp_path))


def test_a_hub_policy_without_an_ensemble_path_is_refused_not_scored_by_the_offline_ensemble(tmp_path, monkeypatch):
    message = _refused(["model=gpt2"], tmp_path, monkeypatch)
    assert message.startswith("stage.ensemble_path: null, and model.name_or_path=openai-community/gpt2 is not "
                              "the offline policy")
    assert "stage.ensemble_path=<that run dir>/ensemble" in message and "stage=ensemble" in message


def test_the_offline_ensemble_key_follows_the_composed_config_not_the_override_strings(tmp_path, monkeypatch):
    def key(*overrides):
        cfg = compose_config([*TINY, f"stage.ensemble_overrides={list(overrides)}"], tmp_path)
        return ppo_stage.offline_ensemble_key(ppo_stage.compose_offline_ensemble_config(cfg))

    default = key()
    assert key("stage.ensemble.head_lr=0.003") == default  # the default, spelt out: the same ensemble
    assert key("stage.ensemble.head_lr=0.004") != default
    assert key("dataset.temperature=0.2") != default  # the data shapes it too
    monkeypatch.setattr(ppo_stage, "OFFLINE_ENSEMBLE_FORMAT", ppo_stage.OFFLINE_ENSEMBLE_FORMAT + 1)
    assert key() != default


def test_a_changed_config_default_gives_a_new_offline_ensemble_key(tmp_path, monkeypatch):
    """What the old key (a hash of the override strings) missed: a default changed in conf/."""
    import shutil

    cfg = compose_config(TINY, tmp_path)
    before = ppo_stage.offline_ensemble_key(ppo_stage.compose_offline_ensemble_config(cfg))
    conf = tmp_path / "repo" / "conf"
    shutil.copytree(ppo_stage.REPO / "conf", conf, symlinks=True)
    stage_file = conf / "ensemble_heads" / "offline.yaml"  # the default phase-2 schedule
    stage_file.write_text(stage_file.read_text().replace("head_epochs: 10", "head_epochs: 11"))
    monkeypatch.setattr(ppo_stage, "REPO", tmp_path / "repo")
    assert ppo_stage.offline_ensemble_key(ppo_stage.compose_offline_ensemble_config(cfg)) != before


def test_ppo_arm_is_an_ordinary_group_with_a_default(tmp_path):
    """`ppo_arm=vanilla` without `+`; an arm's settings override the stage's own."""
    assert compose_config(["stage=ppo"], tmp_path).stage.module.kl_weight == "variance"
    vanilla = compose_config(["stage=ppo", "ppo_arm=vanilla"], tmp_path)
    assert vanilla.stage.module.kl_weight == "one"
    paper = compose_config(["stage=ppo", "ppo_arm=paper_vanilla", "stage.optimizer.lr=2e-5"], tmp_path)
    assert (paper.stage.batch_size, paper.stage.kl_controller.beta, paper.stage.optimizer.lr) == (128, 0.2, 2e-5)


def _error_of(call) -> str:
    with pytest.raises(Exception) as err:
        call()
    return str(err.value)


def test_every_ppo_error_names_a_key_that_exists_in_the_composed_config(tmp_path):
    """Six messages named `stage.ppo.*` keys that do not exist; each named key must be a real one."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    from rcollapse.maths import ppo_objective as po
    from rcollapse.models.reward_model import RewardOutput
    from rcollapse.runs.training_run import NonFiniteLossError
    from tests.test_ppo_module import _module

    cfg = compose_config(["stage=ppo", "ppo_arm=small_vanilla"], tmp_path)  # the adaptive controller's keys too
    scores = torch.zeros(2, 3)
    messages = {
        "stage.module.kl_estimator": _error_of(lambda: po.kl_per_token(scores, scores, "k2")),
        "stage.module.kl_weight": _error_of(lambda: po.kl_weight(scores[:, 0], "var")),
        "stage.module.reward_head": _error_of(lambda: po.combine_heads(scores, "head", head=3)),
        "stage.module.reward_combination": _error_of(lambda: po.combine_heads(scores, "median")),
        "stage.kl_controller.target": _error_of(lambda: po.AdaptiveKLController(0.1, target=0.0)),
    }

    def nan_scorer(prompts, responses):
        r = torch.full((len(prompts),), float("nan"))
        return RewardOutput(r[:, None], r, torch.ones_like(r))

    module, _ = _module(batch_size=4)
    module.scorer = nan_scorer
    module.optimizers = lambda: torch.optim.SGD(module.policy.parameters(), lr=0.0)
    rng = np.random.default_rng(0)
    from rcollapse.data.synthetic_reviews import review_prompt

    with pytest.raises(NonFiniteLossError) as err:
        module.training_step([review_prompt(rng) for _ in range(4)], 0)
    messages["stage.optimizer.lr"] = str(err.value)
    for key, message in messages.items():
        named = re.findall(r"\bstage\.[a-z_.]*[a-z_]", message)
        assert named == [key], (key, message)
        assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", key


def test_the_default_offline_ensemble_is_the_testbed_s_lexical_one(tmp_path):
    """stage=ppo's offline proxy: heads on the ngram backbone, started far apart, trained on the
    testbed's pairs (litotes only, adjectives held out): the ensemble whose σ² tracks its error."""
    ensemble = ppo_stage.compose_offline_ensemble_config(compose_config(["stage=ppo"], tmp_path))
    assert ensemble.model.backbone._target_ == "rcollapse.models.ngram_encoder.build_ngram_encoder"
    assert ensemble.stage.ensemble.head_init_scale == 30
    assert (ensemble.dataset.negatable, ensemble.dataset.held_out_adjectives) == ("positive", 4)


def test_variance_weighting_with_a_one_head_ensemble_is_refused(tmp_path, monkeypatch):
    """Issue 16, item 8: one head has no variance, so the KL weight would be 0."""
    artifact = tmp_path / "ensemble"
    artifact.mkdir()
    (artifact / "ensemble.json").write_text('{"version": 2, "num_heads": 1, "normalisation": {}}')
    message = _refused([f"stage.ensemble_path={artifact}"], tmp_path, monkeypatch)
    assert message.startswith(f"stage.module.kl_weight: the ensemble at stage.ensemble_path={artifact} has 1 head")
    message = _refused(["stage.ensemble_overrides=['stage.ensemble.num_heads=1']"], tmp_path, monkeypatch)
    assert message.startswith("stage.module.kl_weight: the offline ensemble (stage.ensemble.num_heads in "
                              "stage.ensemble_overrides) has 1 head")


@pytest.mark.parametrize(("override", "key"), [
    ("stage.ensemble.num_heads=1", "stage.ensemble.num_heads"),
    ("stage.ensemble.loss_threshold=-1", "stage.ensemble.loss_threshold"),
    ("stage.ensemble.loss_threshold=abc", "stage.ensemble.loss_threshold"),
    ("stage.ensemble.head_loss_threshold=0", "stage.ensemble.head_loss_threshold"),
    ("stage.ensemble.head_epochs=0", "stage.ensemble.head_epochs"),
    ("stage.ensemble.head_feature_fraction=1.5", "stage.ensemble.head_feature_fraction"),
    ("stage.ensemble.head_init_scale=-2", "stage.ensemble.head_init_scale"),
    ("stage.ensemble.head_lr_schedule=linear", "stage.ensemble.head_lr_schedule"),
])
def test_a_bad_ensemble_choice_fails_before_phase_one_naming_the_key(override, key, tmp_path, monkeypatch):
    """Issue 16, items 8 and 10: refused before any training (phase 1 is patched to fail if reached)."""
    from rcollapse.stages import ensemble_stage

    def never(*args, **kwargs):
        raise AssertionError("phase 1 ran")

    monkeypatch.setattr(ensemble_stage, "run_phase1", never)
    with pytest.raises(ConfigError) as err:
        run(compose_config(["stage=ensemble", override], tmp_path))
    assert str(err.value).startswith(f"{key}: must ")
