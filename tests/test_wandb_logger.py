"""logger=wandb gives an offline W&B run holding the config, the metrics and the figures."""

from rcollapse.pipeline import run
from tests.conftest import FAST_TRAINING, compose_config
from tests.wandb_records import run_contents_when_written as run_contents


def test_offline_wandb_run_has_config_metrics_and_images(tmp_path):
    cfg = compose_config(["logger=wandb", "utility=adaptive", *FAST_TRAINING], tmp_path)
    run(cfg)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "one offline run per job"
    contents = run_contents(next(runs[0].glob("run-*.wandb")))
    assert {"utility", "model", "dataset", "trainer", "seed"} <= contents["config"]
    logged = contents["history"] | contents["summary"]
    logged |= {key.rsplit("/", 1)[0] for key in logged if key.endswith("/_type")}  # images
    for key in ("rm/train/loss", "rm/val/pair_acc", "rm/test/open_closed_distance",
                "rm/figures/rewards_by_rank_test", "rm/figures/rewards_over_training",
                "rm/val/open_rewards", "rm/val/closed_rewards"):  # reward histograms
        assert key in logged, key
    from rcollapse.config.resolvers import git_commit

    assert f"commit-{git_commit()}" in contents["tags"] and "stage-reward" in contents["tags"]
    images = list((runs[0] / "files" / "media" / "images").rglob("*.png"))
    assert len(images) >= 3


def test_offline_wandb_run_of_the_ppo_stage_holds_its_metrics_and_sample_table(tmp_path, ppo_run):
    from tests.test_ppo_stage import SMALL as PPO_SMALL

    # ppo_run's cache holds the SFT policy and the offline ensemble: only the PPO run itself is new
    run(compose_config(["logger=wandb", *PPO_SMALL, f"paths.cache_dir={ppo_run / 'cache'}"], tmp_path))
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    contents = run_contents(next(runs[0].glob("run-*.wandb")))
    logged = contents["history"] | contents["summary"]
    logged |= {key.rsplit("/", 1)[0] for key in logged if key.endswith("/_type")}  # tables and images
    for key in ("ppo/train/score", "ppo/train/kl", "ppo/train/weighted_kl", "ppo/test/judge_mean",
                "ppo/test/judge_mean_ref", "ppo/samples"):
        assert key in logged, key
    assert "stage-ppo" in contents["tags"]
