"""RewardBench in the ensemble's report: fixed subset weights on partial and subsampled runs
(against hand computations), the Prior Sets and the leaderboard's overall score, the notes under
the table, and a saved ensemble evaluated on local copies of reward-bench and pref-test-sets."""

import json

import datasets
import pytest
import torch

from rcollapse.analysis.ensemble_report import (
    accuracy_notes,
    accuracy_table,
    ensemble_metrics,
    variance_by_section,
    write_accuracy_table,
)
from rcollapse.data.rewardbench_sections import SECTION_OF_SUBSET
from rcollapse.models.ensemble_artifact import save_ensemble
from rcollapse.models.reward_model import RewardModel
from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer
from rcollapse.pipeline import run
from tests.conftest import compose_config
from tests.hub_copies import rewardbench_rows, write_hub_copy, write_prior_copy

# A subsampled, partial RewardBench run: Chat's subsets cut to their first 20 pairs, Reasoning with
# math-prm in full, hep-python in full, hep-js cut to 40 pairs and the other code subsets missing;
# Safety in full; Chat Hard and the Prior Sets not evaluated. (pairs, wins) per subset:
PARTIAL = {
    "alpacaeval-easy": (20, 19), "alpacaeval-length": (20, 10), "alpacaeval-hard": (20, 18),
    "mt-bench-easy": (20, 12), "mt-bench-med": (20, 8),
    "refusals-dangerous": (100, 90), "refusals-offensive": (100, 95), "xstest-should-refuse": (154, 140),
    "xstest-should-respond": (250, 200), "donotanswer": (136, 68),
    "math-prm": (447, 134), "hep-python": (164, 123), "hep-js": (40, 10),
}


def _scores(results: dict[str, tuple[int, int]], num_heads: int = 2):
    """(chosen [N, k], rejected [N, k], sections, subsets): per subset, ``wins`` pairs the chosen
    response wins (1 > 0.5) and the rest it loses (0 < 0.5), the same for every head."""
    chosen, subsets = [], []
    for subset, (n, wins) in results.items():
        chosen += [1.0] * wins + [0.0] * (n - wins)
        subsets += [subset] * n
    c = torch.tensor(chosen).unsqueeze(1).repeat(1, num_heads)
    return c, torch.full_like(c, 0.5), [SECTION_OF_SUBSET[s] for s in subsets], subsets


def test_a_partial_subsampled_run_uses_the_fixed_counts_not_the_observed_ones():
    table = accuracy_table(*_scores(PARTIAL))
    row = table["ensemble mean"]
    acc = {s: wins / n for s, (n, wins) in PARTIAL.items()}
    # Chat: weights 100, 95, 95, 28, 40 (the filtered counts), not 20 each
    chat = (100 * 19 / 20 + 95 * 10 / 20 + 95 * 18 / 20 + 28 * 12 / 20 + 40 * 8 / 20) / 358
    assert chat == pytest.approx(260.8 / 358)
    observed_chat = (19 + 10 + 18 + 12 + 8) / 100
    # Reasoning: math-prm 984 against hep-python 164 and hep-js 164 (renormalised over the present)
    reasoning = (984 * 134 / 447 + 164 * 123 / 164 + 164 * 10 / 40) / (984 + 164 + 164)
    observed_reasoning = ((164 + 40) * acc["math-prm"] + 123 + 10) / (2 * (164 + 40))  # math-prm as the code present
    safety = (90 + 95 + 140 + 200 + 68) / 740  # evaluated in full: both weightings agree
    assert row["Chat"] == pytest.approx(100 * chat) and row["Reasoning"] == pytest.approx(100 * reasoning)
    assert row["Safety"] == pytest.approx(100 * safety)
    assert abs(chat - observed_chat) > 0.05 and abs(reasoning - observed_reasoning) > 0.1
    assert row["Reasoning"] == pytest.approx(34.98, abs=0.01) and 100 * observed_reasoning == pytest.approx(47.59, abs=0.01)
    assert list(row) == ["Chat", "Safety", "Reasoning", "Average"]  # no Chat Hard, no Prior Sets, no overall
    assert row["Average"] == pytest.approx(100 * (chat + safety + reasoning) / 3)

    notes = accuracy_notes(_scores(PARTIAL)[3])
    text = "\n".join(notes)
    assert "Chat Hard: not evaluated" in text and "Prior Sets: not evaluated" in text
    assert ("Reasoning: missing hep-cpp, hep-go, hep-java, hep-rust; scored over the present subsets, "
            "their fixed weights renormalised.") in notes
    assert "No RewardBench score: it needs all five sections." in notes
    assert "alpacaeval-easy 20/100" in text and "hep-js 40/164" in text and "math-prm" not in notes[-1]


def _full_run(prior: dict[str, tuple[int, int]] | None):
    """Every core subset with 2 pairs: alpacaeval-easy and math-prm won twice, the others once."""
    results = {s: (2, 2 if s in ("alpacaeval-easy", "math-prm") else 1) for s in SECTION_OF_SUBSET
               if SECTION_OF_SUBSET[s] != "Prior Sets"}
    return {**results, **(prior or {})}


def test_the_overall_score_weighs_the_prior_sets_half():
    prior = {"anthropic_helpful": (4, 3), "anthropic_hhh": (2, 2), "shp": (5, 2), "summarize": (10, 5)}
    chosen, rejected, sections, subsets = _scores(_full_run(prior))
    table = accuracy_table(chosen, rejected, sections, subsets)
    row = table["ensemble mean"]
    chat = (100 * 1.0 + (95 + 95 + 28 + 40) * 0.5) / 358
    reasoning = 0.5 * 1.0 + 0.5 * 0.5
    prior_score = (3 / 4 + 2 / 2 + 2 / 5 + 5 / 10) / 4
    overall = (chat + 0.5 + 0.5 + reasoning + 0.5 * prior_score) / 4.5
    assert row["Chat"] == pytest.approx(100 * chat) and row["Chat Hard"] == pytest.approx(50)
    assert row["Reasoning"] == pytest.approx(75) and row["Prior Sets"] == pytest.approx(100 * prior_score)
    assert row["Average"] == pytest.approx(100 * (chat + 0.5 + 0.5 + reasoning) / 4)  # the four core sections
    assert row["RewardBench score"] == pytest.approx(100 * overall)
    assert list(row) == ["Chat", "Chat Hard", "Safety", "Reasoning", "Prior Sets", "Average", "RewardBench score"]
    metrics = ensemble_metrics(table, variance_by_section(chosen + torch.randn_like(chosen) * 0.01, rejected, sections))
    assert metrics["ens/test/rewardbench_score"] == pytest.approx(overall)
    assert metrics["ens/test/acc_mean"] == pytest.approx(row["Average"] / 100)
    assert metrics["ens/test/prior_sets/acc_mean"] == pytest.approx(prior_score)
    assert "ens/test/rewardbench_score/acc_mean" not in metrics
    assert not any("missing" in n or "not evaluated" in n for n in accuracy_notes(subsets))


def test_without_the_prior_sets_the_table_says_so_and_gives_no_overall_score(tmp_path):
    chosen, rejected, sections, subsets = _scores(_full_run(None))
    table = accuracy_table(chosen, rejected, sections, subsets)
    assert "RewardBench score" not in table["ensemble mean"] and "Prior Sets" not in table["ensemble mean"]
    notes = accuracy_notes(subsets)
    assert "Prior Sets: not evaluated (missing anthropic_helpful, anthropic_hhh, shp, summarize)." in notes
    assert "No RewardBench score: it needs the Prior Sets (dataset.prior_path)." in notes
    write_accuracy_table(table, tmp_path / "acc.csv", tmp_path / "acc.md", notes=notes)
    markdown = (tmp_path / "acc.md").read_text()
    assert "| **ensemble mean** |" in markdown and "- Prior Sets: not evaluated" in markdown
    assert (tmp_path / "acc_notes.txt").read_text().splitlines() == notes
    assert "ens/test/rewardbench_score" not in ensemble_metrics(table, variance_by_section(chosen, rejected, sections))


def test_other_data_keeps_its_sections_and_has_no_notes():
    chosen = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    table = accuracy_table(chosen, torch.full_like(chosen, 0.5), ["Clear", "Clear", "Subtle"])
    assert table["head 0"] == {"Clear": 50.0, "Subtle": 100.0, "Average": 75.0}
    assert accuracy_notes(["Clear", "Clear", "Subtle"]) == []


def test_a_saved_ensemble_on_local_rewardbench_and_prior_sets(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets")
    counts = {s: 2 for s in SECTION_OF_SUBSET if SECTION_OF_SUBSET[s] != "Prior Sets"}
    rb = write_hub_copy(tmp_path / "reward-bench", {"filtered": rewardbench_rows(counts)})
    prior = write_prior_copy(tmp_path / "pref-test-sets")
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    model = RewardModel(build_tiny_encoder(tokenizer, hidden_size=32, num_layers=1, num_heads=2,
                                           intermediate_size=64), num_heads=3)
    model.fit_normalisation(torch.randn(64, 32))
    save_ensemble(model, tokenizer, tmp_path / "ens", max_length=64, head_seeds=[1, 2])
    base = ["stage=ensemble", "dataset=rewardbench", f"stage.ensemble.artifact={tmp_path / 'ens'}",
            f"dataset.path={rb}", "trainer.enable_progress_bar=false"]

    run(compose_config([*base, f"dataset.prior_path={prior}"], tmp_path / "with"))
    out = tmp_path / "with" / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["ens/test/rewardbench_score"] <= 1 and "ens/test/prior_sets/acc_mean" in metrics
    markdown = (out / "ensemble_accuracy.md").read_text()
    assert "| Prior Sets | Average | RewardBench score |" in markdown
    assert "Pairs evaluated / filtered count" in markdown  # 2 pairs of each subset: a subsampled run

    run(compose_config([*base, "dataset.prior_path=null"], tmp_path / "without"))
    out = tmp_path / "without" / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert "ens/test/rewardbench_score" not in metrics and "ens/test/reasoning/acc_mean" in metrics
    assert "No RewardBench score: it needs the Prior Sets (dataset.prior_path)." in (out / "ensemble_accuracy.md").read_text()
