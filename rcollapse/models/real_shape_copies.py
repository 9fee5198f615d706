"""Local copies of the real models at their real widths, with 1-2 layers, in the hub's layout.

A real experiment (``experiment=ensemble_gemma``, ``ppo_study``, ``collapse_longform``,
``collapse_stackexchange``) loads its models by hub name or from a local directory
(``model.name_or_path``, ``judge.name_or_path``). Offline, no real checkpoint can be had; what can
be had is a directory in the same layout (``config.json``, ``model.safetensors``, the tokenizer's
files) holding the published configuration (``rcollapse/models/architectures/NAME.json``) with
``num_hidden_layers`` cut to 1-2 and random weights. Every width stays real: hidden size, heads,
key/value heads, intermediate size and the embedding's full vocabulary (Gemma's 256,000 x 2,048),
so a step through such a copy runs the real code path at the real widths, one or two layers deep.

The tokenizer is a stand-in (a byte-level BPE trained here on a few sentences, with the real
model's special tokens and chat template where it has one): the real ones cannot be downloaded
offline. Its vocabulary is smaller than the embedding, which keeps its real size; ids the stand-in
does not know decode to nothing (a random policy mostly samples such ids).

:func:`real_shape_copy` writes a copy once into a cache directory (they are GBs) and reuses it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from rcollapse.models.architectures import (
    architecture_config,
    architecture_record,
    build_from_config,
)

# each copy's architecture, the dtype it is saved in (the published checkpoint's) and its tokenizer kind
COPIES = {
    "gemma-2b-it": {"dtype": "bfloat16", "tokenizer": "gemma"},
    "gpt-neo-1.3B": {"dtype": "float32", "tokenizer": "gpt2"},
    "deberta-v3-base": {"dtype": "float32", "tokenizer": "deberta"},
    "gpt2": {"dtype": "float32", "tokenizer": "gpt2"},
    "fsfairx-llama3-rm": {"dtype": "bfloat16", "tokenizer": "llama3"},
}
COMPLETE = "real_shape_copy.json"  # written last: a copy without it is incomplete and rewritten

# The chat templates of the real tokenizers (Gemma's and Llama-3-Instruct's, simplified: no
# system-role checks), so that chat formatting runs as on the real models.
GEMMA_CHAT = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
              "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim"
              " + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")
LLAMA3_CHAT = ("{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
               " + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
               "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
               "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
SPECIALS = {
    "gpt2": ["<|endoftext|>"],
    "gemma": ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
    "deberta": ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"],
    "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
}
_WORDS = ("the a film movie review question answer how why what is was were good bad great slow long short plot "
          "cast story user assistant model help please write explain list three reasons apple mac phone file "
          "system error install update screen battery one two more words than never once being with and of to "
          "in it that this for on not but you i can will would should about because").split()


def _corpus() -> list[str]:
    """A few thousand short sentences over a small English word list and the offline generators'
    pseudo-words (deterministic): the local data copies' words are then one token or two, so the
    copies' sequences stay short."""
    from rcollapse.data.synthetic_longform import lexicon

    words = [*_WORDS, *lexicon(0)]
    g = torch.Generator().manual_seed(0)
    picks = torch.randint(0, len(words), (4000, 12), generator=g).tolist()
    return [" ".join(words[i] for i in row) + " ." for row in picks]


def layer_overrides(name: str, num_layers: int) -> dict:
    """The config values that cut architecture ``name`` to ``num_layers`` layers (GPT-Neo's
    alternating global/local attention pattern cut with them)."""
    model_type = architecture_record(name)["config"]["model_type"]
    if model_type == "gpt2":
        return {"n_layer": num_layers}
    if model_type == "gpt_neo":
        kinds = ["global", "local"][:num_layers]
        return {"num_layers": num_layers, "attention_types": [[kinds, num_layers // len(kinds)]],
                "attention_layers": (kinds * num_layers)[:num_layers]}
    return {"num_hidden_layers": num_layers}


def stand_in_tokenizer(kind: str):
    """A byte-level BPE tokenizer with the real one's special tokens, post-processing and chat
    template: ``gpt2`` (GPT-2 / GPT-Neo: EOS, no pad), ``gemma`` (pad/eos/bos ids 0/1/2 as Gemma's,
    BOS prepended, its chat template), ``deberta`` ([CLS] A [SEP] B [SEP]), ``llama3`` (BOS
    prepended, Llama-3-Instruct's chat template, no pad)."""
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import GPT2TokenizerFast, PreTrainedTokenizerFast

    specials = SPECIALS[kind]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_corpus(), vocab_size=4096, min_frequency=1, special_tokens=specials)
    backend = bpe._tokenizer
    if kind == "gpt2":
        return GPT2TokenizerFast(tokenizer_object=backend, eos_token=specials[0], bos_token=specials[0],
                                 unk_token=specials[0])
    if kind == "deberta":
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
        return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", cls_token="[CLS]",
                                       sep_token="[SEP]", unk_token="[UNK]", mask_token="[MASK]")
    bos = specials[2] if kind == "gemma" else specials[0]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B:1", special_tokens=[(bos, backend.token_to_id(bos))])
    if kind == "gemma":
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                            bos_token="<bos>", unk_token="<unk>", padding_side="left")
        tokenizer.chat_template = GEMMA_CHAT
    else:
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=specials[0], eos_token="<|eot_id|>")
        tokenizer.chat_template = LLAMA3_CHAT
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    return tokenizer


def write_real_shape_copy(name: str, directory: str | Path, num_layers: int = 1, seed: int = 0) -> Path:
    """Write architecture ``name`` at its real widths with ``num_layers`` layers and random weights
    (seeded), and its stand-in tokenizer, into ``directory`` in the hub's layout."""
    if name not in COPIES:
        raise ValueError(f"no real-shape copy for {name!r}; the copies are {', '.join(COPIES)}")
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
    directory = Path(directory)
    spec, record = COPIES[name], architecture_record(name)
    tokenizer = stand_in_tokenizer(spec["tokenizer"])
    config = architecture_config(name, **layer_overrides(name, num_layers))
    if tokenizer.pad_token_id is not None and config.model_type != "gpt2":
        config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    model = build_from_config(config, "cpu", spec["dtype"], auto_class=record["auto_class"])
    if directory.exists():
        shutil.rmtree(directory)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    del model
    facts = {"architecture": name, "hub_name": record["hub_name"], "num_layers": num_layers,
             "published_layers": layer_count(record["config"]), "hidden_size": width(record["config"]),
             "vocab_size": record["config"]["vocab_size"], "tokenizer_vocab": len(tokenizer), "dtype": spec["dtype"],
             "seed": seed}
    (directory / COMPLETE).write_text(json.dumps(facts, indent=2))
    return directory


def layer_count(config: dict) -> int:
    """The layer count of a published config (``n_layer``, ``num_layers`` or ``num_hidden_layers``)."""
    return config.get("num_hidden_layers", config.get("num_layers", config.get("n_layer")))


def width(config: dict) -> int:
    """The hidden size of a published config (``hidden_size`` or GPT-2's ``n_embd``)."""
    return config.get("hidden_size", config.get("n_embd"))


def real_shape_copy(name: str, cache_dir: str | Path, num_layers: int = 1, seed: int = 0) -> Path:
    """The copy of ``name`` with ``num_layers`` layers under ``cache_dir``: written on first use
    (an incomplete one rewritten), reused after."""
    directory = Path(cache_dir) / f"{name}-L{num_layers}-seed{seed}"
    marker = directory / COMPLETE
    if marker.is_file() and json.loads(marker.read_text()).get("num_layers") == num_layers:
        return directory
    return write_real_shape_copy(name, directory, num_layers, seed)


def copy_facts(directory: str | Path) -> dict:
    """What a copy records about itself (architecture, layers, widths, tokenizer size)."""
    return json.loads((Path(directory) / COMPLETE).read_text())
