"""``stage=ppo``: variance-weighted-KL PPO against its vanilla twin (Banerjee & Gopalan, Section 5).

Builds the policy (and a frozen reference copy), the prompts, the reward ensemble (from
``stage.ensemble_path``, or trained once offline and shared by every job), runs PPO
(:class:`~rcollapse.stages.ppo_module.VarianceKLPPOModule`), then lets the judge score the
policy's and the reference policy's responses to the test prompts. Writes ``metrics.json``
(``ppo/train/*`` of the last iteration, ``ppo/final/*`` their means over the last
``stage.final_window`` iterations, ``ppo/test/judge_mean`` and ``ppo/test/judge_mean_ref``),
``ppo_history.csv`` (every iteration's metrics), ``ppo_samples.csv`` (prompts, responses, scores,
weights at intervals), ``figures/ppo_training.png`` (score, KL and β over training) and
``judge_scores.json``. ``resume=true`` continues from ``checkpoints/last.ckpt`` (policy, value
head, optimiser, KL controller, RNG, history and samples).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from rcollapse.analysis.ppo_report import plot_training
from rcollapse.models.ensemble_artifact import load_ensemble
from rcollapse.models.policy import PolicyWithValueHead, frozen_reference
from rcollapse.models.sft_warmup import sft_warmup
from rcollapse.stages.ppo_history import PPOHistory
from rcollapse.training_run import build_loggers, final_metrics, resolve_ckpt_path

REPO = Path(__file__).resolve().parents[2]


def shared_offline_ensemble(cfg: DictConfig) -> Path:
    """The offline ensemble every PPO job of a sweep uses: trained once by ``run.py
    stage=ensemble`` (a subprocess, with ``stage.ensemble_overrides``) into the cache, under a
    file lock, so that jobs starting together wait for one training instead of racing."""
    overrides = [str(o) for o in cfg.stage.ensemble_overrides]
    key = hashlib.sha256(json.dumps(overrides).encode()).hexdigest()[:16]
    root = Path(cfg.paths.cache_dir) / "ppo_ensembles"
    run_dir = root / f"ensemble-{key}"
    artifact = run_dir / "ensemble"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"ensemble-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (artifact / "ensemble.json").exists():
            print(f"training the offline reward ensemble once, into {run_dir}")
            command = [sys.executable, str(REPO / "run.py"), "stage=ensemble", *overrides,
                       f"hydra.run.dir={run_dir}", f"paths.cache_dir={cfg.paths.cache_dir}",
                       "trainer.enable_progress_bar=false", "logger=csv"]
            proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
            if proc.returncode != 0 or not (artifact / "ensemble.json").exists():
                raise RuntimeError(f"training the offline ensemble failed ({' '.join(command)}):\n{proc.stderr[-3000:]}")
    return artifact


def run_ppo_stage(cfg: DictConfig, output_dir: Path) -> dict[str, float]:
    s = cfg.stage
    tokenizer = instantiate(cfg.model.tokenizer)
    lm = instantiate(cfg.model.policy, tokenizer=tokenizer)
    if cfg.model.get("sft_steps", 0):
        cached = sft_warmup(lm, tokenizer, int(cfg.model.sft_steps), seed=int(cfg.model.get("sft_seed", 0)),
                            cache_dir=Path(cfg.paths.cache_dir) / "sft")
        print(f"policy fitted to the generated review corpus ({'cached' if cached else 'fitted now'})")
    policy = PolicyWithValueHead(lm)
    reference = frozen_reference(lm)
    ensemble_path = Path(str(s.ensemble_path)).expanduser() if s.ensemble_path else shared_offline_ensemble(cfg)
    device = "cuda" if torch.cuda.is_available() and str(cfg.trainer.get("accelerator")) in ("gpu", "cuda") else "cpu"
    ensemble = load_ensemble(ensemble_path, device=device)
    judge = instantiate(cfg.judge)
    steps_per_batch = int(s.module.ppo_epochs) * int(s.module.num_minibatches)
    datamodule = instantiate(cfg.dataset.datamodule, batch_size=int(s.batch_size), shuffle_seed=cfg.seed,
                             optimizer_steps_per_batch=steps_per_batch)
    module = instantiate(s.module, policy=policy, reference=reference, tokenizer=tokenizer, scorer=ensemble.score,
                         optimizer=instantiate(s.optimizer), kl_controller=instantiate(s.kl_controller))
    datamodule.setup("fit")
    history = PPOHistory(judge, datamodule.prompts["test"][:int(s.judge_num_prompts)], int(s.judge_every_n_updates),
                         num_updates=int(s.num_updates), judge_seed=int(cfg.seed))
    # a checkpoint is taken after a whole PPO iteration (its optimiser steps done), as intended
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    checkpoints = ModelCheckpoint(dirpath=str(output_dir / "checkpoints"), filename="step{step:06d}",
                                  auto_insert_metric_name=False, save_top_k=1, save_last=True,
                                  every_n_train_steps=int(s.checkpoint_every_n_updates) * steps_per_batch)
    trainer: L.Trainer = instantiate(cfg.trainer, max_steps=int(s.num_updates) * steps_per_batch, max_epochs=-1,
                                     val_check_interval=None, check_val_every_n_epoch=None, gradient_clip_val=None,
                                     log_every_n_steps=1,  # every PPO iteration
                                     logger=build_loggers(cfg), callbacks=[checkpoints, history])
    ckpt = resolve_ckpt_path(cfg, output_dir)
    if ckpt:
        print(f"resuming from {ckpt}")
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    train_metrics = final_metrics(trainer.callback_metrics)

    # judge the policy and the reference policy on the test prompts
    module.to(device)
    prompts = datamodule.prompts["test"]
    torch.manual_seed(cfg.seed)
    policy_texts = module.generate_texts(module.policy.lm, prompts)
    reference_texts = module.generate_texts(module.reference, prompts)
    judged = np.array(judge.score(prompts, policy_texts))
    judged_ref = np.array(judge.score(prompts, reference_texts))
    metrics = {**{k: v for k, v in train_metrics.items() if k.startswith("ppo/train/")},
               **history.final_means(int(s.final_window)),
               "ppo/test/judge_mean": float(judged.mean()), "ppo/test/judge_mean_ref": float(judged_ref.mean()),
               "ppo/test/judge_std": float(judged.std()), "ppo/test/judge_std_ref": float(judged_ref.std())}
    if trainer.is_global_zero:
        (output_dir / "judge_scores.json").write_text(json.dumps(
            {"prompts": prompts, "policy": policy_texts, "reference": reference_texts,
             "policy_scores": judged.tolist(), "reference_scores": judged_ref.tolist(),
             "ensemble": str(ensemble_path), "variance_weighted": bool(s.module.variance_weighted)}, indent=1))
        # samples and history come back from the checkpoint on resume: these files cover the whole run
        with (output_dir / "ppo_samples.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "prompt", "response", "score", "variance", "weight"])
            writer.writeheader()
            writer.writerows(module.samples)
        history.write_csv(output_dir / "ppo_history.csv")
        plot_training(history.rows, output_dir / "figures" / "ppo_training.png",
                      {"policy": metrics["ppo/test/judge_mean"], "reference": metrics["ppo/test/judge_mean_ref"]})
    for logger in trainer.loggers:
        logger.log_metrics({k: v for k, v in metrics.items() if k.startswith("ppo/test/")}, step=trainer.global_step)
        if hasattr(logger, "log_table") and module.samples:
            logger.log_table("ppo/samples", columns=list(module.samples[0]), data=[list(r.values()) for r in module.samples])
    print(f"PPO ({'variance-weighted' if s.module.variance_weighted else 'vanilla'} KL): judge {metrics['ppo/test/judge_mean']:.3f} "
          f"vs reference {metrics['ppo/test/judge_mean_ref']:.3f}; final KL {metrics.get('ppo/final/kl', float('nan')):.3f} "
          f"(mean of the last {int(s.final_window)} iterations); "
          f"outputs in {output_dir}")
    return final_metrics(metrics)
