"""Errors a user meets that name the file or key, what is wrong and the cure (issue 26, items 10-12):
a damaged ``config_resolved.yaml``, a damaged checkpoint handed to diagnose, a bad value of a
``rcollapse.design`` key, a lock file that names no run or cannot be created, completions the
tokenizer makes one, duplicate completions numbered as in the user's file, and a non-finite loss
before or after the run's first checkpoint. Also phase 1 of the ensemble with no loss threshold."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rcollapse.config.checks import ConfigError
from rcollapse.data.ranking_rows import MalformedRowError, RankingRow
from rcollapse.data.ranking_truncation import check_truncation
from rcollapse.pipeline import run
from tests.conftest import CONF, FAST_TRAINING, REPO, compose_config

# ---- item 10a: a damaged config_resolved.yaml ------------------------------------------------------


def test_a_damaged_run_config_is_refused_naming_the_file_where_and_the_cure(tmp_path):
    from rcollapse.runs.run_config import RunConfigUnreadableError, read_run_config

    (tmp_path / "config_resolved.yaml").write_text("a: [b\n")
    with pytest.raises(RunConfigUnreadableError) as err:
        read_run_config(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'config_resolved.yaml'} cannot be read: invalid YAML")
    assert "line 1, column 4" in message  # where the unclosed list starts
    assert str(tmp_path / ".hydra" / "config.yaml") in message and "start the run anew" in message
    # a ConfigError for the command line, a YAMLError for the readers that skip such a run
    assert isinstance(err.value, ConfigError) and isinstance(err.value, yaml.YAMLError)
    (tmp_path / "config_resolved.yaml").write_text("xx\n")
    with pytest.raises(RunConfigUnreadableError, match=r"holds a str \('xx'\), not a mapping"):
        read_run_config(tmp_path)
    with pytest.raises(FileNotFoundError):  # no file: the callers' "is it a run dir?" stays
        read_run_config(tmp_path / "elsewhere")


def test_a_resume_of_a_run_whose_config_is_damaged_is_refused_and_the_file_kept(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config_resolved.yaml").write_text("a: [b\n")
    with pytest.raises(ConfigError, match=r"config_resolved\.yaml cannot be read: invalid YAML"):
        run(compose_config(["stage=theory", f"resume={out}"], tmp_path))
    assert (out / "config_resolved.yaml").read_text() == "a: [b\n"  # nothing overwritten
    assert not (out / "status.json").exists()


@pytest.mark.e2e
def test_the_command_line_resume_of_a_damaged_run_config_names_the_file(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    first = subprocess.run([sys.executable, "run.py", f"hydra.run.dir={out}", "stage.max_steps=5"], cwd=REPO,
                           capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    (out / "config_resolved.yaml").write_text("a: [b\n")
    again = subprocess.run([sys.executable, "run.py", f"resume={out}", "stage.max_steps=5"], cwd=REPO,
                           capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode != 0
    assert f"RunConfigUnreadableError: {out / 'config_resolved.yaml'} cannot be read" in again.stderr
    assert "yaml.parser.ParserError" not in again.stderr


# ---- item 10b: diagnose on a damaged checkpoint -----------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_diagnose_refuses_a_damaged_checkpoint_naming_it_and_the_intact_one_beside_it(fast_reward_run, tmp_path):
    from rcollapse.diagnose import diagnose
    from rcollapse.runs.checkpoint_files import CheckpointUnreadableError
    from tests.test_diagnose import FAST_DATA, compose_diagnose

    run_dir = tmp_path / "copy"
    shutil.copytree(fast_reward_run("x"), run_dir)  # the shared run is read only
    checkpoints = run_dir / "checkpoints"
    older = sorted(checkpoints.glob("step*.ckpt"))
    assert older, list(checkpoints.iterdir())
    _truncate(checkpoints / "last.ckpt")
    with pytest.raises(CheckpointUnreadableError) as err:
        diagnose(compose_diagnose([f"reward_model.run_dir={run_dir}", *FAST_DATA], tmp_path / "d1"))
    message = str(err.value)
    assert message.startswith(f"reward_model.checkpoint: {checkpoints / 'last.ckpt'} cannot be read: not a complete")
    assert f"reward_model.checkpoint={older[-1]}" in message
    assert "PytorchStreamReader" not in message
    for path in older:
        _truncate(path)
    with pytest.raises(CheckpointUnreadableError, match=r"no other intact checkpoint .* retrain the reward model"):
        diagnose(compose_diagnose([f"reward_model.run_dir={run_dir}", *FAST_DATA], tmp_path / "d2"))


# ---- item 10c: rcollapse.design's keys -------------------------------------------------------------


def _design(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("design", overrides=overrides)


@pytest.mark.parametrize("overrides, expected", [
    (["a=abc"], r"^a: takes a number > 0, the first shape of the Beta\(a, b\) target .*got 'abc'"),
    (["a=-1"], r"^a: takes a number > 0"),
    (["b=x"], r"^b: takes a number > 0, .* or null"),
    (["n=eight"], r"^n: takes an integer >= 2"),
    (["eps=-0.1"], r"^eps: takes a number >= 0"),
    (["large_n=1"], r"^large_n: takes an integer >= 2, or null"),
    (["family=best"], r"^family: takes one of auto, classes, logsigmoid, got 'best'"),
    (["target=gauss"], r"^target: takes one of beta, quantiles, types, openness"),
    (["target=quantiles", "q=[a,b]"], r"^q: takes a list of at least 2"),
    (["target=quantiles", "q=[0.9,0.1]"], r"^q, p: q must be nondecreasing"),
    (["target=types", "open=abc", "closed=[1,1]"], r"^open: takes a target: \[a, b\]"),
    (["target=openness", "s=[0,2]", "a=1"], r"^s: takes a list of open-endedness scores in \[-1, 1\]"),
])
def test_a_design_key_with_a_value_it_does_not_take_is_named_with_its_values(overrides, expected):
    from rcollapse.design import build

    with pytest.raises(ConfigError, match=expected):
        build(_design(overrides))


# ---- item 10d: the run dir's lock ------------------------------------------------------------------


@pytest.mark.parametrize("content, said", [("xx", "it holds 'xx', not a run's owner record"),
                                           ("", "it is empty"), ("[1, 2]", "it holds '[1, 2]'")])
def test_a_lock_file_that_names_no_run_is_refused_as_unreadable(tmp_path, content, said):
    from rcollapse.runs.run_lock import (
        LOCK_NAME,
        RunDirBusyError,
        UnreadableLockError,
        run_dir_lock,
    )

    lock = tmp_path / LOCK_NAME
    lock.write_text(content)
    with pytest.raises(UnreadableLockError) as err, run_dir_lock(tmp_path):
        pass
    message = str(err.value)
    assert f"locked by {lock}, which cannot be read: {said}" in message
    assert f"If no run is using {tmp_path}, delete {lock}" in message and "pid None" not in message
    assert isinstance(err.value, RunDirBusyError) and lock.read_text() == content  # refused, kept


def test_a_lock_file_the_run_dir_cannot_hold_is_refused_naming_the_dir(tmp_path, monkeypatch):
    from rcollapse.runs import run_lock

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(args[0]))

    monkeypatch.setattr(run_lock.os, "open", read_only)
    with pytest.raises(run_lock.RunDirNotWritableError) as err, run_lock.run_dir_lock(tmp_path):
        pass
    assert str(err.value).startswith(f"run dir {tmp_path} is on a read-only file system")
    assert "hydra.run.dir=<a writable path>" in str(err.value) and err.value.errno == errno.EROFS

    def forbidden(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(args[0]))

    monkeypatch.setattr(run_lock.os, "open", forbidden)
    with pytest.raises(run_lock.RunDirNotWritableError, match="is not writable by this user"), \
            run_lock.run_dir_lock(tmp_path):
        pass


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs (root only; skipped where mounting is not allowed)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a read-only file system needs root")
    where = tmp_path / "ro"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("mount is not allowed here")
    try:
        if subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True).returncode:
            pytest.skip("remount read-only is not allowed here")
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_a_run_dir_on_a_read_only_file_system_is_refused_naming_it(read_only_dir):
    from rcollapse.runs.run_lock import RunDirNotWritableError, run_dir_lock

    with pytest.raises(RunDirNotWritableError, match=f"^run dir {read_only_dir} is on a read-only file system"), \
            run_dir_lock(read_only_dir):
        pass


# ---- item 11: phase 1 of the ensemble with no loss threshold ----------------------------------------

PHASE1_WITHOUT_THRESHOLD = [
    "stage=ensemble", "dataset.num_train=32", "dataset.num_val=8", "dataset.num_test_per_section=4",
    "dataset.batch_size=8", "stage.max_steps=2", "stage.val_every_n_steps=2", "stage.checkpoint_every_n_steps=2",
    "stage.ensemble.loss_threshold=null", "trainer.enable_progress_bar=false",
]


def test_phase_one_runs_without_a_loss_threshold(tmp_path):
    """``stage.ensemble.loss_threshold=null``: phase 1 runs its steps and records the threshold as
    not reached (it compared the loss with None after training, a TypeError)."""
    from hydra.utils import instantiate

    from rcollapse.stages.ensemble_stage import ensemble_run, run_phase1

    cfg = compose_config(PHASE1_WITHOUT_THRESHOLD, tmp_path)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True)
    tokenizer = instantiate(cfg.model.tokenizer)
    backbone = instantiate(cfg.model.backbone, tokenizer=tokenizer)
    reward_model = instantiate(cfg.model.reward_model, backbone=backbone, num_heads=1)
    datamodule = instantiate(cfg.dataset, tokenizer=tokenizer)
    datamodule.setup()
    summary, _ = run_phase1(ensemble_run(cfg, out), reward_model, datamodule)
    assert summary["ens/phase1/steps"] == 2 and summary["ens/phase1/reached_threshold"] == 0.0


# ---- item 12a/b: completions made one by the tokenizer; positions as in the file ---------------------


@pytest.fixture(scope="module")
def tokenizer():
    from rcollapse.models.tiny_encoder import build_tiny_tokenizer

    return build_tiny_tokenizer()


def test_completions_the_tokenizer_maps_to_unknown_tokens_are_named_as_such(tokenizer):
    row = RankingRow("r1", "what is it", ("日本語", "中文字"), 0.0)
    with pytest.raises(MalformedRowError) as err:
        check_truncation({"train": [row]}, tokenizer, 32)
    message = str(err.value)
    assert message.startswith("row r1 (train): completions 0 and 1 differ as texts ('日本語' and '中文字') but their "
                              "tokens are identical: the tokenizer maps the characters where they differ to its "
                              "unknown token '[UNK]'")
    assert "truncation" not in message and "model.max_length" not in message


def test_a_row_the_cut_makes_one_still_names_the_truncation(tokenizer):
    shared = " ".join(["word"] * 30)
    with pytest.raises(MalformedRowError, match=r"^model\.max_length=16: row r2 \(test\): completions 0 and 1 are "
                                                r"identical after truncation to 16 tokens .* good' and .* bad'\)"):
        check_truncation({"test": [RankingRow("r2", "p", (shared + " good", shared + " bad"), 0.0)]}, tokenizer, 16)


def _rankings_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_duplicate_completions_are_numbered_as_in_the_user_s_file(tokenizer, tmp_path):
    from rcollapse.data.sources import read_jsonl_rows

    good = {"prompt": "p", "completions": ["a", "b"], "type": "open"}
    # best first: "b" (rank 0, file position 1), "c", "b" (file position 3), "a"
    duplicate = {"prompt": "q", "completions": ["a", "b", "c", "b"], "ranking": [3, 0, 1, 2], "type": "open"}
    path = _rankings_file(tmp_path / "train.jsonl", [good, duplicate])
    with pytest.raises(MalformedRowError) as err:
        check_truncation({"train": read_jsonl_rows(path)}, tokenizer, 32)
    assert str(err.value).startswith(f"row {path}:2 (train): completions 1 and 3 are the same text with different "
                                     "ranks ('b')")
    named = _rankings_file(tmp_path / "named.jsonl", [good, {**duplicate, "id": "q-7"}])
    with pytest.raises(MalformedRowError, match=rf"^row q-7 \(train, {named}, line 2\): completions 1 and 3 are"):
        check_truncation({"train": read_jsonl_rows(named)}, tokenizer, 32)


def test_completions_made_one_are_numbered_as_in_the_user_s_file(tokenizer, tmp_path):
    from rcollapse.data.sources import read_jsonl_rows

    row = {"id": "u", "prompt": "q", "completions": ["ok", "日本", "fine", "中文"], "ranking": [0, 3, 1, 2],
           "type": "open"}
    rows = read_jsonl_rows(_rankings_file(tmp_path / "test.jsonl", [row]))
    with pytest.raises(MalformedRowError, match=r"^row u \(test, .*line 1\): completions 1 and 3 differ as texts "
                                                r"\('日本' and '中文'\)"):
        check_truncation({"test": rows}, tokenizer, 32)


# ---- item 12c: a non-finite loss before and after the first checkpoint ------------------------------


def test_a_loss_non_finite_before_any_checkpoint_says_the_run_starts_again(tmp_path):
    from rcollapse.runs.training_run import NonFiniteLossError

    # eps: 0 is the un-shifted x_inv: U(0) = -inf, the loss is non-finite at the first step
    with pytest.raises(NonFiniteLossError) as err:
        run(compose_config(["utility=x_inv", "utility.eps=0", *FAST_TRAINING], tmp_path))
    message = str(err.value)
    assert "at global step 0" in message
    assert f"no checkpoint was written before the loss went non-finite (none in {tmp_path / 'run' / 'checkpoints'})"\
        in message and "start the run again with the change, in a new dir" in message
    assert "last checkpoint is in" not in message and not (tmp_path / "run" / "checkpoints").exists()


def test_a_loss_non_finite_after_a_checkpoint_names_it_and_the_resume(tmp_path, monkeypatch):
    import torch

    from rcollapse.runs.training_run import NonFiniteLossError
    from rcollapse.stages import ranking_reward_module

    finite = ranking_reward_module.ranking_loss
    calls = []

    def nan_from_the_fifth_step(*args, **kwargs):
        calls.append(1)
        loss = finite(*args, **kwargs)
        return loss if len(calls) < 5 else loss * torch.tensor(float("nan"))

    monkeypatch.setattr(ranking_reward_module, "ranking_loss", nan_from_the_fifth_step)
    with pytest.raises(NonFiniteLossError) as err:  # FAST_TRAINING checkpoints at step 3
        run(compose_config(["utility=x", *FAST_TRAINING], tmp_path))
    out = tmp_path / "run"
    message = str(err.value)
    assert "is nan at global step" in message
    assert (f"then resume from the run's latest checkpoint, {out / 'checkpoints' / 'last.ckpt'}, with resume={out} "
            "resume_force=true") in message
    assert (out / "checkpoints" / "last.ckpt").exists()
