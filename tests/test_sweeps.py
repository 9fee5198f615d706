"""Sweeps that scale: DDP, the submitit launcher, failures, kill + resume, Slurm config, validation."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from rcollapse.config.checks import ConfigError
from rcollapse.pipeline import run
from tests.conftest import CONF, FAST_TRAINING, REPO, compose_config


def run_py(*args, timeout=600, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def report(*dirs) -> str:
    proc = subprocess.run([sys.executable, "-m", "rcollapse.report", *map(str, dirs)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.e2e
def test_ddp_two_cpu_processes_give_the_same_metric_keys(tmp_path):
    run_py(*FAST_TRAINING, f"hydra.run.dir={tmp_path / 'single'}")
    run_py(*FAST_TRAINING, "hardware=cpu_ddp", f"hydra.run.dir={tmp_path / 'ddp'}")
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert set(single) == set(ddp)
    assert (tmp_path / "ddp" / "train_ddp_process_1.log").exists()  # a second rank ran
    assert json.loads((tmp_path / "ddp" / "status.json").read_text())["status"] == "completed"


@pytest.mark.e2e
def test_submitit_local_multirun_with_a_failing_job_and_the_report(tmp_path):
    # eps=0 makes x_inv infinite at ties: that job fails, the other one must still finish.
    sweep = tmp_path / "sweep"
    proc = run_py("-m", "utility=x_inv,x", "utility.eps=0", "hydra/launcher=submitit_local",
                  f"hydra.sweep.dir={sweep}", *FAST_TRAINING, check=False)
    assert proc.returncode != 0  # the sweep says that a job failed ...
    assert (sweep / "1" / "metrics.json").exists()  # ... after the others finished
    failed = json.loads((sweep / "0" / "status.json").read_text())
    assert failed["status"] == "failed" and "NonFiniteLossError" in failed["traceback"]
    out = report(sweep)
    assert "Failed jobs" in out and "NonFiniteLossError" in out
    assert "completed" in out


@pytest.mark.e2e
def test_basic_launcher_goes_on_after_a_failure_unless_fail_fast(tmp_path):
    sweep = tmp_path / "on"
    proc = run_py("-m", "utility=x_inv,x", "utility.eps=0", f"hydra.sweep.dir={sweep}", *FAST_TRAINING,
                  check=False)
    assert proc.returncode != 0 and (sweep / "1" / "metrics.json").exists()

    sweep = tmp_path / "fail_fast"
    proc = run_py("-m", "utility=x_inv,x", "utility.eps=0", "fail_fast=true", f"hydra.sweep.dir={sweep}",
                  *FAST_TRAINING, check=False)
    assert proc.returncode != 0
    assert not (sweep / "1").exists()


def _checkpoint_step(path: Path) -> int:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)["global_step"]
    except Exception:  # being written
        return -1


@pytest.mark.e2e
def test_killed_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    overrides = ["utility=adaptive", "stage.max_steps=60", "stage.val_every_n_steps=20",
                 "stage.checkpoint_every_n_steps=5", "dataset.num_train=24",
                 "dataset.num_test=8", "dataset.batch_size=4",
                 "dataset.train_probe_size=4", "trainer.enable_progress_bar=false",
                 "trainer.log_every_n_steps=5"]
    reference = tmp_path / "reference"
    run_py(*overrides, f"hydra.run.dir={reference}")

    interrupted = tmp_path / "interrupted"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "run.py", *overrides, f"hydra.run.dir={interrupted}"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    last = interrupted / "checkpoints" / "last.ckpt"
    while proc.poll() is None:  # a run that never gets there is stopped by the test's timeout
        if last.exists() and 25 <= _checkpoint_step(last) < 60:
            os.killpg(proc.pid, signal.SIGKILL)  # mid-training, mid-epoch (6 steps per epoch)
            break
        time.sleep(0.02)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be interrupted"
    killed_at = _checkpoint_step(last)
    assert not (interrupted / "metrics.json").exists()

    resumed = run_py(*overrides, f"resume={interrupted}")
    assert f"resuming from {last}" in resumed.stdout
    assert _checkpoint_step(last) == 60 and killed_at < 60
    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((interrupted / "metrics.json").read_text())
    for key in ("rm/test/open_closed_distance", "rm/test/open_reward_rank3", "rm/train/closed_reward_rank5",
                "rm/val/loss", "rm/test/pair_acc"):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


def test_slurm_launcher_renders_the_submitit_parameters(tmp_path, monkeypatch):
    import submitit

    # No cluster here: submitit only checks that an `srun` is on PATH before it renders sbatch
    # files; nothing is submitted or run. (Issue 7 drives a real single-node Slurm cluster.)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    from hydra import compose, initialize_config_dir
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    from rcollapse.config.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["hardware=slurm_a40", "+sweep=utility_comparison",
                                           "hydra.launcher.partition=a40", "hardware.nodes=2"],
                      return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    for key in ("nodes", "gpus_per_node", "tasks_per_node"):  # interpolations of hardware.*
        launcher[key] = int(OmegaConf.select(cfg, launcher[key].strip("${}")))
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["gpus_per_node"], launcher["tasks_per_node"]) == (2, 4, 4)
    assert cfg.trainer.devices == 4 and cfg.trainer.num_nodes == 2 and cfg.trainer.strategy == "ddp"
    assert cfg.hydra.sweeper.params.utility == "x,x_inv,log,logsigmoid,adaptive"
    # Build submitit's executor the way hydra-submitit-launcher does, and render the sbatch file.
    executor = submitit.AutoExecutor(folder=str(tmp_path), cluster="slurm",
                                     slurm_max_num_timeout=launcher["max_num_timeout"])
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    skip = {"_target_", "submitit_folder", "max_num_timeout"}
    params = {k if k in base else f"slurm_{k}": v for k, v in launcher.items() if k not in skip}
    params["slurm_setup"] = ["export WANDB_MODE=online"]
    executor.update_parameters(**params)
    script = executor._executor._make_submission_file_text("python run.py", "uid")
    for line in ("#SBATCH --partition=a40", "#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --ntasks-per-node=4", "#SBATCH --cpus-per-task=8", "#SBATCH --time=720",
                 "#SBATCH --mem=160GB", "export WANDB_MODE=online"):
        assert line in script, line


def test_both_sweeps_compose(tmp_path):
    for name, keys in (("utility_comparison", {"utility"}), ("utility_seeds", {"utility", "seed"}),
                       ("ppo_variance_kl_small", {"ppo_arm", "stage.module.reward_head", "seed"}),
                       ("ppo_variance_kl", {"ppo_arm", "stage.module.reward_head", "seed", "model",
                                            "dataset", "judge"})):
        GlobalHydra.instance().clear()
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=[f"+sweep={name}"], return_hydra_config=True)
        assert set(cfg.hydra.sweeper.params) == keys


@pytest.mark.parametrize(
    ("overrides", "key"),
    [(["utility=power", "utility.gamma=1.5"], "utility.gamma"),
     (["utility=log", "utility.eps=-0.1"], "utility.eps"),
     (["stage.max_steps=0"], "stage.max_steps")],
)
def test_invalid_values_fail_before_training_naming_the_key(overrides, key, tmp_path):
    cfg = compose_config([*FAST_TRAINING, *overrides], tmp_path)
    from hydra.errors import InstantiationException

    with pytest.raises((ConfigError, ValueError, InstantiationException), match=key.replace(".", r"\.")):
        run(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.e2e
def test_unknown_stage_lists_the_choices():
    proc = run_py("stage=bogus", check=False, timeout=120)
    assert proc.returncode != 0 and "Could not find 'stage/bogus'" in proc.stderr and "reward" in proc.stderr


@pytest.mark.e2e
def test_runs_started_together_get_their_own_dirs(tmp_path):
    # Default run dirs (no hydra.run.dir): outputs/runs/<date>/<H-M-S-microseconds>.
    args = ["stage.max_steps=1", "stage.val_every_n_steps=1", "dataset.num_train=4",
            "dataset.num_test=2", "dataset.train_probe_size=2",
            "trainer.enable_progress_bar=false", f"paths.cache_dir={tmp_path}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "run.py", *args], cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    dirs = [line.split("outputs in ", 1)[1].strip() for out in outs for line in out.splitlines()
            if "outputs in " in line]
    assert len(dirs) == 2 and dirs[0] != dirs[1]
    for d in dirs:
        assert (Path(d) / "metrics.json").exists()
        shutil.rmtree(d)  # they live in the repo's outputs/


@pytest.mark.e2e
def test_the_small_ppo_sweep_runs_both_arms_on_one_shared_ensemble_and_the_report_compares_them(tmp_path):
    """`-m +sweep=ppo_variance_kl_small`, cut to one head and one seed and a few iterations: both
    arms run on the offline ensemble trained once, and the report prints the arms' table."""
    from tests.test_ppo_stage import SMALL

    shrink = [o for o in SMALL if not o.startswith(("stage=", "stage.num_updates"))]
    sweep_dir = tmp_path / "sweep"
    proc = run_py("-m", "+sweep=ppo_variance_kl_small", "stage.module.reward_head=0", "seed=0",
                  "stage.num_updates=3", *shrink, f"paths.cache_dir={tmp_path / 'cache'}",
                  f"hydra.sweep.dir={sweep_dir}")
    assert proc.stdout.count("training the offline reward ensemble once") == 1
    arms = []
    for job in ("0", "1"):
        metrics = json.loads((sweep_dir / job / "metrics.json").read_text())
        assert metrics["ppo/train/beta"] != pytest.approx(0.05)  # the arm's adaptive controller, not the default β
        arms.append(json.loads((sweep_dir / job / "judge_scores.json").read_text())["variance_weighted"])
    assert arms == [False, True]
    printed = report(sweep_dir)
    assert "PPO policies by arm" in printed and "final KL = ppo/final/kl" in printed
    for policy in ("reference", "vanilla", "variance-aware"):
        assert any(line.startswith(policy) for line in printed.splitlines()), policy
    assert (sweep_dir / "ppo_judge_distribution.png").exists()
