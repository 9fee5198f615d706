"""How much sampling noise a PPO policy's judge mean carries at 1,000 and at 25,000 test prompts.

The offline testbed's reference policy (``experiment=ppo_study_offline``: the SFT-fitted tiny GPT-2,
its 128 test prompts, the stage's sampling settings) answers every test prompt ``--samples`` times;
VADER (the offline judge) scores each response. The per-prompt variance splits into the response
sampling part (the variance between a prompt's samples, averaged over the prompts) and the prompt
part (the variance of the prompts' mean scores, less the sampling part's share). A policy judged
once on ``n`` prompts has a judge mean with standard error ``sd/sqrt(n)``; prompts shared by every
policy (a fixed subset) add no spread between policies, the responses' sampling does
(``sd_within/sqrt(n)``). Printed for n = 1,000 (the real ``ppo_study``'s earlier setting) and
n = 25,000 (IMDB's test split, today's).

    python -m benchmarks.judge_noise [--samples 16]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch


def sampled_scores(samples: int) -> np.ndarray:
    """[prompts, samples]: VADER scores of the offline reference policy's responses."""
    import lightning as L
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from rcollapse.config.resolvers import register_resolvers
    from rcollapse.models.judges import VaderJudge, judge_in_batches
    from rcollapse.models.sft_warmup import sft_warmup

    register_resolvers()
    repo = Path(__file__).resolve().parents[1]
    with initialize_config_dir(config_dir=str(repo / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=ppo_study_offline", "hydra.run.dir=/tmp/judge_noise"],
                      return_hydra_config=False)
    L.seed_everything(int(cfg.seed), verbose=False)  # as the pipeline seeds before building the policy
    tokenizer = instantiate(cfg.model.tokenizer)
    lm = instantiate(cfg.model.policy, tokenizer=tokenizer)
    cache = Path(os.environ.get("RCOLLAPSE_CACHE", repo / ".cache"))  # paths.cache_dir outside a Hydra app
    sft_warmup(lm, tokenizer, int(cfg.model.sft_steps), seed=int(cfg.model.sft_seed), cache_dir=cache / "sft")
    datamodule = instantiate(cfg.dataset, batch_size=int(cfg.stage.batch_size), tokenizer=tokenizer)
    datamodule.setup()
    prompts, m = datamodule.prompts["test"], cfg.stage.module
    tokenizer.padding_side = "left"
    lm.eval()
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    scores = []
    for k in range(samples):
        torch.manual_seed(1000 + k)
        with torch.no_grad():
            out = lm.generate(**enc, do_sample=True, max_new_tokens=int(m.max_new_tokens),
                              temperature=float(m.temperature), top_k=int(m.top_k), top_p=float(m.top_p),
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].size(1):], skip_special_tokens=True)
        scores.append(judge_in_batches(VaderJudge(), prompts, texts))
    return np.array(scores).T


def noise_table(scores: np.ndarray, sizes=(1000, 25000)) -> dict[str, float]:
    """The variance parts of ``scores`` [prompts, samples] and the standard errors at each size."""
    samples = scores.shape[1]
    within = float(scores.var(axis=1, ddof=1).mean())
    between = float(scores.mean(axis=1).var(ddof=1) - within / samples)
    out = {"mean": float(scores.mean()), "var_total": float(scores.var(ddof=1)), "var_within": within,
           "var_between": between}
    for n in sizes:
        out[f"se_sampling_{n}"] = float(np.sqrt(within / n))
        out[f"se_total_{n}"] = float(np.sqrt(out["var_total"] / n))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()
    scores = sampled_scores(args.samples)
    t = noise_table(scores)
    print(f"{scores.shape[0]} prompts x {scores.shape[1]} samples, VADER judge mean {t['mean']:.4f}")
    print(f"per-prompt variance {t['var_total']:.4f} (sd {np.sqrt(t['var_total']):.3f}): response sampling "
          f"{t['var_within']:.4f}, prompts {t['var_between']:.4f}")
    for n in (1000, 25000):
        print(f"n = {n:>6}: standard error of one policy's judge mean {t[f'se_sampling_{n}']:.4f} "
              f"(sampling, prompts shared) / {t[f'se_total_{n}']:.4f} (random prompts too)")


if __name__ == "__main__":
    main()
