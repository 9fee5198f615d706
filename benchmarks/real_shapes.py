"""Every real experiment end to end at its real widths, on local copies (`make real-shapes`).

Each of the papers' real experiments runs as a user runs it, ``python run.py experiment=NAME``
in a subprocess, with the experiment's own config (precision, batch sizes, schedules, arms) and
only these overrides:

- the model and data paths point to local copies in the hub's layout: the real architectures at
  their real widths with 1-2 layers and random weights (``rcollapse.models.real_shape_copies``:
  Gemma-2B-it, GPT-Neo-1.3B, DeBERTa-v3-base, GPT-2 and the FsfairX judge's Llama-3-8B shape),
  and small data copies with short texts (``tests/hub_copies.py``);
- the step counts: a few steps each (``stage.max_steps``, ``stage.num_updates``) and the data
  sizes they need (``dataset.num_pairs``, ``dataset.num_val``, ``dataset.num_train``);
- on a CPU, ``hardware=cpu`` with ``trainer.precision`` set back to the experiment's own; where the
  experiment's hardware group spreads a run over several GPUs (``ensemble_gemma``: FSDP over 4),
  one device (``hardware=gpu`` on a GPU) with ``dataset.batch_size`` times the processes, so the
  global batch stays the experiment's.

The runs: ``ensemble_gemma`` (phase 1 a few steps of the cosine plan, phase 2 on the cached
features; its ``ensemble/`` is the artifact ``ppo_study`` loads), ``ppo_study`` (one iteration at
batch 128 with the 10-head ensemble and the judge; two where the arm calibrates β first: one
calibrating, one at the frozen β), ``collapse_longform`` and
``collapse_stackexchange`` (20 steps each). The per-step time is the run's own record:
``cost/train_s / cost/train_batches`` of its ``metrics.json`` (the time inside training batches:
forward, backward, optimiser step, PPO's rollout and scoring; no data loading, validation,
testing or model loading; the first, warm-up step included).

    python -m benchmarks.real_shapes [--only NAME ...] [--out DIR] [--device cpu|cuda] [--layers N]

prints a table (experiment, architecture, hidden size, vocabulary, layers, per-step time) and
writes DIR/real_shapes.json. The model copies are written once into ``--cache`` (about 4 GB) and
reused; each run's ``checkpoints/`` (about 10 GB for ``ensemble_gemma``: the weights and AdamW state
at Gemma's width) is measured and deleted unless ``--keep-checkpoints``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("ensemble_gemma", "ppo_study", "collapse_longform", "collapse_stackexchange")
# the models each experiment loads: (the override key, the copy's architecture)
MODELS = {
    "ensemble_gemma": [("model.name_or_path", "gemma-2b-it")],
    "ppo_study": [("model.name_or_path", "gpt2"), ("judge.name_or_path", "fsfairx-llama3-rm")],
    "collapse_longform": [("model.name_or_path", "deberta-v3-base")],
    "collapse_stackexchange": [("model.name_or_path", "gpt-neo-1.3B")],
}
# the steps run (CPU; a GPU run multiplies them by --steps-scale) and the data sizes they need
STEPS = {
    "ensemble_gemma": lambda k: [f"stage.max_steps={2 * k}", f"dataset.num_pairs={128 * k}", "dataset.num_val=16"],
    # one iteration; where the arm calibrates beta first (stage.kl_controller.freeze_after), one
    # calibrating iteration and one at the frozen beta
    "ppo_study": lambda k: ([f"stage.num_updates={k}"] if composed("ppo_study")["freeze_after"] is None
                            else [f"stage.num_updates={2 * k}", f"stage.kl_controller.freeze_after={k}",
                                  f"stage.final_window={k}"]),
    "collapse_longform": lambda k: [f"stage.max_steps={20 * k}", f"dataset.num_train={160 * k}"],
    "collapse_stackexchange": lambda k: [f"stage.max_steps={20 * k}"],
}
DATA_SIZES = {"pref_pairs": 2048, "imdb_train": 512, "imdb_test": 64, "longform_rows": 1400, "se_questions": 1200}


def default_cache() -> Path:
    return Path(os.environ.get("RCOLLAPSE_CACHE", ROOT / ".cache")) / "real_shapes"


def composed(name: str) -> dict:
    """The values of experiment ``name``'s config the runner reads (its precision, its site folder)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"experiment={name}"])
    devices = OmegaConf.select(cfg, "trainer.devices")
    return {"precision": str(cfg.trainer.precision), "data_dir": OmegaConf.select(cfg, "dataset.data_dir"),
            "freeze_after": OmegaConf.select(cfg, "stage.kl_controller.freeze_after"),
            "processes": devices * int(OmegaConf.select(cfg, "trainer.num_nodes") or 1) if isinstance(devices, int) else 1,
            "batch_size": OmegaConf.select(cfg, "dataset.batch_size")}


def data_copies(cache: Path, names: list[str]) -> dict[str, Path]:
    """The data sets' local copies under ``cache/data`` (written once, a marker file last)."""
    sys.path.insert(0, str(ROOT))
    from tests import hub_copies

    root, paths = cache / "data", {}
    wanted = {
        "ensemble_gemma": {"pref_mix": lambda p: hub_copies.write_pref_mix_copy(p, DATA_SIZES["pref_pairs"]),
                           "reward_bench": lambda p: hub_copies.write_rewardbench_copy(p, 1),
                           "pref_test_sets": hub_copies.write_prior_copy},
        "ppo_study": {"imdb": lambda p: hub_copies.write_imdb_copy(p, DATA_SIZES["imdb_train"], DATA_SIZES["imdb_test"])},
        "collapse_longform": {"longform": lambda p: hub_copies.write_longform_copy(p, DATA_SIZES["longform_rows"])},
    }
    if "collapse_stackexchange" in names:
        data_dir = composed("collapse_stackexchange")["data_dir"]
        site = data_dir.replace("/", "_")
        wanted["collapse_stackexchange"] = {f"stack_exchange_{site}": lambda p: hub_copies.write_stack_exchange_site_copy(
            p, data_dir, DATA_SIZES["se_questions"])}
    for name in names:
        for copy, write in wanted.get(name, {}).items():
            path = root / copy
            if not (path / ".complete").is_file():
                shutil.rmtree(path, ignore_errors=True)
                write(path)
                (path / ".complete").write_text(json.dumps(DATA_SIZES))
            paths[copy] = path
    return paths


def overrides(name: str, models: dict[str, Path], data: dict[str, Path], out: Path, device: str, scale: int) -> list[str]:
    """The command-line overrides of experiment ``name``: paths, steps and (CPU) hardware."""
    args = [f"{key}={models[arch]}" for key, arch in MODELS[name]]
    if name == "ensemble_gemma":
        args += [f"dataset.path={data['pref_mix']}", f"dataset.eval_path={data['reward_bench']}",
                 f"dataset.prior_path={data['pref_test_sets']}"]
    elif name == "ppo_study":
        args += [f"dataset.path={data['imdb']}", f"stage.ensemble_path={out / 'ensemble_gemma' / 'ensemble'}"]
    elif name == "collapse_longform":
        args += [f"dataset.path={data['longform']}"]
    else:
        args += [f"dataset.path={next(v for k, v in data.items() if k.startswith('stack_exchange'))}"]
    args += STEPS[name](scale)
    own = composed(name)
    if device == "cpu":  # the experiment's own precision, on the CPU
        args += ["hardware=cpu", f"trainer.precision={own['precision']}"]
    elif own["processes"] > 1:  # a multi-GPU hardware group (FSDP): one GPU, the same precision
        args += ["hardware=gpu", f"trainer.precision={own['precision']}"]
    if own["processes"] > 1 and isinstance(own["batch_size"], int):  # one process: the same global batch
        args += [f"dataset.batch_size={own['batch_size'] * own['processes']}"]
    return [*args, f"hydra.run.dir={out / name}", f"paths.cache_dir={out / 'cache'}"]


def step_time(metrics: dict) -> float | None:
    """Seconds per training step from the run's own record (``cost/train_s / cost/train_batches``)."""
    batches = metrics.get("cost/train_batches")
    return metrics["cost/train_s"] / batches if batches else None


def run_one(name: str, models: dict[str, Path], data: dict[str, Path], out: Path, device: str, scale: int,
            timeout: float | None, extra: list[str] = (), keep_checkpoints: bool = False) -> dict:
    """``python run.py experiment=NAME <overrides>`` in a subprocess; its records and timings."""
    from rcollapse.models.real_shape_copies import copy_facts

    shutil.rmtree(out / name, ignore_errors=True)
    command = [sys.executable, "run.py", f"experiment={name}", *overrides(name, models, data, out, device, scale),
               *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
           "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with open(out / f"{name}.log", "w") as log:
        proc = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
    wall = time.perf_counter() - started
    metrics_path = out / name / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    result = {"experiment": name, "returncode": proc.returncode, "wall_s": wall, "command": " ".join(command[1:]),
              "log": str(out / f"{name}.log"), "per_step_s": step_time(metrics),
              "steps": metrics.get("cost/train_batches"), "train_s": metrics.get("cost/train_s"),
              "run_wall_s": metrics.get("cost/wall_s"), "peak_rss_gb": metrics.get("cost/peak_rss_gb"),
              "peak_gpu_mem_gb": metrics.get("cost/peak_gpu_mem_gb"), "device": metrics.get("cost/device"),
              "models": {}}
    for key, arch in MODELS[name]:
        facts = copy_facts(models[arch])
        result["models"][key] = {k: facts[k] for k in ("architecture", "hidden_size", "vocab_size", "num_layers",
                                                       "published_layers", "tokenizer_vocab")}
    result["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    checkpoints = out / name / "checkpoints"
    if checkpoints.is_dir():  # GBs at these widths (weights and AdamW state): their size kept, the files not
        result["checkpoints_gb"] = sum(f.stat().st_size for f in checkpoints.rglob("*") if f.is_file()) / 1e9
        if not keep_checkpoints:
            shutil.rmtree(checkpoints)
    return result


def table(results: list[dict]) -> str:
    """The printed table: one line per (experiment, model)."""
    lines = [f"{'experiment':24} {'model':20} {'hidden':>6} {'vocab':>7} {'layers':>8} {'steps':>5} "
             f"{'s/step':>8} {'wall s':>7} {'peak GB':>7}  status"]
    for r in results:
        for k, m in enumerate(r["models"].values()):
            cells = ["", "", "", "", ""]
            if k == 0:
                cells = [r["experiment"], str(int(r["steps"])) if r["steps"] else "", f"{r['per_step_s']:.2f}" if r["per_step_s"] else "",
                         f"{r['wall_s']:.0f}", f"{r['peak_rss_gb']:.1f}" if r["peak_rss_gb"] else ""]
                status = "ok" if r["returncode"] == 0 else f"FAILED rc={r['returncode']}: {r['log']}"
            lines.append(f"{cells[0]:24} {m['architecture']:20} {m['hidden_size']:>6} {m['vocab_size']:>7} "
                         f"{m['num_layers']:>3} of {m['published_layers']:<2} {cells[1]:>5} {cells[2]:>8} "
                         f"{cells[3]:>7} {cells[4]:>7}  {status if k == 0 else ''}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=ORDER, help="run these experiments only (ppo_study needs the "
                        "ensemble_gemma run in the same --out)")
    parser.add_argument("--out", default=None, help="run dirs, logs and real_shapes.json (default: a new "
                        "outputs/real_shapes/<date>_<time>; an existing run dir of the same experiment is replaced)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--layers", type=int, default=1, help="layers of each model copy (1-2; the widths stay real)")
    parser.add_argument("--steps-scale", type=int, default=1, help="multiply the steps run (and data sizes) by this")
    parser.add_argument("--cache", default=None, help="where the model and data copies are written once")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per experiment")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep each run's checkpoints/ (deleted by default: GBs at these widths)")
    parser.add_argument("--set", action="append", default=[], metavar="EXPERIMENT:KEY=VALUE",
                        help="an extra override for one experiment (repeatable)")
    args = parser.parse_args(argv)
    names = [n for n in ORDER if not args.only or n in args.only]
    out = Path(args.out or f"outputs/real_shapes/{time.strftime('%Y-%m-%d_%H-%M-%S')}").resolve()
    cache = Path(args.cache).resolve() if args.cache else default_cache()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    from rcollapse.models.real_shape_copies import real_shape_copy

    architectures = sorted({arch for n in names for _, arch in MODELS[n]}
                           | ({"gemma-2b-it"} if "ppo_study" in names else set()))
    models = {arch: real_shape_copy(arch, cache / "models", args.layers) for arch in architectures}
    data = data_copies(cache, names)
    prepared = time.perf_counter() - started
    results = []
    for name in names:
        extra = [item.split(":", 1)[1] for item in args.set if item.split(":", 1)[0] == name]
        results.append(run_one(name, models, data, out, args.device, args.steps_scale, args.timeout, extra,
                               args.keep_checkpoints))
        print(f"[{name}] rc {results[-1]['returncode']}, {results[-1]['wall_s']:.0f} s, "
              f"per step {results[-1]['per_step_s']}", flush=True)
    summary = {"device": args.device, "layers": args.layers, "steps_scale": args.steps_scale,
               "prepare_s": prepared, "total_s": time.perf_counter() - started, "results": results}
    print("\n" + table(results))
    print(f"per step: cost/train_s / cost/train_batches of each run's metrics.json; copies ready in {prepared:.0f} s; "
          f"total {summary['total_s']:.0f} s")
    (out / "real_shapes.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {out / 'real_shapes.json'}")
    return summary


if __name__ == "__main__":
    main()
