"""OmegaConf resolvers the configs use; registered by ``run.py`` before Hydra composes."""

from __future__ import annotations

from omegaconf import OmegaConf


def run_dir_for(resume, default: str) -> str:
    """``hydra.run.dir``: the run dir named by ``resume=<dir>``, else ``default`` (a new dir)."""
    if isinstance(resume, str) and resume.strip().lower() not in ("", "true", "false", "null", "none"):
        return resume
    return default


def git_commit() -> str:
    """The short commit of the code that runs (``nogit`` outside a checkout), for W&B tags."""
    import subprocess
    from pathlib import Path

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return "nogit"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "nogit"


def sweep_name() -> str | None:
    """The multirun's name (its sweep dir's last two parts, e.g. ``2026-11-23/09-14-22-123456``),
    used as the W&B group so that a sweep's runs sit together; None for a single run."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    parts = Path(HydraConfig.get().sweep.dir).parts
    return "/".join(parts[-2:])


def config_choice(group: str) -> str:
    """The option chosen for a config group (e.g. ``x_inv`` for ``utility``), ``unknown`` outside
    a Hydra run (configs composed in a test)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return "unknown"
    return str(HydraConfig.get().runtime.choices.get(group))


def ddp_if_many(processes) -> str:
    """``trainer.strategy`` for ``processes`` per node (× nodes): ``ddp`` for more than one, else
    ``auto`` (one process needs no process group)."""
    return "ddp" if int(processes) > 1 else "auto"


RESOLVERS = {
    "rcollapse.ddp_if_many": ddp_if_many,
    "rcollapse.choice": config_choice,
    "rcollapse.run_dir": run_dir_for,
    "rcollapse.git_commit": git_commit,
    "rcollapse.sweep_name": sweep_name,
}


def register_resolvers() -> None:
    """Idempotent."""
    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=name == "rcollapse.git_commit")
