"""The README and the docs stay true: the README is short and points to every doc and config
group, the group table of docs/configuration.md matches conf/, and the docs' code blocks (model
groups, reloading a trained reward model or ensemble) run as written. Links and contents lists:
tests/test_doc_links.py; every command composing as written: tests/test_doc_commands.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from tests.conftest import CONF, FAST_TRAINING, REPO, compose_config

README = REPO / "README.md"
CONFIGURATION = REPO / "docs" / "configuration.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]
RUN_PLACEHOLDER = "outputs/runs/<date>/<time>"
README_LIMIT = 15_000  # characters: what it is, the commands, the groups, the results, the layout


def readme() -> str:
    return README.read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    """The ```language blocks of the README and every doc."""
    return [block for doc in DOCS
            for block in re.findall(rf"```{language}\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)]


def block_containing(language: str, text: str) -> str:
    blocks = [b for b in code_blocks(language) if text in b]
    assert len(blocks) == 1, f"expected one ```{language} block of the docs containing {text!r}, got {len(blocks)}"
    return blocks[0]


# ---- item: the config-group table lists exactly what conf/ holds ---------------------------------

def group_table() -> set[tuple[str, str]]:
    """(group, option) rows of docs/configuration.md's table whose header is `| group | option | ... |`."""
    lines = CONFIGURATION.read_text(encoding="utf-8").splitlines()
    header = [i for i, line in enumerate(lines) if re.match(r"^\|\s*group\s*\|\s*option\s*\|", line)]
    assert len(header) == 1, "docs/configuration.md needs one table with the header | group | option | ... |"
    rows = set()
    for line in lines[header[0] + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        group, option = (re.fullmatch(r"`([^`]+)`", c) for c in cells[:2])
        assert group and option, f"a row of the group table is not | `group` | `option` | ...: {line}"
        rows.add((group.group(1), option.group(1)))
    return rows


def conf_options() -> set[tuple[str, str]]:
    """Every (group, option) under conf/, read now (conf/sweep links to sweeps/: followed)."""
    return {(group.name, option.stem) for group in CONF.iterdir() if group.is_dir()
            for option in group.glob("*.yaml")}


def test_group_table_lists_every_option_of_every_group_and_nothing_else():
    table, conf = group_table(), conf_options()
    assert {"sweep", "judge", "ppo_arm"} <= {g for g, _ in conf}  # the directories are really read
    missing, stale = sorted(conf - table), sorted(table - conf)
    assert not missing, f"options in conf/ that the group table of docs/configuration.md lacks: {missing}"
    assert not stale, f"options in the group table of docs/configuration.md that conf/ does not have: {stale}"


# ---- item: the README is short, and points to every doc and every config group -------------------
# (that every link resolves, within the repository, is tests/test_doc_links.py)

def test_the_readme_is_at_most_15000_characters():
    assert len(readme()) <= README_LIMIT, f"README.md has {len(readme())} characters; move detail to docs/"


def test_the_architecture_doc_exists_and_the_readme_links_it():
    assert (REPO / "docs" / "ARCHITECTURE.md").stat().st_size > 2000
    assert "](docs/ARCHITECTURE.md)" in readme()


def test_the_readme_links_every_doc():
    unlinked = [doc.name for doc in DOCS[1:] if f"](docs/{doc.name}" not in readme()]
    assert not unlinked, f"docs the README does not link: {unlinked}"


def test_the_readme_has_a_line_for_every_config_group():
    groups = sorted(g.name for g in CONF.iterdir() if g.is_dir())
    lines = {m.group(1) for m in re.finditer(r"^- `(\w+)`: .*\]\(docs/", readme(), flags=re.M)}
    missing, stale = sorted(set(groups) - lines), sorted(lines - set(groups))
    assert not missing and not stale, f"README group lines: missing {missing}, not in conf/ {stale}"


# ---- item: the docs' code runs ------------------------------------------------------------------

@pytest.fixture
def reward_run(fast_reward_run) -> Path:
    """A short stage=reward run (the tiny encoder, the default utility), as run.py would leave it
    (tests/conftest.py: FAST_TRAINING, one run per test process)."""
    return fast_reward_run("logsigmoid")


def test_the_reload_snippet_reproduces_the_runs_test_rewards(reward_run):
    code = block_containing("python", "checkpoints/last.ckpt")
    assert RUN_PLACEHOLDER in code
    namespace: dict = {}
    exec(code.replace(RUN_PLACEHOLDER, str(reward_run)), namespace)  # the doc's text, as written
    rewards = namespace["rewards"]
    assert rewards.shape == (2,) and bool(((rewards >= 0) & (rewards <= 1)).all())
    # the reloaded model gives the rewards the run recorded for its test prompts
    reward_model, tokenizer, cfg = namespace["reward_model"], namespace["tokenizer"], namespace["cfg"]
    datamodule = instantiate(cfg.dataset, tokenizer=tokenizer)
    datamodule.setup()
    recorded = json.loads((reward_run / "rewards_test.json").read_text())["rewards"]
    rows = datamodule.splits["test"]
    assert len(rows) == len(recorded)
    for row, expected in zip(rows[:3], recorded[:3], strict=True):
        batch = tokenizer([row.prompt] * len(row.completions), list(row.completions), truncation="longest_first",
                          max_length=cfg.model.max_length, padding=True, return_tensors="pt")
        with torch.no_grad():
            got = torch.sigmoid(reward_model(**batch).scores[:, 0])
        assert got.tolist() == pytest.approx(expected, abs=1e-5)


def test_the_ensemble_snippet_loads_and_scores_a_saved_ensemble(tmp_path):
    from rcollapse.models.ensemble_artifact import save_ensemble
    from rcollapse.models.reward_model import RewardModel
    from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = RewardModel(build_tiny_encoder(tokenizer), num_heads=3)
    model.fit_normalisation(torch.randn(64, model.heads.in_features))
    save_ensemble(model, tokenizer, tmp_path / "ensemble", max_length=64, head_seeds=[1, 2])
    code = block_containing("python", "load_ensemble(")
    assert f"{RUN_PLACEHOLDER}/ensemble" in code
    namespace: dict = {}
    exec(code.replace(RUN_PLACEHOLDER, str(tmp_path)), namespace)
    out = namespace["out"]
    assert out.scores.shape == (1, 3) and out.mean.shape == (1,) and float(out.variance[0]) > 0


def model_groups() -> dict[str, str]:
    """The docs' example model groups: yaml blocks that start with `# conf/model/NAME.yaml`."""
    groups = {}
    for block in code_blocks("yaml"):
        first = block.splitlines()[0]
        match = re.fullmatch(r"# conf/model/(\w+)\.yaml", first.strip())
        if match:
            groups[match.group(1)] = block
    return groups


def compose_with_group(name: str, tmp_path: Path, overrides: list[str]):
    """Compose with the docs' group `name` written to a directory on Hydra's search path, as
    docs/configuration.md says a group can be kept outside the repository."""
    conf = tmp_path / "my_conf"
    (conf / "model").mkdir(parents=True, exist_ok=True)
    (conf / "model" / f"{name}.yaml").write_text(model_groups()[name])
    return compose_config([f"hydra.searchpath=[file://{conf}]", f"model={name}", *overrides], tmp_path)


def local_encoder_dir(tmp_path: Path) -> Path:
    from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    path = tmp_path / "local_encoder"
    build_tiny_encoder(tokenizer).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def local_decoder_dir(tmp_path: Path) -> Path:
    """A local copy of a decoder whose tokenizer pads on the left by default (as many do)."""
    from rcollapse.models.policy import build_tiny_gpt2
    from rcollapse.models.tiny_encoder import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.padding_side = "left"
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    path = tmp_path / "local_decoder"
    torch.manual_seed(0)
    build_tiny_gpt2(tokenizer, n_positions=256).save_pretrained(str(path))  # room for the length task
    tokenizer.save_pretrained(str(path))
    return path


def test_the_docs_show_an_encoder_a_decoder_and_a_policy_group():
    groups = model_groups()
    kinds = {name: ("policy" if "policy:" in g else "pooling: last" if "pooling: last" in g else "encoder")
             for name, g in groups.items()}
    assert sorted(kinds.values()) == ["encoder", "policy", "pooling: last"], kinds


def _group_of(kind: str) -> str:
    for name, block in model_groups().items():
        if kind in block:
            return name
    raise AssertionError(f"no model group in the docs with {kind!r}")


def test_the_encoder_group_builds_a_reward_model(tmp_path):
    name = next(n for n, b in model_groups().items() if "pooling: cls" in b)
    cfg = compose_with_group(name, tmp_path, [f"model.name_or_path={local_encoder_dir(tmp_path)}"])
    tokenizer = instantiate(cfg.model.tokenizer)
    reward_model = instantiate(cfg.model.reward_model, backbone=instantiate(cfg.model.backbone, tokenizer=tokenizer))
    batch = tokenizer(["a prompt", "a prompt"], ["one", "two words"], padding=True, return_tensors="pt")
    assert reward_model(**batch).scores.shape == (2, 1)


def test_the_decoder_group_pools_the_last_real_token_and_trains(tmp_path):
    from rcollapse.pipeline import run

    name = _group_of("pooling: last")
    # the tiny local decoder has 64 positions
    local = [f"model.name_or_path={local_decoder_dir(tmp_path)}", "model.max_length=256"]  # the length task needs the completions to differ within it
    cfg = compose_with_group(name, tmp_path, local)
    tokenizer = instantiate(cfg.model.tokenizer)
    assert tokenizer.padding_side == "right" and tokenizer.pad_token is not None
    reward_model = instantiate(cfg.model.reward_model,
                               backbone=instantiate(cfg.model.backbone, tokenizer=tokenizer)).eval()
    prompts, responses = ["the movie was"] * 2, ["great", "long and slow , with a plot that goes nowhere"]
    with torch.no_grad():
        together = reward_model(**tokenizer(prompts, responses, padding=True, return_tensors="pt")).scores
        alone = reward_model(**tokenizer(prompts[:1], responses[:1], return_tensors="pt")).scores
    assert together[0].item() == pytest.approx(alone[0].item(), abs=1e-5)  # padding does not move the score
    run(compose_with_group(name, tmp_path, [*local, *FAST_TRAINING]))
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "completed"


def test_the_policy_group_builds_the_policy_as_the_ppo_stage_does(tmp_path):
    from rcollapse.models.policy import build_tiny_gpt2, build_tiny_tokenizer_for_generation

    tokenizer = build_tiny_tokenizer_for_generation()
    path = tmp_path / "local_policy"
    build_tiny_gpt2(tokenizer).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    cfg = compose_with_group(_group_of("policy:"), tmp_path, ["stage=ppo", f"model.name_or_path={path}"])
    tokenizer = instantiate(cfg.model.tokenizer)
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    lm = instantiate(cfg.model.policy, tokenizer=tokenizer)  # as rcollapse.stages.ppo_stage builds it
    assert lm.config.vocab_size == len(tokenizer)
