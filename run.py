"""Entry point: ``python run.py [overrides]`` or ``python run.py -m ...`` (Hydra multirun)."""

import sys

import hydra
from omegaconf import DictConfig

from rcollapse.config.resolvers import register_resolvers
from rcollapse.runs.resume_command import ResumeCommandError, resume_arguments

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from rcollapse.pipeline import run

    return run(cfg)


if __name__ == "__main__":
    try:  # resume=<dir> alone resumes the run as it was configured; checked before Hydra writes anything
        sys.argv[1:] = resume_arguments(sys.argv[1:])
    except ResumeCommandError as err:
        sys.exit(f"Error: {err}")
    main()
