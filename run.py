"""Entry point: ``python run.py [overrides]`` or ``python run.py -m ...`` (Hydra multirun)."""

import hydra
from omegaconf import DictConfig

from rcollapse.config.resolvers import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from rcollapse.pipeline import run

    return run(cfg)


if __name__ == "__main__":
    main()
