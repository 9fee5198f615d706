"""Resume mistakes (issue 16, item 9): a resume target without a run, and a resume whose config
differs from the interrupted run's, are refused before anything trains."""

import pytest

from rcollapse.config.checks import ConfigError
from rcollapse.pipeline import run
from rcollapse.runs.resume_checks import config_differences, flatten
from tests.conftest import FAST_TRAINING, compose_config


def test_flatten_and_differences_by_hand():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {"a.b": 1, "a.c": [1, 2], "d": {}}
    before = {"utility": {"_target_": "X"}, "seed": 0, "resume": False, "paths": {"cache_dir": "/a"}}
    after = {"utility": {"_target_": "Y"}, "seed": 0, "resume": "/run", "paths": {"cache_dir": "/b"}, "new": 1}
    assert config_differences(before, after) == ["new: '<absent>' -> 1", "utility._target_: 'X' -> 'Y'"]


def test_resume_of_a_dir_without_a_run_is_refused_naming_it(tmp_path):
    missing = tmp_path / "outputs" / "no-such-run"
    with pytest.raises(ConfigError) as err:
        run(compose_config(["stage=theory", f"resume={missing}"], tmp_path))
    assert str(err.value).startswith(f"resume: {missing} holds no run to resume")
    assert not (tmp_path / "run" / "status.json").exists()  # nothing was started


def test_resume_with_another_config_is_refused_listing_the_keys_and_force_allows_it(tmp_path):
    common = ["stage=reward", *FAST_TRAINING]
    run(compose_config([*common, "utility=x"], tmp_path))
    out = tmp_path / "run"
    before = (out / "config_resolved.yaml").read_text()
    with pytest.raises(ConfigError) as err:
        run(compose_config([*common, "utility=log", f"resume={out}"], tmp_path))
    message = str(err.value)
    assert message.startswith(f"resume: the config differs from the run's in {out}")
    assert "utility._target_: 'rcollapse.maths.utilities.LinearUtility' -> 'rcollapse.maths.utilities.LogUtility'" in message
    assert (out / "config_resolved.yaml").read_text() == before  # the run's record is untouched
    run(compose_config([*common, "utility=x", f"resume={out}"], tmp_path))  # the same config resumes
    run(compose_config([*common, "utility=log", f"resume={out}", "resume_force=true"], tmp_path))


def test_a_new_run_in_a_dir_that_holds_a_run_is_refused_and_the_run_kept(tmp_path):
    run(compose_config(["stage=theory"], tmp_path))
    out = tmp_path / "run"
    records = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError) as err:
        run(compose_config(["stage=theory", "seed=1"], tmp_path))
    assert str(err.value).startswith(f"{out} holds a run already (metrics.json)")
    assert f"resume={out}" in str(err.value)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == records
