"""The real experiments at their real widths: the model copies (real widths, 1-2 layers, random
weights, stand-in tokenizers), the data copies, and each experiment run end to end by
``benchmarks.real_shapes`` (the slow tests, one per experiment, in `make test-full`)."""

from __future__ import annotations

import fcntl
import json
import math
from pathlib import Path

import pytest
import torch

from rcollapse.models.architectures import (
    architecture_config,
    architecture_parameter_count,
    build_from_config,
)
from rcollapse.models.real_shape_copies import (
    COPIES,
    layer_overrides,
    real_shape_copy,
    stand_in_tokenizer,
)

# ---- fast: the judge's architecture, the layer cut, the stand-in tokenizers -------------------------


def test_the_judge_architecture_is_llama3_8b_as_a_one_label_classifier():
    config = architecture_config("sfairXC/FsfairX-LLaMA3-RM-v0.1")
    assert (config.hidden_size, config.intermediate_size, config.num_attention_heads, config.num_key_value_heads,
            config.vocab_size, config.rope_parameters["rope_theta"], config.max_position_embeddings, config.rms_norm_eps,
            config.num_hidden_layers, config.num_labels) == (4096, 14336, 32, 8, 128256, 500000.0, 8192, 1e-5, 32, 1)
    # Llama-3-8B is 8.03B with its 0.53B LM head; the classifier has a 4096 x 1 score head instead
    assert architecture_parameter_count("fsfairx-llama3-rm") == pytest.approx(7.50e9, rel=0.01)


@pytest.mark.parametrize("name", sorted(COPIES))
def test_the_layer_cut_keeps_every_width(name):
    full, cut = architecture_config(name), architecture_config(name, **layer_overrides(name, 2))
    layers = {k: v for k, v in cut.to_dict().items() if v == 2 and k in ("n_layer", "num_layers", "num_hidden_layers")}
    assert layers, cut
    for key in ("hidden_size", "n_embd", "intermediate_size", "num_attention_heads", "n_head", "num_heads",
                "num_key_value_heads", "vocab_size", "head_dim", "max_position_embeddings", "n_positions"):
        assert getattr(cut, key, None) == getattr(full, key, None), key
    # it builds (meta: no memory), with the real embedding
    model = build_from_config(cut, "meta", auto_class=None)
    assert model.get_input_embeddings().weight.shape == (full.vocab_size, getattr(full, "hidden_size", None)
                                                         or full.n_embd)


def test_the_stand_in_tokenizers_carry_the_real_special_tokens_and_templates():
    gemma = stand_in_tokenizer("gemma")
    assert (gemma.pad_token_id, gemma.eos_token_id, gemma.bos_token_id) == (0, 1, 2)  # Gemma's ids
    chat = [{"role": "user", "content": "a film"}, {"role": "assistant", "content": "great"}]
    assert gemma.apply_chat_template(chat, tokenize=False) == (
        "<bos><start_of_turn>user\na film<end_of_turn>\n<start_of_turn>model\ngreat<end_of_turn>\n")
    llama = stand_in_tokenizer("llama3")
    assert llama.pad_token is None and llama.apply_chat_template(chat, tokenize=False) == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\na film<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\ngreat<|eot_id|>")
    assert llama("a film")["input_ids"][0] == llama.bos_token_id
    deberta = stand_in_tokenizer("deberta")
    ids = deberta("a film", "great")["input_ids"]
    assert ids[0] == deberta.cls_token_id and ids.count(deberta.sep_token_id) == 2 and ids[-1] == deberta.sep_token_id
    gpt2 = stand_in_tokenizer("gpt2")
    assert gpt2.pad_token is None and gpt2.eos_token == "<|endoftext|>" and gpt2.chat_template is None


def test_a_copy_is_written_once_in_the_hub_layout_and_loads_at_its_real_width(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = real_shape_copy("gpt2", tmp_path, num_layers=1)
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= {p.name for p in path.iterdir()}
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert real_shape_copy("gpt2", tmp_path, num_layers=1) == path  # reused, not rewritten
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    model = AutoModelForCausalLM.from_pretrained(str(path))
    assert (model.config.n_layer, model.config.n_embd, model.config.vocab_size) == (1, 768, 50257)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    assert len(tokenizer) < model.config.vocab_size  # the stand-in's vocabulary, inside the real embedding
    out = model(**tokenizer(["a film"], return_tensors="pt"))
    assert out.logits.shape[-1] == 50257 and torch.isfinite(out.logits).all()


# ---- slow: each real experiment end to end (benchmarks.real_shapes, run.py in a subprocess) ---------

@pytest.fixture(scope="session")
def real_shapes_dir(tmp_path_factory) -> Path:
    """One output dir of this session, shared by its xdist workers (ppo_study loads ensemble_gemma's
    artifact): under an xdist worker the base temp dir is the session's ``popen-gwN``."""
    import os

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "real_shapes"
    root.mkdir(exist_ok=True)
    return root


def run_real_shape(name: str, out: Path) -> dict:
    """Run experiment ``name`` through the runner once per session (a file lock: the runs take GBs
    and both cores, so they never overlap), its result and metrics."""
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = out / f"{name}.result.json"
        if not done.is_file():
            if name == "ppo_study" and not (out / "ensemble_gemma" / "ensemble").is_dir():
                run_locked("ensemble_gemma", out)
            run_locked(name, out)
        return json.loads(done.read_text())


def run_locked(name: str, out: Path) -> None:
    from benchmarks import real_shapes

    summary = real_shapes.main(["--only", name, "--out", str(out)])
    (out / f"{name}.result.json").write_text(json.dumps(summary["results"][0], default=str))


def _ran(result: dict, steps: int) -> dict:
    assert result["returncode"] == 0, Path(result["log"]).read_text()[-3000:]
    assert result["steps"] == steps and result["per_step_s"] > 0
    return result["metrics"]


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(3000)  # may wait for the other runs' lock
def test_ensemble_gemma_runs_both_phases_at_gemma_2b_width(real_shapes_dir):
    result = run_real_shape("ensemble_gemma", real_shapes_dir)
    metrics = _ran(result, result["steps"])
    model = result["models"]["model.name_or_path"]
    assert (model["hidden_size"], model["vocab_size"], model["num_layers"]) == (2048, 256000, 1)
    assert metrics["ens/phase1/steps_run"] == 2 and metrics["ens/phase1/steps_planned"] >= 2
    assert metrics["ens/phase2/steps_run"] >= 1 and metrics["ens/phase2/steps_planned"] >= metrics["ens/phase2/steps_run"]
    artifact = real_shapes_dir / "ensemble_gemma" / "ensemble"
    assert json.loads((artifact / "ensemble.json").read_text())["num_heads"] == 10
    assert (real_shapes_dir / "ensemble_gemma" / "ensemble_accuracy.md").is_file()


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(3000)  # it runs ensemble_gemma first when that has not run yet
def test_ppo_study_runs_at_batch_128_with_the_gemma_ensemble_and_the_llama3_judge(real_shapes_dir):
    result = run_real_shape("ppo_study", real_shapes_dir)
    metrics = _ran(result, result["steps"])
    judge = result["models"]["judge.name_or_path"]
    assert (judge["hidden_size"], judge["vocab_size"]) == (4096, 128256)
    assert f"stage.ensemble_path={real_shapes_dir / 'ensemble_gemma' / 'ensemble'}" in result["command"]
    assert math.isfinite(metrics["ppo/test/judge_mean"]) and math.isfinite(metrics["ppo/test/judge_mean_ref"])
    assert metrics["ppo/test/judge_num_prompts"] > 0
    assert (real_shapes_dir / "ppo_study" / "judge_scores.json").is_file()
    config = (real_shapes_dir / "ppo_study" / "config_resolved.yaml").read_text()
    assert "batch_size: 128" in config


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(3000)  # may wait for the other runs' lock
@pytest.mark.parametrize(("name", "key", "hidden", "vocab"), [
    ("collapse_longform", "model.name_or_path", 768, 128100),
    ("collapse_stackexchange", "model.name_or_path", 2048, 50257)])
def test_the_collapse_experiments_run_20_steps_at_their_widths(name, key, hidden, vocab, real_shapes_dir):
    result = run_real_shape(name, real_shapes_dir)
    metrics = _ran(result, 20)
    assert (result["models"][key]["hidden_size"], result["models"][key]["vocab_size"]) == (hidden, vocab)
    assert any(k.startswith("rm/test/") for k in metrics), sorted(metrics)
    assert (real_shapes_dir / name / "figures").is_dir()
