"""A run's cost in its outputs (issue 17, item 3): wall time, peak memory, throughput and the
device in every run's metrics.json, and the report's Cost section."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from rcollapse.analysis.sweep_report import collect_runs, cost_summary, main
from rcollapse.runs.run_cost import (
    BatchCount,
    RunCost,
    Throughput,
    ThroughputMeter,
    cost_line,
    count_batch,
    cpu_model_name,
    describe_device,
    maxrss_bytes,
    vmhwm_bytes,
)
from tests.conftest import FAST_TRAINING, compose_config
from tests.test_sweep_report import fake_metrics, make_job


# ---- the pure calculations -------------------------------------------------------------------------
def test_ru_maxrss_is_kilobytes_on_linux_and_bytes_on_macos():
    assert maxrss_bytes(1_000_000, "Linux") == 1_024_000_000
    assert maxrss_bytes(1_000_000, "Darwin") == 1_000_000
    assert maxrss_bytes(2048, "FreeBSD") == 2048 * 1024


def test_peak_rss_from_proc_status():
    status = "Name:\tpython\nVmPeak:\t  900000 kB\nVmHWM:\t  524288 kB\nVmRSS:\t  10000 kB\n"
    assert vmhwm_bytes(status) == 524288 * 1024
    assert vmhwm_bytes("Name:\tpython\n") is None


def test_cpu_model_name_and_device_strings():
    assert cpu_model_name("processor\t: 0\nmodel name\t: AMD EPYC  7763 64-Core Processor\n") == \
        "AMD EPYC 7763 64-Core Processor"
    assert cpu_model_name("processor\t: 0\nHardware\t: BCM2835\n") == "BCM2835"  # ARM
    assert cpu_model_name("")  # platform's answer, never empty
    assert describe_device("cuda", "NVIDIA H200", 1) == "cuda: NVIDIA H200 x1"
    assert describe_device("cpu", "Xeon", 1, threads=8) == "cpu: Xeon, 8 threads"
    assert describe_device("cpu", "Xeon", 2, threads=1) == "cpu: Xeon, 1 thread x2 processes"


def test_count_batch_token_batches_count_rows_and_non_padding_tokens():
    # the reward stage: B·n completions, right-padded
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    batch = {"input_ids": torch.ones(3, 5, dtype=torch.long), "attention_mask": mask,
             "group_sizes": torch.tensor([3]), "row_ids": ["a"]}
    assert count_batch(batch) == BatchCount(sequences=3, tokens=10)
    # preference pairs as PreferenceCollator lays them out: 2B rows, chosen then rejected, and the indices
    pairs = {"input_ids": torch.ones(4, 3, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]]),
             "token_type_ids": torch.zeros(4, 3, dtype=torch.long), "index": torch.tensor([7, 9])}
    assert count_batch(pairs) == BatchCount(4, 8)
    # pairs under separate keys, one of them without a mask (every id counts)
    split = {"chosen_input_ids": torch.ones(2, 3), "chosen_attention_mask": torch.tensor([[1, 0, 0], [1, 1, 0]]),
             "rejected_input_ids": torch.ones(2, 4)}
    assert count_batch(split) == BatchCount(4, 3 + 8)


def test_count_batch_features_prompts_and_unknown_batches():
    features = {"features": torch.zeros(6, 16), "index": torch.arange(3)}  # ensemble phase 2: 2 rows a pair
    assert count_batch(features) == BatchCount(6, None)
    assert count_batch(torch.zeros(5, 2)) == BatchCount(5, None)
    assert count_batch((torch.zeros(7, 2), torch.zeros(7))) == BatchCount(7, None)
    assert count_batch(["prompt one", "prompt two"]) == BatchCount(2, None)  # PPO: one rollout a prompt
    assert count_batch({"something": 3}) == BatchCount(None, None)
    assert count_batch(object()) == BatchCount(None, None)
    assert count_batch("a string") == BatchCount(None, None)


def test_throughput_rates_are_over_the_time_of_the_batches_that_carry_each_unit():
    t = Throughput()
    t.add(BatchCount(4, 100), 2.0)
    t.add(BatchCount(4, None), 1.0)  # cached features: sequences, no tokens
    t.add(BatchCount(None, None), 1.0)  # nothing countable: a batch
    m = t.metrics()
    assert m["cost/train_s"] == 4.0 and m["cost/train_batches"] == 3
    assert m["cost/train_batches_per_s"] == pytest.approx(3 / 4)
    assert m["cost/train_sequences_per_s"] == pytest.approx(8 / 3)
    assert m["cost/train_tokens_per_s"] == pytest.approx(100 / 2)
    only_batches = Throughput()
    only_batches.add(BatchCount(None, None), 0.5)
    assert set(only_batches.metrics()) == {"cost/train_s", "cost/train_batches", "cost/train_batches_per_s"}
    assert Throughput().metrics() == {}


def test_two_fits_add_up_and_ddp_ranks_sum_counts_over_the_slowest_time():
    phase1, phase2 = Throughput(), Throughput()
    phase1.add(BatchCount(8, 80), 4.0)
    phase2.add(BatchCount(8, None), 1.0)
    phase1.merge(phase2)
    assert phase1.metrics()["cost/train_sequences_per_s"] == pytest.approx(16 / 5)
    assert phase1.metrics()["cost/train_tokens_per_s"] == pytest.approx(80 / 4)
    rank0, rank1 = Throughput(), Throughput()
    rank0.add(BatchCount(4, 40), 2.0)
    rank1.add(BatchCount(4, 60), 2.5)
    both = Throughput.across_ranks([rank0.as_list(), rank1.as_list()])
    assert both.sequences == 8 and both.tokens == 100 and both.train_s == 2.5 and both.batches == 2
    assert both.metrics()["cost/train_sequences_per_s"] == pytest.approx(8 / 2.5)


def test_cost_line():
    cost = {"cost/wall_s": 12.34, "cost/peak_rss_gb": 1.234, "cost/train_sequences_per_s": 850.2,
            "cost/device": "cpu: Xeon, 8 threads"}
    assert cost_line(cost) == "cost: 12.3 s wall, peak RSS 1.23 GB, 850 sequences/s on cpu: Xeon, 8 threads"
    assert cost_line({"cost/wall_s": 0.5, "cost/peak_rss_gb": 0.3, "cost/device": "cpu: X"}) == \
        "cost: 0.5 s wall, peak RSS 0.3 GB on cpu: X"


def test_run_cost_measures_wall_and_memory_and_takes_the_trainers_counts():
    with RunCost() as meter:
        fit = Throughput()
        fit.add(BatchCount(10, 50), 0.5)
        meter.add_training(fit)
        meter.note_device("cpu: Xeon, 1 thread")
        blob = bytearray(50_000_000)  # noqa: F841 - held while measured
    cost = meter.metrics()
    assert cost["cost/wall_s"] > 0 and cost["cost/peak_rss_gb"] > 0.05
    assert cost["cost/device"] == "cpu: Xeon, 1 thread"
    assert cost["cost/train_sequences_per_s"] == pytest.approx(20)
    assert ("cost/peak_gpu_mem_gb" in cost) == torch.cuda.is_available()


def test_each_run_in_one_process_gets_its_own_peak_rss():
    from rcollapse.runs.run_cost import _reset_peak_rss, peak_rss_bytes

    if not _reset_peak_rss():
        pytest.skip("no /proc/self/clear_refs here: the peak is the process's")
    blob = bytearray(800_000_000)  # an earlier job's peak
    blob[::4096] = b"x" * len(blob[::4096])  # touched: resident
    del blob
    before = peak_rss_bytes(reset_worked=True)
    with RunCost() as meter:
        pass
    assert meter.metrics()["cost/peak_rss_gb"] * 1e9 < before - 500_000_000


# ---- real runs ----------------------------------------------------------------------------------
def test_a_reward_run_writes_every_cost_key(tmp_path, capsys):
    import time

    from rcollapse.pipeline import run

    started = time.monotonic()
    run(compose_config(FAST_TRAINING, tmp_path))
    elapsed = time.monotonic() - started
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    cost = {k: v for k, v in metrics.items() if k.startswith("cost/")}
    expected = {"cost/wall_s", "cost/peak_rss_gb", "cost/device", "cost/train_s", "cost/train_batches",
                "cost/train_batches_per_s", "cost/train_sequences_per_s", "cost/train_tokens_per_s"}
    assert expected <= set(cost)
    assert ("cost/peak_gpu_mem_gb" in cost) == torch.cuda.is_available()
    assert isinstance(cost["cost/device"], str) and cost["cost/device"].startswith("cpu")
    assert all(isinstance(v, float) for k, v in cost.items() if k != "cost/device")
    # durations of this run in seconds (not a timestamp, not ms): within what the test saw it take
    assert 0 < cost["cost/train_s"] < cost["cost/wall_s"] <= elapsed
    assert 0.05 < cost["cost/peak_rss_gb"] < 100
    assert cost["cost/train_batches"] == 6  # stage.max_steps=6, one batch a step
    # 4 prompts a batch, each with its completions: more sequences than batches, more tokens than sequences
    assert cost["cost/train_tokens_per_s"] > cost["cost/train_sequences_per_s"] > 4 * cost["cost/train_batches_per_s"]
    out = capsys.readouterr().out
    assert "cost: " in out and " s wall, peak RSS " in out and " sequences/s" in out and " on cpu" in out
    assert "rm/test/pair_acc" in metrics  # the stage's metrics stay


@pytest.mark.parametrize(("overrides", "stage_key"), [
    (["stage=theory", "stage.theory.n=20"], "theory/objective"),
    (["stage=bandit", "stage.bandit.num_draws=2000", "stage.bandit.d=200"], None),
], ids=["theory", "bandit"])
def test_stages_without_a_trainer_get_wall_time_memory_and_device_only(tmp_path, overrides, stage_key):
    from rcollapse.pipeline import run

    run(compose_config(overrides, tmp_path))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    cost = {k for k in metrics if k.startswith("cost/")}
    assert cost == {"cost/wall_s", "cost/peak_rss_gb", "cost/device", *(["cost/peak_gpu_mem_gb"]
                                                                         if torch.cuda.is_available() else [])}
    assert metrics["cost/wall_s"] > 0 and metrics["cost/peak_rss_gb"] > 0
    assert metrics["cost/device"].startswith("cpu: ")
    assert len(metrics) > len(cost) and (stage_key is None or stage_key in metrics)  # the stage's own stay


def test_every_trainer_has_one_throughput_meter(tmp_path):
    from rcollapse.runs.training_run import build_trainer

    cfg = compose_config(FAST_TRAINING, tmp_path)
    trainer = build_trainer(cfg, [], False)
    assert sum(isinstance(c, ThroughputMeter) for c in trainer.callbacks) == 1


# ---- the report ---------------------------------------------------------------------------------
def _with_cost(metrics: dict, wall: float, seqs: float, device: str = "cpu: Xeon, 2 threads") -> dict:
    return {**metrics, "cost/wall_s": wall, "cost/peak_rss_gb": 1.5, "cost/train_s": wall / 2,
            "cost/train_sequences_per_s": seqs, "cost/train_tokens_per_s": 10 * seqs, "cost/device": device}


def test_the_report_shows_the_cost_per_setting_and_keeps_it_in_report_csv(tmp_path, capsys):
    root = tmp_path / "multirun"
    num = 0
    for utility, wall in (("x", 10.0), ("log", 30.0)):
        for seed in (0, 1):
            make_job(root, num, [f"utility={utility}", f"seed={seed}"],
                     _with_cost(fake_metrics(0.1), wall + seed * 2, 100.0 * (seed + 1)), {"status": "completed"})
            num += 1
    make_job(root, num, ["utility=log", "seed=2"], status={"status": "failed", "error": "ValueError: boom"})
    df = collect_runs([root])
    assert df.attrs["text_metric_keys"] == ["cost/device"]
    assert df["cost/device"].dropna().tolist() == ["cpu: Xeon, 2 threads"] * 4  # kept as text, not NaN
    table = cost_summary(df)
    assert table.loc["x", "cost/wall_s"] == pytest.approx(11.0) and table.loc["log", "n"] == 2

    assert main([str(root)]) == 0
    out = capsys.readouterr().out
    section = out.split("\nCost (")[1].split("\n\n")[0]
    lines = section.splitlines()
    assert lines[1].split()[:8] == ["utility", "n", "wall", "s", "peak", "RSS", "GB", "train"]
    row_x = next(line for line in lines if line.startswith("x "))
    assert row_x.split()[:4] == ["x", "2", "11", "1.5"] and "150" in row_x and "cpu: Xeon, 2 threads" in row_x
    row_log = next(line for line in lines if line.startswith("log "))
    assert row_log.split()[:3] == ["log", "2", "31"]  # the failed run is in no mean
    assert out.index("Cost (") < out.index("Failed jobs:")
    csv = pd.read_csv(root / "report.csv")
    assert {"cost/wall_s", "cost/peak_rss_gb", "cost/train_sequences_per_s", "cost/device"} <= set(csv.columns)
    assert csv["cost/device"].dropna().eq("cpu: Xeon, 2 threads").all()


def test_the_report_shows_the_cost_per_run_without_groups_and_nothing_without_costs(tmp_path, capsys):
    root = tmp_path / "seeds"
    make_job(root, 0, ["seed=0"], _with_cost(fake_metrics(0.1), 5.0, 40.0), {"status": "completed"})
    make_job(root, 1, ["seed=1"], _with_cost(fake_metrics(0.1), 7.0, 60.0, "cuda: NVIDIA H200 x1"),
             {"status": "completed"})
    assert main([str(root)]) == 0
    section = capsys.readouterr().out.split("\nCost (")[1].split("\n\n")[0]
    assert section.startswith("completed runs;")
    rows = {line.split()[0]: line for line in section.splitlines()[3:]}
    assert set(rows) == {"0", "1"} and rows["1"].split()[1] == "7" and rows["1"].endswith("cuda: NVIDIA H200 x1")

    old = tmp_path / "old"  # runs from before the cost was recorded: the report as it was
    make_job(old, 0, ["utility=x"], fake_metrics(0.1), {"status": "completed"})
    assert main([str(old)]) == 0
    assert "Cost (" not in capsys.readouterr().out
