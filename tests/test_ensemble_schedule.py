"""experiment=ensemble_gemma on the paper's schedule (issue 25, item 3): phase 1 on a cosine over
its planned epoch, phase 2 for half an epoch, both planned by one rule from the configured data
and the global batch, the planned and run steps in metrics.json; FSDP for the full fine-tune."""

import csv
import json
import math
import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate

from rcollapse.config.checks import ConfigError, validate_config
from rcollapse.data.resumable_sampler import ResumableShuffleSampler
from rcollapse.models.ensemble_artifact import load_ensemble
from rcollapse.pipeline import run
from rcollapse.stages.ensemble_schedule import epoch_steps, phase2_steps, shards_weights
from tests.conftest import compose_config

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def world_size(cfg) -> int:
    return int(cfg.trainer.get("devices", 1)) * int(cfg.trainer.get("num_nodes", 1))


def test_ensemble_gemma_composes_on_the_paper_schedule(tmp_path):
    cfg = compose_config(["experiment=ensemble_gemma"], tmp_path)
    validate_config(cfg)
    e = cfg.stage.ensemble
    assert (e.epochs, e.lr_schedule, e.head_lr_schedule, e.head_epochs) == (1, "cosine", "cosine", 0.5)
    assert cfg.model.lr == e.head_lr == 1.0e-5 and cfg.stage.optimizer.weight_decay == 0.001
    # the global batch is the paper's 32: 8 per process on the node's 4 GPUs, both phases
    assert world_size(cfg) == 4 and cfg.dataset.batch_size * 4 == e.head_batch_size * 4 == 32
    pairs = cfg.dataset.num_pairs
    assert pairs == 132_000
    # phase 1: one epoch = the paper's 4,125 global steps; phase 2: half of it (the paper: 2,060)
    assert phase2_steps(pairs, cfg.dataset.batch_size, e.epochs, world_size(cfg)) == (4125, 4125)
    assert phase2_steps(pairs, e.head_batch_size, e.head_epochs, world_size(cfg)) == (4125, 2062)
    assert cfg.stage.max_steps >= 4125  # the cap does not cut the plan
    # 32-bit master weights: float32 weights, bf16 compute
    assert cfg.model.dtype == "float32" and cfg.trainer.precision == "bf16-mixed"


def test_the_paper_heads_on_the_default_data_plan_half_an_epoch(tmp_path):
    """ensemble_heads=paper on pref_mix's default 50,000 pairs at 32 on one process: 782 steps, not
    the 2,060 the file used to claim."""
    cfg = compose_config(["stage=ensemble", "dataset=pref_mix", "ensemble_heads=paper"], tmp_path)
    assert phase2_steps(cfg.dataset.num_pairs, cfg.stage.ensemble.head_batch_size, cfg.stage.ensemble.head_epochs,
                        world_size(cfg)) == (1563, 782)


@pytest.mark.parametrize("rows,batch,replicas", [(100, 7, 3), (132, 8, 4), (96, 8, 2), (5, 8, 4), (1000, 32, 1)])
def test_epoch_steps_count_the_training_samplers_batches(rows, batch, replicas):
    """The plan's steps per epoch = the batches each process's sampler gives in one epoch (the
    plain reference: iterate it)."""
    for rank in range(replicas):
        sampler = ResumableShuffleSampler(rows, seed=0, batch_size=batch, num_replicas=replicas, rank=rank)
        loader = torch.utils.data.DataLoader(list(range(rows)), batch_size=batch, sampler=sampler)
        assert epoch_steps(rows, batch, replicas) == len(list(loader))


def test_phase_one_epochs_and_schedule_are_checked_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^stage\.ensemble\.epochs: "):
        validate_config(compose_config(["stage=ensemble", "stage.ensemble.epochs=0"], tmp_path))
    with pytest.raises(ConfigError, match=r"^stage\.ensemble\.lr_schedule: "):
        validate_config(compose_config(["stage=ensemble", "stage.ensemble.lr_schedule=linear"], tmp_path))


def test_the_fsdp_hardware_builds_lightnings_strategy_wrapping_gemmas_layers(tmp_path):
    """FSDP needs GPUs (Lightning refuses strategy=fsdp with accelerator=cpu), so here: the config
    composes, the strategy is Lightning's own FSDPStrategy, and its wrap policy makes each of the
    real Gemma-2B's 18 decoder layers and its embedding a unit (meta tensors: nothing allocated)."""
    from lightning.pytorch.strategies import FSDPStrategy

    from rcollapse.models.architectures import build_from_architecture

    for hardware in ("a40x4_fsdp", "slurm_a40_fsdp"):
        cfg = compose_config(["experiment=ensemble_gemma", f"hardware={hardware}"], tmp_path)
        assert shards_weights(cfg.trainer.strategy) and cfg.trainer.precision == "bf16-mixed"
        strategy = instantiate(cfg.trainer.strategy)
        assert isinstance(strategy, FSDPStrategy)
    assert not shards_weights("ddp") and not shards_weights("auto")
    policy = strategy.kwargs["auto_wrap_policy"]  # Lightning's ModuleWrapPolicy of the layer classes
    gemma = build_from_architecture("google/gemma-2b-it", device="meta")
    units = [name for name, module in gemma.named_modules() if isinstance(module, tuple(policy._module_classes))]
    assert units == [f"layers.{i}" for i in range(18)]


TINY = [
    "stage=ensemble",
    "dataset.num_train=96",
    "dataset.num_val=16",
    "dataset.num_test_per_section=8",
    "dataset.batch_size=8",
    "stage.ensemble.num_heads=3",
    "stage.ensemble.epochs=1",
    "stage.ensemble.lr_schedule=cosine",
    "stage.ensemble.loss_threshold=null",
    "stage.ensemble.head_epochs=0.5",
    "stage.ensemble.head_batch_size=8",
    "stage.val_every_n_steps=4",
    "stage.checkpoint_every_n_steps=4",
    "model.lr=1e-3",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
]


def test_phase_one_lr_follows_a_cosine_and_both_phases_run_their_planned_steps(tmp_path):
    """96 pairs at 8: phase 1 plans 12 steps (one epoch) and stage.max_steps=8 cuts it, the lr on
    the 12-step cosine throughout; phase 2 plans round(0.5 x 12) = 6 and runs 6."""
    run(compose_config([*TINY, "stage.max_steps=8"], tmp_path))
    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ens/phase1/steps_planned"] == 12 and metrics["ens/phase1/steps_run"] == 8
    assert metrics["ens/phase2/steps_planned"] == 6 and metrics["ens/phase2/steps_run"] == 6
    assert metrics["ens/phase1/global_batch"] == metrics["ens/phase2/global_batch"] == 8
    meta = load_ensemble(out / "ensemble").meta
    assert (meta["phase1_steps"], meta["phase1_steps_planned"], meta["phase2_steps"], meta["phase2_steps_planned"]) \
        == (8, 12, 6, 6)
    rows = [r for r in csv.DictReader((out / "csv" / "metrics.csv").open()) if r.get("ens/train/lr")]
    lrs = [float(r["ens/train/lr"]) for r in rows]
    assert len(lrs) == 8 + 6
    # the closed form: lr_s = lr_0 (1 + cos(pi s / T)) / 2 over the planned T = 12 steps, not the 8 run
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * s / 12)) for s in range(8)]
    assert lrs[:8] == pytest.approx(expected, rel=1e-6)
    assert lrs[8:] == pytest.approx([3e-3] * 6)  # phase 2: ensemble_heads=offline's constant head_lr


def test_without_epochs_phase_one_keeps_its_constant_step_budget(tmp_path):
    run(compose_config([*[o for o in TINY if "stage.ensemble.epochs" not in o and "lr_schedule" not in o],
                        "stage.max_steps=5"], tmp_path))
    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ens/phase1/steps_planned"] == metrics["ens/phase1/steps_run"] == 5
    rows = [r for r in csv.DictReader((out / "csv" / "metrics.csv").open()) if r.get("ens/train/lr")]
    assert [float(r["ens/train/lr"]) for r in rows[:5]] == pytest.approx([1e-3] * 5)


@pytest.mark.slow
@pytest.mark.e2e
def test_under_ddp_the_plan_counts_the_global_batch(tmp_path):
    """hardware=cpu_ddp (2 processes, gloo; FSDP itself needs GPUs): 96 pairs at 8 per process are
    6 global steps an epoch; phase 2 (on rank-local cached features) plans 3 and runs them."""
    command = [sys.executable, "run.py", *TINY, "stage.max_steps=100", "hardware=cpu_ddp",
               f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    subprocess.run(command, cwd=REPO, check=True, timeout=600, capture_output=True)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["ens/phase1/steps_planned"] == metrics["ens/phase1/steps_run"] == 6
    assert metrics["ens/phase2/steps_planned"] == metrics["ens/phase2/steps_run"] == 3
    assert metrics["ens/phase1/global_batch"] == 16


def test_a_sharded_phase_one_hands_phase_two_a_whole_model_rebuilt_from_its_gathered_weights(tmp_path, monkeypatch):
    """The FSDP path of run_phase1 on CPU (FSDP itself needs GPUs): with the strategy taken for a
    sharding one, the weights come from the strategy's gathered state dict, every rank rebuilds the
    reward model and loads them from final.pt, and phase 2 trains on that new model."""
    from rcollapse.stages import ensemble_schedule, ensemble_stage

    rebuilt, trained = [], []
    real_run_phase1, real_run_phase2 = ensemble_stage.run_phase1, ensemble_stage.run_phase2

    def spy_phase1(run_, reward_model, *args, **kwargs):
        trained.append(reward_model)
        return real_run_phase1(run_, reward_model, *args, **kwargs)

    def spy_phase2(run_, reward_model, *args, **kwargs):
        rebuilt.append(reward_model)
        return real_run_phase2(run_, reward_model, *args, **kwargs)

    monkeypatch.setattr(ensemble_stage, "sharded", lambda strategy: True)
    monkeypatch.setattr(ensemble_schedule, "sharded", lambda strategy: True)
    monkeypatch.setattr(ensemble_stage, "run_phase1", spy_phase1)
    monkeypatch.setattr(ensemble_stage, "run_phase2", spy_phase2)
    run(compose_config([*TINY, "stage.max_steps=4"], tmp_path))
    saved = torch.load(tmp_path / "run" / "checkpoints" / "phase1" / "final.pt", weights_only=True)["state_dict"]
    assert saved and not any(k.startswith("reward_model.") for k in saved)
    model = rebuilt[0].state_dict()
    assert set(model) == set(saved)
    assert all(torch.equal(model[k], saved[k]) for k in saved)
    # a new model (the trained module would hold shards), carrying the trained weights
    assert rebuilt[0] is not trained[0]
    trained_state = trained[0].state_dict()
    assert all(torch.equal(model[k], trained_state[k]) for k in saved)


def test_phase_two_runs_under_ddp_when_phase_one_shards(tmp_path):
    from rcollapse.stages.ensemble_stage import ensemble_run

    cfg = compose_config(["experiment=ensemble_gemma", "logger=csv"], tmp_path)
    assert ensemble_run(cfg, tmp_path).phase2_strategy == "ddp"
    cfg = compose_config(["experiment=ensemble_gemma", "hardware=a40x4"], tmp_path)
    assert ensemble_run(cfg, tmp_path).phase2_strategy is None
