"""The real backbones' model groups (deberta, gpt2, gpt_neo, gemma_2b) without the hub: their
architectures at the real size on the meta device, their switches (dtype, gradient checkpointing,
freeze_layers, LoRA) on small random models of the same families, last-token pooling under left
and right padding, the offline error, and which stages accept which group."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
from hydra.utils import instantiate

from rcollapse.config.checks import ConfigError, validate_config
from rcollapse.models.architectures import (
    architecture_config,
    architecture_for,
    architecture_names,
    architecture_parameter_count,
    architecture_record,
    build_from_architecture,
    build_from_config,
    parameter_count,
    tiny_architecture_config,
)
from rcollapse.models.backbone_options import (
    BackboneOptionError,
    LoraUnavailableError,
    apply_lora,
    check_backbone_options,
    enable_gradient_checkpointing,
    freeze_lower_layers,
    gradient_checkpointing_enabled,
    merge_lora,
)
from rcollapse.models.hub_models import ModelUnavailableError
from rcollapse.models.reward_model import RewardModel
from tests.conftest import compose_config

ARCHITECTURES = ["deberta-v3-base", "gpt-neo-1.3B", "gemma-2b-it", "gpt2"]
DECODERS = ["gpt-neo-1.3B", "gemma-2b-it"]
# the published sizes: DeBERTa-v3-base 86M backbone + 98M embedding; GPT-Neo 1.3B; Gemma 2B ("2.5B"
# with its 256k-token embedding); GPT-2 small 124M
PUBLISHED = {"deberta-v3-base": 184e6, "gpt-neo-1.3B": 1.3e9, "gemma-2b-it": 2.5e9, "gpt2": 124e6}
# what freeze_layers=N freezes, by parameter name prefix: the embeddings, then layer i < N
EMBEDDINGS = {"deberta-v3-base": ("embeddings.", "encoder.rel_embeddings.", "encoder.LayerNorm."),
              "gpt-neo-1.3B": ("wte.", "wpe."), "gemma-2b-it": ("embed_tokens.",), "gpt2": ("wte.", "wpe.")}
LAYERS = {"deberta-v3-base": "encoder.layer.", "gpt-neo-1.3B": "h.", "gemma-2b-it": "layers.", "gpt2": "h."}
LORA_TARGETS = {"deberta-v3-base": ["query_proj", "value_proj"], "gpt-neo-1.3B": ["q_proj", "v_proj"],
                "gemma-2b-it": ["q_proj", "v_proj"], "gpt2": ["c_attn"]}
GROUPS = {"deberta": "microsoft/deberta-v3-base", "gpt2": "openai-community/gpt2",
          "gpt_neo": "EleutherAI/gpt-neo-1.3B", "gemma_2b": "google/gemma-2b-it"}


def tiny(name: str, vocab_size: int | None = None, dtype=torch.float32):
    torch.manual_seed(0)
    return build_from_config(tiny_architecture_config(name, vocab_size=vocab_size), "cpu", dtype).eval()


def inputs(vocab: int = 1000, batch: int = 2, length: int = 7):
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (batch, length), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


# ---- the real architectures, on the meta device ---------------------------------------------------

def test_every_architecture_is_shipped():
    # the four reward/policy backbones and the PPO judge's Llama-3-8B classifier (tests/test_real_shapes.py)
    assert architecture_names() == sorted([*ARCHITECTURES, "fsfairx-llama3-rm"])
    for hub, name in [("microsoft/deberta-v3-base", "deberta-v3-base"), ("EleutherAI/gpt-neo-1.3B", "gpt-neo-1.3B"),
                      ("google/gemma-2b-it", "gemma-2b-it"), ("openai-community/gpt2", "gpt2")]:
        assert architecture_for(hub) == name and architecture_record(name)["hub_name"] == hub
        assert "published config.json" in architecture_record(name)["_comment"]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_builds_on_meta_with_the_published_parameter_count(name):
    model = build_from_architecture(name, device="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}
    count = parameter_count(model)
    assert count == pytest.approx(PUBLISHED[name], rel=0.03), f"{name}: {count / 1e6:.1f}M parameters"
    assert architecture_parameter_count(name) == count


def test_the_architectures_have_the_published_shapes():
    gemma = architecture_config("gemma-2b-it")
    assert (gemma.hidden_size, gemma.num_hidden_layers, gemma.num_attention_heads, gemma.num_key_value_heads,
            gemma.head_dim, gemma.intermediate_size, gemma.vocab_size) == (2048, 18, 8, 1, 256, 16384, 256000)
    neo = architecture_config("gpt-neo-1.3B")
    assert (neo.hidden_size, neo.num_layers, neo.num_heads, neo.window_size, neo.vocab_size) == (2048, 24, 16, 256, 50257)
    assert neo.attention_layers == ["global", "local"] * 12
    deberta = architecture_config("deberta-v3-base")
    assert (deberta.hidden_size, deberta.num_hidden_layers, deberta.vocab_size, deberta.position_buckets) == (
        768, 12, 128100, 256)
    assert deberta.relative_attention and deberta.share_att_key and not deberta.position_biased_input
    gpt2 = architecture_config("gpt2")
    assert (gpt2.n_embd, gpt2.n_layer, gpt2.n_head, gpt2.n_positions, gpt2.vocab_size) == (768, 12, 12, 1024, 50257)


def test_build_from_architecture_dtype_heads_and_errors():
    assert next(build_from_architecture("gemma-2b-it", dtype="bfloat16").parameters()).dtype == torch.bfloat16
    assert type(build_from_architecture("gpt2")).__name__ == "GPT2LMHeadModel"  # the policy: with its LM head
    assert type(build_from_architecture("gpt-neo-1.3B")).__name__ == "GPTNeoModel"  # a reward backbone: bare
    assert type(build_from_architecture("gemma-2b-it", causal_lm=True)).__name__ == "GemmaForCausalLM"
    with pytest.raises(ValueError, match="encoder"):
        build_from_architecture("deberta-v3-base", causal_lm=True)
    with pytest.raises(ValueError, match="unknown architecture|no architecture"):
        architecture_config("llama-70b")


# ---- the switches, on tiny models of the same families ---------------------------------------------

@pytest.mark.parametrize("name", ARCHITECTURES)
def test_freeze_layers_freezes_exactly_the_embeddings_and_the_lowest_layers(name):
    model = freeze_lower_layers(tiny(name), 2)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    expected = {n for n, _ in model.named_parameters()
                if n.startswith(EMBEDDINGS[name]) or n.startswith((f"{LAYERS[name]}0.", f"{LAYERS[name]}1."))}
    assert frozen == expected
    assert any(n.startswith(f"{LAYERS[name]}2.") for n, p in model.named_parameters() if p.requires_grad)
    untouched = tiny(name)
    assert all(p.requires_grad for p in freeze_lower_layers(untouched, None).parameters())  # null: nothing


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_freeze_layers_beyond_the_layer_count_names_the_key(name):
    with pytest.raises(BackboneOptionError, match=r"model\.freeze_layers: 5 exceeds the 4 transformer layers"):
        freeze_lower_layers(tiny(name), 5)


def test_freeze_layers_of_a_causal_lm_finds_the_layers_inside_it():
    lm = build_from_config(tiny_architecture_config("gpt2"), "cpu", causal_lm=True)
    freeze_lower_layers(lm, 1)
    assert not lm.transformer.h[0].attn.c_attn.weight.requires_grad and lm.transformer.h[1].attn.c_attn.weight.requires_grad
    assert not lm.lm_head.weight.requires_grad  # tied to wte


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_gradient_checkpointing_is_on_and_gives_the_same_gradients(name):
    plain, checkpointed = tiny(name).train(), enable_gradient_checkpointing(tiny(name).train())
    assert gradient_checkpointing_enabled(checkpointed) and not gradient_checkpointing_enabled(plain)
    for model in (plain, checkpointed):
        model(**inputs()).last_hidden_state.sum().backward()
    for (n, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters(), strict=True):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, msg=n)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_bfloat16_weights_and_float32_rewards(name):
    from rcollapse.models.backbone_options import float32_hidden_states

    backbone = tiny(name, dtype=torch.bfloat16)
    assert {p.dtype for p in backbone.parameters()} == {torch.bfloat16}
    reward_model = RewardModel(float32_hidden_states(backbone), pooling="last")
    out = reward_model(**inputs())
    assert out.scores.dtype == torch.float32 and torch.isfinite(out.scores).all()


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_lora_trains_only_the_adapters_and_matches_the_base_at_init(name):
    base = tiny(name)
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": LORA_TARGETS[name]}
    wrapped = apply_lora(copy.deepcopy(base), lora)
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    batch = inputs()
    with torch.no_grad():
        torch.testing.assert_close(wrapped(**batch).last_hidden_state, base(**batch).last_hidden_state)
    reward_model = RewardModel(wrapped, pooling="last")  # the reward heads are built on top: they train
    trainable = [n for n, p in reward_model.named_parameters() if p.requires_grad]
    assert set(trainable) - {n for n in trainable if "lora_" in n} == {"heads.weight", "heads.bias"}
    with torch.no_grad():
        merged = merge_lora(wrapped)
        torch.testing.assert_close(merged(**batch).last_hidden_state, base(**batch).last_hidden_state)
    assert type(merged) is type(base)


def test_lora_with_freeze_layers_trains_the_upper_layers_adapters_only():
    from rcollapse.models.backbone_options import apply_backbone_options

    model = apply_backbone_options(tiny("gemma-2b-it"), freeze_layers=2,
                                   lora={"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["q_proj"]})
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable and all("lora_" in n and (".layers.2." in n or ".layers.3." in n) for n in trainable)


def test_lora_without_peft_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft raises ImportError
    with pytest.raises(LoraUnavailableError, match=r"pip install 'rcollapse\[lora\]'"):
        apply_lora(tiny("gpt2"), {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["c_attn"]})


@pytest.mark.parametrize(("options", "key"), [
    ({"dtype": "float16"}, "model.dtype"),
    ({"gradient_checkpointing": "yes"}, "model.gradient_checkpointing"),
    ({"freeze_layers": -1}, "model.freeze_layers"),
    ({"freeze_layers": True}, "model.freeze_layers"),
    ({"lora": {"r": 0, "target_modules": ["q_proj"]}}, "model.lora.r"),
    ({"lora": {"r": 4}}, "model.lora.target_modules"),
    ({"lora": {"r": 4, "target_modules": ["q_proj"], "rank": 3}}, "model.lora"),
    ({"lora": {"r": 4, "target_modules": ["q_proj"], "dropout": 1.5}}, "model.lora.dropout"),
])
def test_a_bad_switch_names_its_key_before_anything_loads(options, key):
    with pytest.raises(BackboneOptionError, match=key.replace(".", r"\.")):
        check_backbone_options(**options)


def test_a_lora_target_the_model_lacks_names_the_key():
    with pytest.raises(BackboneOptionError, match=r"model\.lora\.target_modules"):
        apply_lora(tiny("gpt2"), {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["no_such_proj"]})


# ---- local copies of the decoders: the model groups load them, pool the last real token ------------

def gpt2_like_tokenizer():
    """A byte-level BPE tokenizer as GPT-2's and GPT-Neo's: EOS `<|endoftext|>`, no pad token, no
    chat template, pairs concatenated (trained here on a few sentences: no download)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    corpus = ["the movie was great", "long and slow , with a plot that goes nowhere", "a prompt", "one two words"]
    bpe.train_from_iterator(corpus * 10, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                                  bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    assert tokenizer.pad_token is None
    return tokenizer


CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
                 "<end_of_turn>\n{% endfor %}")


def gemma_like_tokenizer():
    """The tiny WordPiece tokenizer as a chat model's: a pad token, a chat template, left padding
    by default (the group must set right), no segment ids."""
    from rcollapse.models.tiny_encoder import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.bos_token = "[CLS]"
    tokenizer.padding_side = "left"
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    return tokenizer


@pytest.fixture(scope="module")
def local_decoders(tmp_path_factory) -> dict:
    """``{group: local directory}`` with a tiny random model of the group's family and a tokenizer."""
    root = tmp_path_factory.mktemp("local_decoders")
    dirs = {}
    for group, name, tokenizer in [("gpt_neo", "gpt-neo-1.3B", gpt2_like_tokenizer()),
                                   ("gemma_2b", "gemma-2b-it", gemma_like_tokenizer())]:
        path = root / group
        tiny(name, vocab_size=len(tokenizer)).save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))
        dirs[group] = path
    return dirs


def build_group(group: str, tmp_path, overrides: list[str] = ()):
    cfg = compose_config([f"model={group}", *overrides], tmp_path)
    tokenizer = instantiate(cfg.model.tokenizer)
    backbone = instantiate(cfg.model.backbone, tokenizer=tokenizer)
    return cfg, tokenizer, instantiate(cfg.model.reward_model, backbone=backbone).eval()


@pytest.mark.parametrize("group", ["gpt_neo", "gemma_2b"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_last_token_pooling_reads_the_last_real_token_whichever_side_pads(group, padding_side, local_decoders,
                                                                          tmp_path):
    _, tokenizer, reward_model = build_group(group, tmp_path, [f"model.name_or_path={local_decoders[group]}",
                                                               f"model.tokenizer.padding_side={padding_side}",
                                                               "model.dtype=float32"])
    assert tokenizer.padding_side == padding_side and tokenizer.pad_token is not None
    texts = ["the movie was great", "the movie was long and slow , with a plot that goes nowhere"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # the short one is padded
    with torch.no_grad():
        together = reward_model(**batch).scores[:, 0]
        alone = torch.cat([reward_model(**tokenizer([t], return_tensors="pt")).scores[:, 0] for t in texts])
        # the pooled feature is the hidden state of each text's last token
        hidden = reward_model.backbone(**tokenizer(texts[:1], return_tensors="pt")).last_hidden_state[0, -1]
        pooled = reward_model.features(batch["input_ids"], batch["attention_mask"])[0]
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled, hidden, atol=1e-5, rtol=1e-5)


def test_without_positions_from_the_mask_left_padding_would_move_gpt_neo(local_decoders):
    """Why the decoder loader derives position ids from the mask: GPT-Neo's positions are absolute."""
    from transformers import AutoModel

    from rcollapse.models.reward_model import pool_hidden_states

    tokenizer = gpt2_like_tokenizer()
    tokenizer.pad_token, tokenizer.padding_side = tokenizer.eos_token, "left"
    model = AutoModel.from_pretrained(str(local_decoders["gpt_neo"])).eval()
    texts = ["the movie was great", "the movie was long and slow , with a plot that goes nowhere"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        padded = pool_hidden_states(model(**batch).last_hidden_state, batch["attention_mask"], "last")[0]
        alone = model(**tokenizer(texts[:1], return_tensors="pt")).last_hidden_state[0, -1]
    assert not torch.allclose(padded, alone, atol=1e-4)


def test_gpt_neo_group_pads_with_eos_on_the_right_and_fine_tunes_everything(local_decoders, tmp_path):
    cfg, tokenizer, reward_model = build_group("gpt_neo", tmp_path, [f"model.name_or_path={local_decoders['gpt_neo']}"])
    assert cfg.model.reward_model.pooling == "last" and cfg.model.lora is None
    assert tokenizer.padding_side == "right" and tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    assert reward_model.backbone.config.pad_token_id == tokenizer.eos_token_id
    assert all(p.requires_grad for p in reward_model.parameters())
    assert gradient_checkpointing_enabled(reward_model.backbone)
    assert {p.dtype for p in reward_model.parameters()} == {torch.float32}


def test_gpt_neo_group_with_the_stackllama_lora_trains_the_adapters_and_the_head(local_decoders, tmp_path):
    _, _, reward_model = build_group("gpt_neo", tmp_path, [
        f"model.name_or_path={local_decoders['gpt_neo']}",
        "model.lora={r: 8, alpha: 32, dropout: 0.1, target_modules: [q_proj, v_proj]}"])
    trainable = {n for n, p in reward_model.named_parameters() if p.requires_grad}
    adapters = trainable - {"heads.weight", "heads.bias"}
    assert {"heads.weight", "heads.bias"} < trainable and all("lora_" in n for n in adapters)
    assert {n.split("lora_")[0].rsplit(".", 2)[-2] for n in adapters} == {"q_proj", "v_proj"}
    assert gradient_checkpointing_enabled(reward_model.backbone)
    reward_model.train()
    batch = gpt2_like_tokenizer()(["the movie was great"], return_tensors="pt")
    reward_model(**batch).scores.sum().backward()  # checkpointing with a frozen base: gradients reach the adapters
    assert all(reward_model.get_parameter(n).grad is not None for n in adapters if "lora_B" in n)


def test_gpt_neo_group_full_fine_tuning_with_frozen_layers(local_decoders, tmp_path):
    _, _, reward_model = build_group("gpt_neo", tmp_path, [f"model.name_or_path={local_decoders['gpt_neo']}",
                                                           "model.freeze_layers=3"])
    frozen = {n for n, p in reward_model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in reward_model.named_parameters()
                      if n.startswith(("backbone.wte.", "backbone.wpe.", "backbone.h.0.", "backbone.h.1.",
                                       "backbone.h.2."))}
    assert gradient_checkpointing_enabled(reward_model.backbone)
    with pytest.raises(Exception, match=r"model\.freeze_layers: 9 exceeds the 4 transformer layers"):
        build_group("gpt_neo", tmp_path, [f"model.name_or_path={local_decoders['gpt_neo']}", "model.freeze_layers=9"])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gemma_group_keeps_the_chat_template_pads_right_and_loads_its_dtype(local_decoders, tmp_path, dtype):
    """float32 master weights by default (the group trains them fully; bf16 compute comes from
    trainer.precision=bf16-mixed); bfloat16 still loads, for frozen use, and scores in float32."""
    from rcollapse.data.preference_collator import PreferenceCollator
    from rcollapse.data.preference_pairs import PreferencePair

    overrides = [f"model.name_or_path={local_decoders['gemma_2b']}"] + ([] if dtype == "float32" else [f"model.dtype={dtype}"])
    cfg, tokenizer, reward_model = build_group("gemma_2b", tmp_path, overrides)
    assert cfg.model.dtype == dtype and cfg.model.gradient_checkpointing and cfg.model.lora is None
    assert tokenizer.padding_side == "right" and tokenizer.chat_template == CHAT_TEMPLATE
    assert {p.dtype for p in reward_model.backbone.parameters()} == {getattr(torch, dtype)}
    assert gradient_checkpointing_enabled(reward_model.backbone)
    assert all(p.requires_grad for p in reward_model.parameters())  # the paper's full fine-tune
    collator = PreferenceCollator(tokenizer, max_length=64)
    assert collator.chat
    pair = PreferencePair(pair_id="0", prompt="the movie was", chosen="great", rejected="long and slow")
    batch = collator([(0, pair), (1, PreferencePair(pair_id="1", prompt="a prompt", chosen="one", rejected="two words"))])
    assert "start_of_turn" in tokenizer.decode(batch["input_ids"][0]).replace(" ", "")
    out = reward_model(batch["input_ids"], batch["attention_mask"])
    assert out.scores.dtype == torch.float32 and out.scores.shape == (4, 1)


def test_gemma_group_with_lora_from_the_command_line(local_decoders, tmp_path):
    _, _, reward_model = build_group("gemma_2b", tmp_path, [
        f"model.name_or_path={local_decoders['gemma_2b']}", "model.dtype=float32",
        "model.lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, k_proj, v_proj, o_proj]}"])
    trainable = {n for n, p in reward_model.named_parameters() if p.requires_grad}
    assert {"heads.weight", "heads.bias"} < trainable
    assert all("lora_" in n for n in trainable - {"heads.weight", "heads.bias"})


def test_gpt2_policy_switches(tmp_path):
    from rcollapse.models.policy import (
        PolicyWithValueHead,
        build_tiny_gpt2,
        build_tiny_tokenizer_for_generation,
    )

    tokenizer = build_tiny_tokenizer_for_generation()
    path = tmp_path / "local_policy"
    build_tiny_gpt2(tokenizer).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    cfg = compose_config(["stage=ppo", "model=gpt2", f"model.name_or_path={path}", "model.dtype=bfloat16",
                          "model.gradient_checkpointing=true", "model.freeze_layers=1",
                          "model.lora={r: 2, alpha: 4, dropout: 0.0, target_modules: [c_attn]}"], tmp_path)
    tokenizer = instantiate(cfg.model.tokenizer)
    lm = instantiate(cfg.model.policy, tokenizer=tokenizer)
    assert gradient_checkpointing_enabled(lm)
    trainable = [n for n, p in lm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".h.1." in n for n in trainable)
    assert {p.dtype for n, p in lm.named_parameters() if "lora_" not in n} == {torch.bfloat16}
    policy = PolicyWithValueHead(lm)
    batch = tokenizer(["the movie was", "a"], padding=True, return_tensors="pt")
    logits, values = policy(batch["input_ids"], batch["attention_mask"])
    assert values.dtype == torch.float32 and values.shape == batch["input_ids"].shape


# ---- the model groups' config ------------------------------------------------------------------------

@pytest.mark.parametrize("group", ["deberta", "gpt2"])
def test_the_defaults_keep_todays_deberta_and_gpt2(group, tmp_path):
    cfg = compose_config(["stage=ppo"] * (group == "gpt2") + [f"model={group}"], tmp_path)
    assert (cfg.model.dtype, cfg.model.gradient_checkpointing, cfg.model.freeze_layers, cfg.model.lora) == (
        "float32", False, None, None)
    loader = cfg.model.policy if group == "gpt2" else cfg.model.backbone
    assert {k: loader[k] for k in ("dtype", "gradient_checkpointing", "freeze_layers", "lora")} == {
        "dtype": "float32", "gradient_checkpointing": False, "freeze_layers": None, "lora": None}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_real_group_names_its_architecture(group, tmp_path):
    cfg = compose_config(["stage=ppo"] * (group == "gpt2") + [f"model={group}"], tmp_path)
    assert cfg.model.name_or_path == GROUPS[group]
    assert architecture_for(cfg.model.name_or_path) in ARCHITECTURES
    check_backbone_options(cfg.model.dtype, cfg.model.gradient_checkpointing, cfg.model.freeze_layers,
                           cfg.model.lora)
    if cfg.model.freeze_layers is not None:
        assert cfg.model.freeze_layers <= architecture_config(cfg.model.name_or_path).num_hidden_layers


@pytest.mark.parametrize("group", sorted(GROUPS))
@pytest.mark.parametrize("part", ["tokenizer", "model"])
def test_offline_each_real_group_names_model_name_or_path(group, part, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose_config(["stage=ppo"] * (group == "gpt2") + [f"model={group}"], tmp_path)
    node = cfg.model.tokenizer if part == "tokenizer" else cfg.model.policy if group == "gpt2" else cfg.model.backbone
    kwargs = {} if part == "tokenizer" else {"tokenizer": None}
    with pytest.raises(Exception) as err:  # noqa: PT011 - Hydra may wrap the loader's error
        instantiate(node, **kwargs)
    chain, cause = [], err.value
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__
    assert any(isinstance(e, ModelUnavailableError) for e in chain), repr(err.value)
    assert "model.name_or_path" in str(err.value) and GROUPS[group] in str(err.value)


@pytest.mark.parametrize(("group", "accepted"), [
    ("deberta", {"reward", "ensemble"}), ("gpt_neo", {"reward", "ensemble"}),
    ("gemma_2b", {"reward", "ensemble"}), ("gpt2", {"ppo"}),
])
def test_the_stages_accept_and_refuse_the_real_groups(group, accepted, tmp_path):
    for stage in ("reward", "ensemble", "ppo"):
        cfg = compose_config([f"stage={stage}", f"model={group}"], tmp_path)
        if stage in accepted:
            validate_config(cfg)
        else:
            with pytest.raises(ConfigError, match=f"stage={stage} needs"):
                validate_config(cfg)


def test_the_config_check_of_the_switches_needs_no_download(tmp_path):
    from rcollapse.models.model_checks import check_model_options

    for group in ("tiny", "minilm", "deberta", "gpt_neo", "gemma_2b"):
        check_model_options(compose_config([f"model={group}"], tmp_path).model)
    check_model_options(compose_config(["model=gemma_2b", "model.freeze_layers=18"], tmp_path).model)
    with pytest.raises(BackboneOptionError, match=r"model\.freeze_layers: 19 exceeds the 18 transformer layers of "
                                                  r"google/gemma-2b-it"):
        check_model_options(compose_config(["model=gemma_2b", "model.freeze_layers=19"], tmp_path).model)
    with pytest.raises(BackboneOptionError, match=r"model\.dtype"):
        check_model_options(compose_config(["model=deberta", "model.dtype=fp8"], tmp_path).model)
    with pytest.raises(BackboneOptionError, match=r"model\.lora\.r"):
        check_model_options(compose_config(["model=gpt_neo", "model.lora={r: 0, target_modules: [q_proj]}"],
                                           tmp_path).model)


@pytest.mark.slow
def test_the_gemma_group_runs_the_ensemble_stage_in_bfloat16_with_checkpointing(tmp_path):
    """stage=ensemble end to end on a local tiny Gemma (the group's defaults: bfloat16 weights,
    gradient checkpointing, the chat template, last-token pooling), on CPU."""
    import json

    from rcollapse.pipeline import run

    tokenizer = gemma_like_tokenizer()
    path = tmp_path / "local_gemma"
    torch.manual_seed(0)
    build_from_config(tiny_architecture_config("gemma-2b-it", vocab_size=len(tokenizer)), "cpu").save_pretrained(
        str(path))
    tokenizer.save_pretrained(str(path))
    run(compose_config(["stage=ensemble", "model=gemma_2b", f"model.name_or_path={path}", "model.max_length=96",
                        "dataset.num_train=64", "dataset.num_val=8",
                        "dataset.num_test_per_section=4", "stage.max_steps=4",
                        "stage.val_every_n_steps=2", "stage.checkpoint_every_n_steps=2", "stage.ensemble.num_heads=3",
                        "stage.ensemble.head_epochs=1", "trainer.enable_progress_bar=false"], tmp_path))
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "completed"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["ens/test/var_chosen_median"] > 0
