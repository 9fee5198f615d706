"""``stage=ensemble``: the 10-head frozen-backbone reward ensemble (Banerjee & Gopalan, Section 4).

Phase 1 trains the backbone with one head on the Bradley–Terry loss until the loss (an
exponential moving average over steps) reaches ``loss_threshold`` (0.3, as the paper) or its
planned steps run out (``stage.max_steps``, or ``stage.ensemble.epochs`` of the pairs; the lr
constant or on a cosine: :mod:`rcollapse.stages.ensemble_schedule`). Phase 2 adds
``num_heads − 1`` heads, independently initialised from recorded seeds, freezes the backbone
and trains all heads with the summed loss: on pooled features computed once and cached on disk
(``cache_features: true``), or through the frozen backbone on every step (``false``);
``freeze_backbone: false`` trains the backbone too. After phase 2 each head's mean and std over
the training responses (chosen and rejected) are fitted into the model, so that a score is
``(s_k − mean_k) / std_k`` on the normalised scale (the pairwise loss leaves a head's offset and
scale arbitrary) and ``s_k`` on the raw one, the paper's;
``stage.ensemble_scale`` picks the one this stage reports on. Then every head scores the
evaluation pairs: the accuracy table per section (Table 1), the variance histograms (Fig. 6),
``metrics.json`` keys ``ens/test/*`` (σ² on both scales: ``ens/test/var_*_raw``,
``ens/test/var_*_normalised``), and the saved ensemble
(``ensemble/``) that the PPO stage loads. ``stage.ensemble.artifact=DIR`` skips training and
evaluates a saved ensemble (e.g. on ``dataset=rewardbench``).

Resume (``resume=true``): phase 1 continues from ``checkpoints/phase1/last.ckpt`` or, once
finished, from its saved weights; phase 2 from ``checkpoints/phase2/last.ckpt``; the normalisation
is fitted again after phase 2 either way (it is never in a phase-2 checkpoint's training).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from rcollapse.analysis.ensemble_report import (
    accuracy_notes,
    accuracy_table,
    ensemble_metrics,
    plot_variance_histograms,
    variance_by_section,
    variance_summary,
    write_accuracy_table,
)
from rcollapse.analysis.uncertainty_report import uncertainty_report
from rcollapse.data.preference_datamodule import PairFeatureDataModule
from rcollapse.models.ensemble_artifact import load_ensemble, save_ensemble
from rcollapse.models.feature_cache import cached_pair_features, pair_features
from rcollapse.models.reward_model import RewardModel
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
    wants_resume,
)
from rcollapse.stages.common_checks import dropout_enabled
from rcollapse.stages.ensemble_schedule import (
    HEAD_LR_SCHEDULES,
    LR_SCHEDULES,
    cosine_schedule,
    phase1_plan,
    phase1_state_dict,
    phase2_steps,
    sharded,
    shards_weights,
)


class LossThresholdStop(Callback):
    """Stop training once ``monitor`` (logged every step) is at or below ``threshold``."""

    def __init__(self, threshold: float | None, monitor: str = "ens/train/loss_ema", min_steps: int = 10):
        self.threshold, self.monitor, self.min_steps = threshold, monitor, min_steps
        self.reached = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if self.threshold is None or value is None or trainer.global_step < self.min_steps:
            return
        if float(value) <= self.threshold:
            self.reached = True
            trainer.should_stop = True


def head_init_seeds(base_seed: int, num_heads: int) -> list[int]:
    """Seeds of heads 1..k−1 (head 0 comes from phase 1)."""
    return [int(base_seed) * 1000 + j for j in range(1, num_heads)]


def widen_heads(model: RewardModel, num_heads: int, seeds: list[int], feature_fraction: float = 1.0,
                init_scale: float = 1.0) -> RewardModel:
    """A reward model on the same backbone with ``num_heads`` heads: head 0 copied from ``model``
    (it reads every feature), the others drawn like ``nn.Linear``'s default (U(±1/√H)), times
    ``init_scale``, from their own seeds, each reading a random ``feature_fraction`` of the pooled
    features (drawn from its seed after its weights; 1.0: every feature, the paper's heads)."""
    if not init_scale > 0:
        raise ValueError(f"stage.ensemble.head_init_scale must be > 0, got {init_scale}")
    if not 0 < feature_fraction <= 1:
        raise ValueError(f"stage.ensemble.head_feature_fraction must be in (0, 1], got {feature_fraction}")
    wide = RewardModel(model.backbone, num_heads=num_heads, pooling=model.pooling)
    hidden = model.heads.in_features
    bound = init_scale / math.sqrt(hidden)
    mask = torch.ones(num_heads, hidden)
    read = max(1, round(feature_fraction * hidden))
    with torch.no_grad():
        wide.heads.weight[0] = model.heads.weight[0]
        wide.heads.bias[0] = model.heads.bias[0]
        for j, seed in enumerate(seeds, start=1):
            g = torch.Generator().manual_seed(seed)
            wide.heads.weight[j] = (torch.rand(hidden, generator=g, dtype=torch.float64) * 2 - 1).to(wide.heads.weight.dtype) * bound
            wide.heads.bias[j] = float((torch.rand(1, generator=g, dtype=torch.float64) * 2 - 1) * bound)
            if read < hidden:
                mask[j] = 0
                mask[j, torch.randperm(hidden, generator=g)[:read]] = 1
    wide.set_feature_mask(mask)
    return wide


def bootstrap_counts(num_pairs: int, num_heads: int, seed: int) -> torch.Tensor:
    """[N, k]: how often each head's bootstrap resample (N draws with replacement) holds each pair."""
    rng = np.random.default_rng(seed)
    return torch.tensor(np.stack([np.bincount(rng.integers(num_pairs, size=num_pairs), minlength=num_pairs)
                                  for _ in range(num_heads)], axis=1), dtype=torch.float32)


@dataclass(frozen=True)
class EnsembleRun:
    """What the two phases need, read from the config once by the runner (:func:`ensemble_run`):
    ``stage.ensemble``'s values and sizes, and the factories of the module, its optimizer and the
    trainer (the run's loggers), and the checkpoint a phase resumes from."""

    output_dir: Path
    num_heads: int
    loss_threshold: float | None  # phase 1
    model_lr: float  # phase 1: model.lr
    epochs: float | None  # phase 1: its planned length in epochs of the training pairs (None: max_steps)
    lr_schedule: str  # phase 1: constant | cosine over its planned steps
    max_steps: int  # phase 1: stage.max_steps, the plan without epochs, a cap on the steps run with them
    phase2_strategy: str | None  # phase 2's trainer.strategy when phase 1's shards the weights (FSDP): ddp
    dropout: bool
    checkpoint_every_n_steps: int | None
    resume: bool
    seed: int
    max_length: int
    model_name: str  # recorded in the artifact
    freeze_backbone: bool  # phase 2
    cache_features: bool
    feature_cache_dir: str
    feature_device: torch.device  # where the cached features are computed
    head_init_seed: int
    head_feature_fraction: float
    head_init_scale: float
    head_lr: float
    head_lr_schedule: str
    head_epochs: float
    head_batch_size: int
    head_loss_threshold: float | None
    ensemble_scale: str  # the scale of the stage's report: raw | normalised (stage.ensemble_scale)
    bootstrap: bool
    bootstrap_seed: int
    make_module: Callable  # stage.module, given the reward model, optimizer, ... per phase
    make_optimizer: Callable  # stage.optimizer (a partial), given lr per phase
    make_trainer: Callable  # (callbacks, **trainer overrides) -> a Trainer with the run's loggers
    resume_from: Callable[[str], str | None]  # a phase's checkpoint dir -> the checkpoint to resume from

    def checkpoints(self, phase: str):
        """The phase's checkpoints, in ``checkpoints/<phase>``."""
        return checkpoint_callback(self.output_dir / "checkpoints" / phase, self.checkpoint_every_n_steps)


def ensemble_run(cfg: DictConfig, output_dir: Path) -> EnsembleRun:
    """Every config value the phases read, read here, and their factories built (the loggers too)."""
    e = cfg.stage.ensemble
    loggers = build_loggers(cfg)
    return EnsembleRun(
        output_dir=output_dir, num_heads=int(e.num_heads), loss_threshold=e.loss_threshold,
        model_lr=float(cfg.model.lr), dropout=dropout_enabled(cfg.model.get("dropout", True)),
        epochs=None if e.get("epochs") is None else float(e.epochs),
        lr_schedule=str(e.get("lr_schedule", "constant")), max_steps=int(cfg.stage.max_steps),
        phase2_strategy="ddp" if shards_weights(cfg.trainer.get("strategy")) else None,
        checkpoint_every_n_steps=cfg.stage.checkpoint_every_n_steps, resume=wants_resume(cfg), seed=cfg.seed,
        max_length=int(cfg.dataset.max_length),
        model_name=cfg.model.get("name_or_path", cfg.model.backbone._target_),
        freeze_backbone=bool(e.freeze_backbone), cache_features=bool(e.cache_features),
        feature_cache_dir=e.feature_cache_dir, feature_device=choose_device(cfg.trainer.get("accelerator", "auto")),
        head_init_seed=e.head_init_seed, head_feature_fraction=float(e.get("head_feature_fraction", 1.0)),
        head_init_scale=float(e.get("head_init_scale", 1.0)), head_lr=float(e.head_lr),
        head_lr_schedule=str(e.get("head_lr_schedule", "constant")), head_epochs=float(e.head_epochs),
        head_batch_size=e.head_batch_size, head_loss_threshold=e.get("head_loss_threshold"),
        ensemble_scale=str(cfg.stage.get("ensemble_scale", "normalised")), bootstrap=bool(e.bootstrap),
        bootstrap_seed=int(e.bootstrap_seed),
        make_module=instantiate(cfg.stage.module, _partial_=True), make_optimizer=instantiate(cfg.stage.optimizer),
        make_trainer=functools.partial(build_trainer, cfg, logger=loggers),
        resume_from=functools.partial(resolve_ckpt_path, cfg, output_dir))


def run_phase1(run: EnsembleRun, reward_model, datamodule, rebuild: Callable | None = None):
    """Backbone + one head on the Bradley–Terry loss, to the loss threshold or the step budget
    (:func:`phase1_plan`), the lr constant or on a cosine over the planned steps. Returns the
    summary and the reward model: under FSDP a new one (``rebuild()``) that every rank loads from
    the saved ``final.pt``, since the trained module holds only this rank's shards."""
    done = run.output_dir / "checkpoints" / "phase1" / "final.pt"
    if run.resume and done.exists():
        saved = torch.load(done, map_location="cpu", weights_only=True)
        reward_model.load_state_dict(saved["state_dict"])
        print(f"phase 1 already finished ({saved['summary']}); continuing with phase 2")
        return saved["summary"], reward_model
    stop = LossThresholdStop(run.loss_threshold)
    trainer = run.make_trainer([run.checkpoints("phase1"), stop])
    batch = datamodule.batch_size
    planned, budget = phase1_plan(run.epochs, run.max_steps, len(datamodule.pairs("train")), batch,
                                  trainer.world_size)
    trainer.fit_loop.epoch_loop.max_steps = budget  # the trainer's max_steps, once its world size is known
    if run.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"stage.ensemble.lr_schedule must be one of {list(LR_SCHEDULES)}, got {run.lr_schedule!r}")
    optimizer = functools.partial(run.make_optimizer, lr=run.model_lr)
    module = run.make_module(reward_model=reward_model, optimizer=optimizer, freeze_backbone=False, dropout=run.dropout,
                             lr_scheduler=cosine_schedule(planned) if run.lr_schedule == "cosine" else None)
    print(f"phase 1: {planned} planned steps ({run.lr_schedule} lr {run.model_lr:g}, global batch "
          f"{batch * trainer.world_size} = {batch} x {trainer.world_size} processes)"
          + (f", cut to {budget} by stage.max_steps" if budget < planned else ""))
    ckpt = run.resume_from("checkpoints/phase1")
    if ckpt:
        print(f"resuming phase 1 from {ckpt}")
    with resuming_quietly(ckpt):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    summary = {"ens/phase1/steps": trainer.global_step, "ens/phase1/steps_run": trainer.global_step,
               "ens/phase1/steps_planned": planned, "ens/phase1/global_batch": batch * trainer.world_size,
               "ens/phase1/loss_ema": float(module.loss_ema),
               "ens/phase1/reached_threshold": float(stop.reached or (run.loss_threshold is not None
                                                                      and float(module.loss_ema) <= run.loss_threshold))}
    fit_metrics = final_metrics(metrics_after_fit(trainer, module, datamodule))  # also after a resume at the last step
    summary.update({k: v for k, v in fit_metrics.items() if k.startswith("ens/val/")})
    summary = {k.replace("ens/val/", "ens/phase1/val_"): v for k, v in summary.items()}
    state = phase1_state_dict(trainer, module)
    if trainer.is_global_zero:
        with atomic_writer(done, "wb") as handle:  # its presence means phase 1 is finished
            torch.save({"state_dict": state, "summary": summary}, handle)
    print(f"phase 1: {summary['ens/phase1/steps']} of {planned} planned steps, loss EMA {summary['ens/phase1/loss_ema']:.3f} "
          f"(threshold {run.loss_threshold}{', reached' if summary['ens/phase1/reached_threshold'] else ', not reached'})")
    if sharded(trainer.strategy):
        if rebuild is None:
            raise ValueError("phase 1 ran under FSDP: run_phase1 needs `rebuild` (a new reward model to load)")
        trainer.strategy.barrier("phase1 final.pt")
        reward_model = rebuild()
        reward_model.load_state_dict(torch.load(done, map_location="cpu", weights_only=True)["state_dict"])
    return summary, reward_model


def phase2_data(run: EnsembleRun, reward_model, tokenizer, datamodule, cache: bool):
    """The data of phase 2: cached pooled features, or the token batches themselves."""
    if not cache:
        return datamodule, {}
    reward_model.to(run.feature_device)
    features, hits = {}, {}
    for split in ("train", "val", "test"):
        features[split], hits[split] = cached_pair_features(
            reward_model, tokenizer, run.max_length, datamodule.pairs(split), datamodule.loader(split),
            run.feature_cache_dir, desc=f"backbone features ({split})")
    reward_model.to("cpu")
    print("pooled features: " + ", ".join(f"{s} {features[s][0].shape[0]} pairs ({'cache' if hits[s] else 'computed'})"
                                          for s in features))
    return PairFeatureDataModule(features, batch_size=run.head_batch_size, eval_batch_size=datamodule.eval_batch_size,
                                 shuffle_seed=run.seed), {"ens/phase2/features_from_cache": float(all(hits.values()))}


@torch.no_grad()
def fit_head_normalisation(reward_model: RewardModel, data, datamodule, normalise: bool = True) -> dict[str, float]:
    """Fit ``reward_model.normalisation`` to every training response (chosen and rejected of the
    training pairs): the cached pooled features of phase 2 (``data`` a :class:`PairFeatureDataModule`),
    or the backbone's features of the token batches. ``normalise=False`` sets the identity. Returns
    ``ens/phase2/*`` summaries of the raw heads: the range of their std and the variance over heads
    of their means (the offsets the normalisation removes)."""
    if isinstance(data, PairFeatureDataModule):
        chosen, rejected = data.features["train"]
    else:
        chosen, rejected = pair_features(reward_model, datamodule.loader("train"), desc="backbone features (train)")
    features = torch.cat([chosen, rejected])
    reward_model.normalisation.reset()
    reward_model.fit_normalisation(features)
    mean, std = reward_model.normalisation.mean.clone(), reward_model.normalisation.std.clone()
    if not normalise:
        reward_model.normalisation.set(torch.zeros_like(mean), torch.ones_like(std))
    summary = {"ens/phase2/normalised": float(normalise), "ens/phase2/normalisation_responses": float(features.size(0)),
               "ens/phase2/head_std_min": float(std.min()), "ens/phase2/head_std_max": float(std.max()),
               "ens/phase2/head_mean_var": float(mean.var()) if mean.numel() > 1 else 0.0}
    print(f"head normalisation ({'applied' if normalise else 'off: identity'}) over {features.size(0)} training "
          f"responses: std {summary['ens/phase2/head_std_min']:.4g}..{summary['ens/phase2/head_std_max']:.4g}, "
          f"variance of the heads' means {summary['ens/phase2/head_mean_var']:.4g}")
    return summary


def run_phase2(run: EnsembleRun, reward_model, tokenizer, datamodule):
    """k heads on the frozen backbone: ``head_epochs`` (a fraction allowed) at ``head_lr`` with a
    constant or cosine schedule, stopped early once every head's loss EMA is at or below
    ``head_loss_threshold`` (null: never), then the heads' normalisation is fitted."""
    seeds = head_init_seeds(run.head_init_seed, run.num_heads)
    ensemble = widen_heads(reward_model, run.num_heads, seeds, run.head_feature_fraction, run.head_init_scale)
    freeze = run.freeze_backbone
    data, info = phase2_data(run, ensemble, tokenizer, datamodule, cache=freeze and run.cache_features)
    weights = None
    if run.bootstrap:
        weights = bootstrap_counts(len(datamodule.pairs("train")), run.num_heads, run.bootstrap_seed)
    batch = int(run.head_batch_size) if isinstance(data, PairFeatureDataModule) else datamodule.batch_size
    # phase 1 under FSDP: the heads (and a frozen, whole backbone) train under DDP
    strategy = {} if run.phase2_strategy is None else {"strategy": run.phase2_strategy}
    stop = LossThresholdStop(run.head_loss_threshold, monitor="ens/train/loss_ema_max_head")
    trainer = run.make_trainer([run.checkpoints("phase2"), stop], max_epochs=-1, check_val_every_n_epoch=1, **strategy)
    per_epoch, total = phase2_steps(len(datamodule.pairs("train")), batch, run.head_epochs, trainer.world_size)
    trainer.fit_loop.epoch_loop.max_steps = total
    trainer.val_check_interval = min(per_epoch, total)
    schedule = run.head_lr_schedule
    if schedule not in HEAD_LR_SCHEDULES:
        raise ValueError(f"stage.ensemble.head_lr_schedule must be one of {list(HEAD_LR_SCHEDULES)}, got {schedule!r}")
    optimizer = functools.partial(run.make_optimizer, lr=run.head_lr)
    module = run.make_module(reward_model=ensemble, optimizer=optimizer, freeze_backbone=freeze,
                             bootstrap_weights=weights, lr_scheduler=cosine_schedule(total) if schedule == "cosine" else None)
    ckpt = run.resume_from("checkpoints/phase2")
    if ckpt:
        print(f"resuming phase 2 from {ckpt}")
    with frozen_modules_in_eval_mode() if freeze else contextlib.nullcontext(), resuming_quietly(ckpt):
        trainer.fit(module, datamodule=data, ckpt_path=ckpt)
    info.update(final_metrics(metrics_after_fit(trainer, module, data)))  # also after a resume at the last step
    info.update({"ens/phase2/steps": float(trainer.global_step), "ens/phase2/planned_steps": float(total),
                 "ens/phase2/steps_run": float(trainer.global_step), "ens/phase2/steps_planned": float(total),
                 "ens/phase2/global_batch": float(batch * trainer.world_size),
                 "ens/phase2/stopped_at_loss": float(stop.reached),
                 "ens/phase2/loss_ema_max_head": float(module.loss_ema_heads.max())})
    print(f"phase 2: {trainer.global_step} of {total} steps ({schedule} lr {run.head_lr:g}), largest head "
          f"loss EMA {float(module.loss_ema_heads.max()):.3f}"
          + (f" (threshold {run.head_loss_threshold} reached)" if stop.reached else ""))
    # fitted whatever stage.ensemble_scale: the artifact scores on both scales
    info.update(fit_head_normalisation(ensemble, data, datamodule))
    return module, trainer, data, seeds, info


def scores_on_both_scales(module, scores: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"raw": (chosen, rejected), "normalised": (chosen, rejected)}`` [N, k] each: the test
    scores (normalised by the model's fitted normalisation) and the heads' raw scores back from
    them (:meth:`~rcollapse.models.reward_model.HeadNormalisation.inverse`)."""
    normalisation = module.reward_model.normalisation
    chosen, rejected = scores["chosen"].float(), scores["rejected"].float()
    with torch.no_grad():
        raw = tuple(normalisation.inverse(s.to(normalisation.mean.device)).cpu() for s in (chosen, rejected))
    return {"raw": raw, "normalised": (chosen, rejected)}


def evaluate(module, trainer, data, datamodule, output_dir: Path, title: str,
             scale: str = "normalised") -> dict[str, float]:
    """The test pairs' report on ``scale`` (``stage.ensemble_scale``: the accuracy table, Fig. 6,
    the uncertainty quality), with σ² on both scales in ``ens/test/var_*_{raw,normalised}``."""
    trainer.test(module, datamodule=data, verbose=False)
    scores = module.test_scores
    pairs = datamodule.pairs("test")
    sections = [pairs[i].section for i in scores["index"].tolist()]
    subsets = [pairs[i].subset for i in scores["index"].tolist()]
    both = scores_on_both_scales(module, scores)
    chosen, rejected = both[scale]
    table = accuracy_table(chosen, rejected, sections, subsets)
    variances = variance_by_section(chosen, rejected, sections)
    metrics = ensemble_metrics(table, variances)
    for name, (c, r) in both.items():
        metrics.update(variance_summary(c, r, name))
    # σ²'s quality (ens/test/uq/*); the calibration on the heads' trained scale (raw, or normalised × std)
    std = module.reward_model.normalisation.std
    uq, uq_figures = uncertainty_report(chosen, rejected, [pairs[i] for i in scores["index"].tolist()],
                                        output_dir if trainer.is_global_zero else None, f"{title} ({scale} scale)",
                                        head_scale=std.detach().cpu().numpy() if scale == "normalised" else None)
    metrics.update(uq)
    if trainer.is_global_zero:
        write_accuracy_table(table, output_dir / "ensemble_accuracy.csv", output_dir / "ensemble_accuracy.md",
                             notes=accuracy_notes(subsets))
        plot_variance_histograms(variances, output_dir / "figures" / "ensemble_variance.png",
                                 title=f"{title} ({scale} scale)")
        with atomic_writer(output_dir / "ensemble_test_scores.pt", "wb") as handle:
            torch.save(scores, handle)
        print((output_dir / "ensemble_accuracy.md").read_text())
    log_final_metrics(trainer.loggers, metrics, trainer.global_step)
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):
            logger.log_image("ens/test/variance_histograms", [str(output_dir / "figures" / "ensemble_variance.png")])
            for key, path in uq_figures.items():
                logger.log_image(key, [str(path)])
    return metrics


def run_ensemble_stage(cfg: DictConfig, output_dir: Path) -> dict[str, float]:
    e = cfg.stage.ensemble
    if e.get("artifact"):
        return evaluate_saved_ensemble(cfg, output_dir, Path(str(e.artifact)).expanduser())
    if cfg.dataset.get("train_source") is None:
        raise ValueError("this data set is evaluation-only (no train_source): pass stage.ensemble.artifact=DIR "
                         "(a saved ensemble) or train on dataset=pref_mix / dataset=preference_offline")
    tokenizer = instantiate(cfg.model.tokenizer)
    backbone = instantiate(cfg.model.backbone, tokenizer=tokenizer)
    reward_model = instantiate(cfg.model.reward_model, backbone=backbone, num_heads=1)
    datamodule = instantiate(cfg.dataset, tokenizer=tokenizer)
    datamodule.setup()
    run = ensemble_run(cfg, output_dir)
    summary, reward_model = run_phase1(run, reward_model, datamodule, rebuild=lambda: instantiate(
        cfg.model.reward_model, backbone=instantiate(cfg.model.backbone, tokenizer=tokenizer), num_heads=1))
    module, trainer, data, seeds, info = run_phase2(run, reward_model, tokenizer, datamodule)
    metrics = evaluate(module, trainer, data, datamodule, output_dir, title=f"{run.num_heads} heads",
                       scale=run.ensemble_scale)
    if trainer.is_global_zero:
        save_ensemble(module.reward_model, tokenizer, output_dir / "ensemble", run.max_length,
                      seeds, extra={"model": run.model_name,
                                    "bootstrap": run.bootstrap, "bootstrap_seed": run.bootstrap_seed,
                                    "ensemble_scale": run.ensemble_scale,  # the scale of its run's report
                                    "head_feature_fraction": run.head_feature_fraction,
                                    "head_init_scale": run.head_init_scale,
                                    "phase2_steps": int(info["ens/phase2/steps"]),
                                    "phase2_steps_planned": int(info["ens/phase2/steps_planned"]),
                                    "phase1_steps": int(summary["ens/phase1/steps"]),
                                    "phase1_steps_planned": int(summary.get("ens/phase1/steps_planned",
                                                                            summary["ens/phase1/steps"])),
                                    "normalisation_responses": int(info["ens/phase2/normalisation_responses"])})
    result = {**summary, **info, **metrics, "ens/num_heads": float(run.num_heads)}
    print(f"ensemble: accuracy of the mean {metrics['ens/test/acc_mean']:.3f} ({run.ensemble_scale} scale), median "
          f"variance of the chosen reward {metrics['ens/test/var_chosen_median_raw']:.4g} raw (the paper's Fig. 6: "
          f"3-14), {metrics['ens/test/var_chosen_median_normalised']:.4g} normalised; artifact {output_dir / 'ensemble'}")
    return final_metrics(result)


def evaluate_saved_ensemble(cfg: DictConfig, output_dir: Path, artifact: Path) -> dict[str, float]:
    ensemble = load_ensemble(artifact)
    datamodule = instantiate(cfg.dataset, tokenizer=ensemble.tokenizer,
                             max_length=int(ensemble.meta["max_length"]))
    if datamodule.train_source is None:  # evaluation-only data: nothing to train or validate on
        datamodule.splits = {"train": [], "val": [], "test": datamodule.eval_source.load()["test"]}
    module = instantiate(cfg.stage.module, reward_model=ensemble.reward_model, optimizer=None, freeze_backbone=True)
    trainer = build_trainer(cfg, [], build_loggers(cfg))
    metrics = evaluate(module, trainer, datamodule, datamodule, output_dir, title=f"{artifact}",
                       scale=str(cfg.stage.get("ensemble_scale", "normalised")))
    write_json_atomic(output_dir / "evaluated_artifact.json", {"artifact": str(artifact), **ensemble.meta})
    return final_metrics(metrics)
