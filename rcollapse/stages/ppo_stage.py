"""``stage=ppo``: variance-weighted-KL PPO against its vanilla twin (Banerjee & Gopalan, Section 5).

Builds the policy (and a frozen reference copy), the prompts, the reward ensemble (from
``stage.ensemble_path``, or trained once offline and shared by every job), runs PPO
(:class:`~rcollapse.stages.ppo_module.VarianceKLPPOModule`), then lets the judge score the
policy's and the reference policy's responses to the test prompts. Writes ``metrics.json``
(``ppo/train/*`` of the last iteration, ``ppo/final/*`` their means over the last
``stage.final_window`` iterations, ``ppo/test/judge_mean`` and ``ppo/test/judge_mean_ref``),
``ppo_judged_samples.csv`` (every judged response with gold, proxy, σ²; ``ppo/test/uq/*`` in
``metrics.json``: does σ² track the reward's error there), ``ppo_history.csv`` (every iteration's metrics; every ``stage.judge_every_n_updates`` iterations the
over-optimisation point ``ppo/eval/{proxy_mean,judge_mean,kl}``: proxy and gold scores of the same
responses and their KL from π0), ``ppo_samples.csv`` (prompts, responses, scores, weights at
intervals), ``figures/ppo_training.png`` (score, KL and β over training, and proxy and gold against
KL) and ``judge_scores.json``. ``resume=true`` continues from ``checkpoints/last.ckpt`` (policy, value
head, optimiser, KL controller, RNG, history and samples).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import logging
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rcollapse.analysis.ppo_report import plot_training
from rcollapse.analysis.uncertainty_quality import judged_samples_quality
from rcollapse.config.checks import ConfigError
from rcollapse.config.resolvers import config_choice
from rcollapse.models.ensemble_artifact import (
    OutdatedArtifactError,
    load_ensemble,
    read_ensemble_meta,
)
from rcollapse.models.judges import batch_ranges, judge_in_batches
from rcollapse.models.policy import PolicyWithValueHead, frozen_reference
from rcollapse.models.sft_warmup import sft_warmup
from rcollapse.runs.atomic_files import atomic_writer, write_json_atomic
from rcollapse.runs.checkpoint_files import checkpoint_callback
from rcollapse.runs.checkpointed_metrics import metrics_after_fit
from rcollapse.runs.device import choose_device
from rcollapse.runs.training_run import (
    build_loggers,
    build_trainer,
    final_metrics,
    frozen_modules_in_eval_mode,
    log_final_metrics,
    resolve_ckpt_path,
    resuming_quietly,
)
from rcollapse.stages.ppo_history import PPOHistory
from rcollapse.stages.ppo_module import PPOIterationSizes

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
# bump when the ensemble stage's code changes what an offline ensemble is (a new key: retrained)
OFFLINE_ENSEMBLE_FORMAT = 5  # 5: the lexical (ngram) backbone, adjectives held out of training


@dataclass(frozen=True)
class EnsembleSource:
    """Where this PPO run's reward ensemble comes from, known before anything trains: a saved
    artifact (``stage.ensemble_path``), or the shared offline one with its composed config."""

    num_heads: int
    path: Path | None = None
    offline_config: DictConfig | None = None


def compose_offline_ensemble_config(cfg: DictConfig) -> DictConfig:
    """The config ``run.py stage=ensemble <stage.ensemble_overrides>`` composes, composed here in a
    private Hydra (the running app's, if any, is restored afterwards)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    overrides = ["stage=ensemble", *[str(o) for o in cfg.stage.ensemble_overrides],
                 f"paths.cache_dir={cfg.paths.cache_dir}"]
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            return compose("config", overrides=overrides)
    finally:
        restore_gh_from_backup(backup)


def offline_ensemble_key(ensemble_cfg: DictConfig) -> str:
    """The cache key of an offline ensemble: everything that shapes it (the composed ensemble
    stage, its data and model groups, the seed, the trainer's hardware settings) and the format
    version, so that a changed default or override never reuses a stale ensemble."""
    shaping = {name: OmegaConf.to_container(ensemble_cfg[name], resolve=True) for name in ("stage", "dataset", "model")}
    shaping["seed"] = ensemble_cfg.seed
    trainer = OmegaConf.to_container(ensemble_cfg.trainer, resolve=False)  # interpolations of keyed parts
    trainer.pop("default_root_dir", None)  # the run dir, not a setting
    shaping["trainer"] = trainer
    shaping["format"] = OFFLINE_ENSEMBLE_FORMAT
    return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_choice(cfg: DictConfig) -> str:
    choice = config_choice("model")
    return f"model={choice}" if choice != "unknown" else f"model.name_or_path={cfg.model.get('name_or_path')}"


def ensemble_source(cfg: DictConfig) -> EnsembleSource:
    """Check where the ensemble comes from and that ``stage.module.reward_head`` is one of its heads,
    before the SFT warm-up or any training. Only the offline policy (``model.offline_policy``) may
    fall back to the offline ensemble: its prompts and responses are the generated reviews that
    ensemble was trained on; a hub policy needs ``stage.ensemble_path``."""
    s = cfg.stage
    if s.ensemble_path:
        path = Path(str(s.ensemble_path)).expanduser()
        if not (path / "ensemble.json").exists():
            raise ConfigError(f"stage.ensemble_path: {path} is not a reward-ensemble artifact (no ensemble.json); "
                              "`python run.py stage=ensemble ...` writes one in its run dir, under ensemble/")
        try:
            meta = read_ensemble_meta(path)
        except OutdatedArtifactError as error:
            raise ConfigError(f"stage.ensemble_path: {error}") from error
        source = EnsembleSource(int(meta["num_heads"]), path=path)
    elif not cfg.model.get("offline_policy", False):
        raise ConfigError(
            f"stage.ensemble_path: null, and {model_choice(cfg)} is not the offline policy: the offline "
            "ensemble (a tiny encoder trained on generated reviews) would score this policy's responses "
            "with another tokenizer and domain. Train an ensemble first, e.g. `python run.py stage=ensemble "
            "dataset=pref_mix model=deberta hardware=gpu`, then pass stage.ensemble_path=<that run dir>/ensemble "
            "(or use model=tiny_gpt2 offline)")
    else:
        ensemble_cfg = compose_offline_ensemble_config(cfg)
        source = EnsembleSource(int(ensemble_cfg.stage.ensemble.num_heads), offline_config=ensemble_cfg)
    if s.module.kl_weight != "one" and source.num_heads < 2:
        where = (f"the ensemble at stage.ensemble_path={source.path} has" if source.path is not None
                 else "the offline ensemble (stage.ensemble.num_heads in stage.ensemble_overrides) has")
        raise ConfigError(f"stage.module.kl_weight: {where} {source.num_heads} head, and one head has no "
                          "variance: the KL weight would be 0. Use an ensemble of at least 2 heads, or ppo_arm=vanilla "
                          "(stage.module.kl_weight=one)")
    head = int(s.module.reward_head)
    if s.module.reward_combination == "head" and not 0 <= head < source.num_heads:
        raise ConfigError(f"stage.module.reward_head: must lie in [0, {source.num_heads - 1}] (the ensemble "
                          f"has {source.num_heads} heads), got {head}")
    return source


def shared_offline_ensemble(overrides, cache_dir: str, ensemble_cfg: DictConfig) -> Path:
    """The offline ensemble every PPO job of a sweep uses: trained once by ``run.py
    stage=ensemble`` (a subprocess, with ``overrides``: ``stage.ensemble_overrides``) into the
    cache (``cache_dir``: ``paths.cache_dir``), under a file lock, so that jobs starting together
    wait for one training instead of racing."""
    overrides = [str(o) for o in overrides]
    key = offline_ensemble_key(ensemble_cfg)
    root = Path(cache_dir) / "ppo_ensembles"
    run_dir = root / f"ensemble-{key}"
    artifact = run_dir / "ensemble"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"ensemble-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (artifact / "ensemble.json").exists():
            print(f"training the offline reward ensemble once, into {run_dir}")
            command = [sys.executable, str(REPO / "run.py"), "stage=ensemble", *overrides,
                       f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache_dir}",
                       "trainer.enable_progress_bar=false", "logger=csv",
                       "resume=true"]  # an attempt that failed part-way is continued, not refused
            proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
            if proc.returncode != 0 or not (artifact / "ensemble.json").exists():
                raise RuntimeError(f"training the offline ensemble failed ({' '.join(command)}):\n{proc.stderr[-3000:]}")
    return artifact


# ---- the steps of a PPO run ----------------------------------------------------------------------


def warm_up_policy(lm, tokenizer, sft_steps, sft_seed, cache_dir: Path) -> None:
    """The SFT warm-up of the policy on the generated review corpus (``model.sft_steps``; 0: none),
    cached under ``cache_dir/sft``."""
    if sft_steps:
        cached = sft_warmup(lm, tokenizer, int(sft_steps), seed=int(sft_seed), cache_dir=cache_dir / "sft")
        print(f"policy fitted to the generated review corpus ({'cached' if cached else 'fitted now'})")


def ensemble_path_for(source: EnsembleSource, overrides, cache_dir: str) -> Path:
    """The reward ensemble's artifact: ``stage.ensemble_path``, or the shared offline one (trained
    now if no job has yet)."""
    if source.path is not None:
        return source.path
    ensemble_path = shared_offline_ensemble(overrides, cache_dir, source.offline_config)
    log.warning("stage.ensemble_path is null: the offline policy is scored by the offline ensemble (trained on "
                "generated reviews) at %s", ensemble_path)
    return ensemble_path


def train(trainer, module, datamodule, ckpt: str | None) -> dict[str, float]:
    """PPO from step 0 or from ``ckpt``; the last iteration's callback metrics."""
    if ckpt:
        print(f"resuming from {ckpt}")
    with frozen_modules_in_eval_mode(), resuming_quietly(ckpt):  # the frozen reference policy
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    return final_metrics(metrics_after_fit(trainer, module, datamodule))  # also after a resume at the last step


@dataclass(frozen=True)
class Judged:
    """The trained and the reference policy's responses to the test prompts, with the judge's scores."""

    prompts: list[str]
    policy_texts: list[str]
    reference_texts: list[str]
    policy_scores: np.ndarray
    reference_scores: np.ndarray


def generate_in_batches(module, lm, prompts: list[str], batch_size: int, desc: str) -> list[str]:
    """``lm``'s responses to ``prompts``, ``batch_size`` prompts per generation (the same samples as
    one ``module.generate_texts(lm, prompts, batch_size)``), with a progress bar for many prompts."""
    texts: list[str] = []
    for start, stop in batch_ranges(len(prompts), batch_size, desc):
        texts += module.generate_texts(lm, prompts[start:stop], batch_size=batch_size)
    return texts


def judge_policies(module, judge, prompts: list[str], seed: int, device, batch_size: int = 64) -> Judged:
    """Judge the policy and the reference policy on the test prompts (sampling seeded by ``seed``;
    ``batch_size`` prompts per generation: ``stage.judge_batch_size``; the judge's own batches:
    ``judge.batch_size``)."""
    module.to(device)
    torch.manual_seed(seed)
    policy_texts = generate_in_batches(module, module.policy.lm, prompts, batch_size, "sampling the policy")
    reference_texts = generate_in_batches(module, module.reference, prompts, batch_size, "sampling the reference")
    judged = judge_in_batches(judge, prompts, policy_texts, desc="judging the policy")
    judged_ref = judge_in_batches(judge, prompts, reference_texts, desc="judging the reference")
    return Judged(prompts, policy_texts, reference_texts, judged, judged_ref)


def judge_prompts(test_prompts: list[str], num_prompts: int | None) -> list[str]:
    """The over-optimisation curve's prompts: the first ``stage.judge_num_prompts`` test prompts
    (null: every one)."""
    return list(test_prompts) if num_prompts is None else list(test_prompts[:int(num_prompts)])


def ppo_metrics(train_metrics: dict[str, float], history: PPOHistory, final_window: int,
                judged: Judged) -> dict[str, float]:
    """``ppo/train/*`` of the last iteration, ``ppo/final/*`` (means over the last ``final_window``),
    ``ppo/test/judge_*`` and ``ppo/test/uq/*`` (σ² on the judged responses)."""
    scores, scores_ref = judged.policy_scores, judged.reference_scores
    metrics = {**{k: v for k, v in train_metrics.items() if k.startswith("ppo/train/")},
               **history.final_means(final_window),
               "ppo/test/judge_mean": float(scores.mean()), "ppo/test/judge_mean_ref": float(scores_ref.mean()),
               "ppo/test/judge_std": float(scores.std()), "ppo/test/judge_std_ref": float(scores_ref.std()),
               # how many test prompts were judged, and the judge mean's own sampling error (std / sqrt(n))
               "ppo/test/judge_num_prompts": float(scores.size),
               "ppo/test/judge_sem": float(scores.std(ddof=1) / np.sqrt(scores.size)) if scores.size > 1 else float("nan")}
    if history.judged:  # does σ² know where the reward is wrong on the responses PPO leads to?
        rows = history.judged
        quality = judged_samples_quality([r["gold"] for r in rows], [r["mean"] for r in rows],
                                         [r["variance"] for r in rows], [r["proxy"] for r in rows],
                                         [r["policy"] for r in rows], [r["step"] for r in rows])
        metrics.update({f"ppo/test/uq/{k}": v for k, v in quality.items() if np.isfinite(v)})
    return metrics


def kl_calibration_metrics(controller) -> dict[str, float]:
    """The β the run ended on (``ppo/beta_final``) and, for an adaptive controller frozen after its
    calibration (``stage.kl_controller.freeze_after``: the paper's KL matching, Banerjee & Gopalan
    Appendix, "β such that the KL divergence from the reference policy is roughly the same for
    both methods"), ``ppo/beta_calibrated`` (the fixed β of the rest of the run; absent if the run
    ended before the freeze), ``ppo/kl_target`` and ``ppo/calibration_iterations``."""
    metrics = {"ppo/beta_final": float(controller.value)}
    freeze_after = getattr(controller, "freeze_after", None)
    if freeze_after is not None:
        metrics.update({"ppo/kl_target": float(controller.target), "ppo/calibration_iterations": float(freeze_after)})
        if controller.frozen:
            metrics["ppo/beta_calibrated"] = float(controller.value)
    return metrics


def write_outputs(output_dir: Path, judged: Judged, ensemble_path: Path, variance_weighted: bool,
                  samples: list[dict], history: PPOHistory, metrics: dict[str, float]) -> None:
    """``judge_scores.json``, ``ppo_samples.csv``, ``ppo_history.csv``, ``ppo_judged_samples.csv``
    and ``figures/ppo_training.png`` (rank 0 only)."""
    write_json_atomic(output_dir / "judge_scores.json",
        {"prompts": judged.prompts, "policy": judged.policy_texts, "reference": judged.reference_texts,
         "policy_scores": judged.policy_scores.tolist(), "reference_scores": judged.reference_scores.tolist(),
         "ensemble": str(ensemble_path), "variance_weighted": variance_weighted}, indent=1)
    # samples and history come back from the checkpoint on resume: these files cover the whole run
    with atomic_writer(output_dir / "ppo_samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "prompt", "response", "score", "variance", "weight"])
        writer.writeheader()
        writer.writerows(samples)
    history.write_csv(output_dir / "ppo_history.csv")
    if history.judged:
        history.write_judged_csv(output_dir / "ppo_judged_samples.csv")
    plot_training(history.rows, output_dir / "figures" / "ppo_training.png",
                  {"policy": metrics["ppo/test/judge_mean"], "reference": metrics["ppo/test/judge_mean_ref"]})


def log_outputs(loggers, metrics: dict[str, float], samples: list[dict], step: int) -> None:
    """``ppo/test/*`` through every logger, and the samples as a table where the logger has tables (W&B)."""
    log_final_metrics(loggers, {k: v for k, v in metrics.items() if k.startswith("ppo/test/")}, step)
    for logger in loggers:
        if hasattr(logger, "log_table") and samples:
            logger.log_table("ppo/samples", columns=list(samples[0]), data=[list(r.values()) for r in samples])


def run_ppo_stage(cfg: DictConfig, output_dir: Path) -> dict[str, float]:
    s = cfg.stage
    # every size and source is settled before the SFT warm-up, the ensemble or a download
    sizes = PPOIterationSizes(int(s.batch_size), int(s.module.num_minibatches), int(s.module.ppo_epochs))
    source = ensemble_source(cfg)
    steps_per_batch = sizes.optimizer_steps
    num_updates, final_window = int(s.num_updates), int(s.final_window)
    vanilla = s.module.kl_weight == "one"
    cache_dir = cfg.paths.cache_dir
    device = choose_device(cfg.trainer.get("accelerator"))  # where the policies are judged, the ensemble scores

    # build: the policy (warmed up) and its frozen reference, the ensemble, the judge, the prompts, the module
    tokenizer = instantiate(cfg.model.tokenizer)
    lm = instantiate(cfg.model.policy, tokenizer=tokenizer)
    warm_up_policy(lm, tokenizer, cfg.model.get("sft_steps", 0), cfg.model.get("sft_seed", 0), Path(cache_dir))
    policy = PolicyWithValueHead(lm)
    reference = frozen_reference(lm)
    ensemble_path = ensemble_path_for(source, s.ensemble_overrides, cache_dir)
    # PPO's reward and its σ² both on stage.ensemble_scale: raw (the paper's) or normalised
    ensemble = load_ensemble(ensemble_path, device=device, scale=str(s.ensemble_scale))
    judge = instantiate(cfg.judge)
    datamodule = instantiate(cfg.dataset, batch_size=sizes.batch_size, shuffle_seed=cfg.seed,
                             optimizer_steps_per_batch=steps_per_batch, tokenizer=tokenizer)
    module = instantiate(s.module, policy=policy, reference=reference, tokenizer=tokenizer, scorer=ensemble.score,
                         batch_size=sizes.batch_size,
                         optimizer=instantiate(s.optimizer), kl_controller=instantiate(s.kl_controller))
    datamodule.setup("fit")
    judge_batch = int(s.get("judge_batch_size", 64))
    history = PPOHistory(judge, judge_prompts(datamodule.prompts["test"], s.judge_num_prompts),
                         int(s.judge_every_n_updates), num_updates=num_updates, judge_seed=int(cfg.seed),
                         batch_size=judge_batch)
    # a checkpoint is taken after a whole PPO iteration (its optimiser steps done), as intended
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    checkpoints = checkpoint_callback(output_dir / "checkpoints", int(s.checkpoint_every_n_updates) * steps_per_batch)
    trainer = build_trainer(cfg, [checkpoints, history], build_loggers(cfg),
                            max_steps=num_updates * steps_per_batch, max_epochs=-1,
                            val_check_interval=None, check_val_every_n_epoch=None, gradient_clip_val=None,
                            log_every_n_steps=1)  # every PPO iteration

    # train, judge, write
    train_metrics = train(trainer, module, datamodule, resolve_ckpt_path(cfg, output_dir))
    judged = judge_policies(module, judge, datamodule.prompts["test"], cfg.seed, device, judge_batch)
    metrics = ppo_metrics(train_metrics, history, final_window, judged)
    metrics.update(kl_calibration_metrics(module.kl_controller))
    if trainer.is_global_zero:
        write_outputs(output_dir, judged, ensemble_path, not vanilla, module.samples, history, metrics)
    log_outputs(trainer.loggers, metrics, module.samples, trainer.global_step)
    print(f"PPO ({'vanilla' if vanilla else 'variance-weighted'} KL): judge {metrics['ppo/test/judge_mean']:.3f} "
          f"vs reference {metrics['ppo/test/judge_mean_ref']:.3f}; final KL {metrics.get('ppo/final/kl', float('nan')):.3f} "
          f"(mean of the last {final_window} iterations); "
          f"outputs in {output_dir}")
    return final_metrics(metrics)
