"""Local copies of hub data sets for tests, laid out as the hub repos (SPEC section 5): parquet
files under ``data/`` and a ``README.md`` whose ``configs`` block names the splits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PRIOR_SPLITS = ("anthropic_helpful", "anthropic_hhh", "shp", "summarize")


def write_hub_copy(root: Path, splits: dict[str, list[dict]]) -> Path:
    """``root/data/<split>-00000-of-00001.parquet`` for each split and a ``README.md`` with the
    ``configs`` block that maps them (as the hub repos of allenai/reward-bench and
    allenai/pref-test-sets)."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split, rows in splits.items():
        pd.DataFrame(rows).to_parquet(root / "data" / f"{split}-00000-of-00001.parquet")
        lines += [f"  - split: {split}", f"    path: data/{split}-*"]
    (root / "README.md").write_text("\n".join([*lines, "---", "", "# a local copy for tests", ""]))
    return root


def rewardbench_rows(counts: dict[str, int]) -> list[dict]:
    """``allenai/reward-bench`` rows (its columns), ``counts[subset]`` pairs per subset."""
    rows = []
    for subset, count in counts.items():
        for i in range(count):
            rows.append({"prompt": f"{subset} prompt {i}", "chosen": f"good answer {i}", "chosen_model": "a",
                         "rejected": f"bad answer {i}", "rejected_model": "b", "subset": subset, "id": len(rows)})
    return rows


def prior_rows(split: str, count: int) -> list[dict]:
    """``allenai/pref-test-sets`` rows: ``prompt`` the previous turns as {content, role} messages
    (three turns for anthropic_hhh, one otherwise), ``chosen``/``rejected`` strings, and the extra
    columns ``subset`` and ``id``."""
    rows = []
    for i in range(count):
        if split == "anthropic_hhh":
            prompt = [{"content": f"hello {i}", "role": "user"}, {"content": "hi, how can I help?", "role": "assistant"},
                      {"content": f"question {i}", "role": "user"}]
        else:
            prompt = [{"content": f"{split} question {i}", "role": "user"}]
        rows.append({"prompt": prompt, "chosen": f"helpful reply {i}", "rejected": f"unhelpful reply {i}",
                     "subset": "harmless", "id": f"{split}-{i}"})
    return rows


def write_prior_copy(root: Path, counts: dict[str, int] | None = None) -> Path:
    """A local ``allenai/pref-test-sets``: the four Prior Sets splits (3 pairs each unless
    ``counts`` says otherwise) and one split the Prior Sets leave out (``pku_safer``)."""
    counts = counts or dict.fromkeys(PRIOR_SPLITS, 3)
    splits = {split: prior_rows(split, n) for split, n in counts.items()}
    splits["pku_safer"] = prior_rows("pku_safer", 2)
    return write_hub_copy(root, splits)


# ---- the real experiments' data sets, small and short (tests/test_real_shapes.py, benchmarks/real_shapes.py)

def _chat(prompt: str, answer: str) -> list[dict]:
    return [{"content": prompt, "role": "user"}, {"content": answer, "role": "assistant"}]


def write_pref_mix_copy(root: Path, num_pairs: int = 256) -> Path:
    """A local ``weqweasdas/preference_dataset_mix2``: one split ``train`` in four shards
    ``data/train-0000k-of-00004-<hash>.parquet``, ``chosen``/``rejected`` chats sharing the user
    turn, an extra column ``chosen_score``; short texts."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    rows = [{"chosen": _chat(f"how do i fix the film file {i} ?", f"install the update {i} and it will work ."),
             "rejected": _chat(f"how do i fix the film file {i} ?", f"no idea {i} ."), "chosen_score": 1.0 + i % 3}
            for i in range(num_pairs)]
    for k in range(4):
        pd.DataFrame(rows[k::4]).to_parquet(root / "data" / f"train-0000{k}-of-00004-{k:04x}beef.parquet")
    lines = ["---", "configs:", "- config_name: default", "  data_files:", "  - split: train", "    path: data/train-*",
             "---", "", "# a local copy for tests", ""]
    (root / "README.md").write_text("\n".join(lines))
    return root


def write_rewardbench_copy(root: Path, per_subset: int = 1) -> Path:
    """A local ``allenai/reward-bench``: split ``filtered`` with ``per_subset`` pairs of every subset
    the benchmark's sections name (rcollapse.data.rewardbench_sections), and ``raw``."""
    from rcollapse.data.rewardbench_sections import SECTION_OF_SUBSET

    rows = rewardbench_rows(dict.fromkeys(SECTION_OF_SUBSET, per_subset))
    return write_hub_copy(root, {"filtered": rows, "raw": rows})


def write_imdb_copy(root: Path, num_train: int = 256, num_test: int = 64) -> Path:
    """A local ``stanfordnlp/imdb``: ``plain_text/{train,test,unsupervised}-00000-of-00001.parquet``
    with ``text`` (``<br />`` markup kept) and ``label``; short reviews."""
    (root / "plain_text").mkdir(parents=True, exist_ok=True)
    for split, count, label in (("train", num_train, None), ("test", num_test, None), ("unsupervised", 8, -1)):
        texts = [f"The film {i} was<br />great fun , with a cast that never once stops being good ." for i in range(count)]
        labels = [label if label is not None else i % 2 for i in range(count)]
        pd.DataFrame({"text": texts, "label": labels}).to_parquet(root / "plain_text" / f"{split}-00000-of-00001.parquet")
    lines = ["---", "configs:", "- config_name: plain_text", "  data_files:"]
    lines += [f"  - split: {s}\n    path: plain_text/{s}-*" for s in ("train", "test", "unsupervised")]
    (root / "README.md").write_text("\n".join([*lines, "---", "", "# a local copy for tests", ""]))
    return root


def write_longform_copy(root: Path, num_rows: int = 200) -> Path:
    """A local ``akoksal/LongForm``: split ``train`` (``input``, ``output``, ``source``, ``subset``),
    answers of 100-120 words (all kept by the task's 100-word rule), one in eight instructions twice
    as long, and small ``validation``/``test`` splits."""
    from rcollapse.data.synthetic_longform import generate_instruction_answer_pairs

    pairs = generate_instruction_answer_pairs(num_rows, seed=5, min_words=100, max_words=120)
    inputs = [p if k % 8 else f"{p} {p}" for k, (p, _) in enumerate(pairs)]
    splits = {"train": {"input": inputs, "output": [a for _, a in pairs]}}
    for split in ("validation", "test"):
        splits[split] = {"input": inputs[:4], "output": [a for _, a in pairs[:4]]}
    (root / "data").mkdir(parents=True, exist_ok=True)
    for split, cols in splits.items():
        n = len(cols["input"])
        pd.DataFrame({**cols, "source": ["synthetic"] * n, "subset": ["s"] * n}).to_parquet(
            root / "data" / f"{split}-00000-of-00001.parquet")
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    lines += [f"  - split: {s}\n    path: data/{s}-*" for s in splits]
    (root / "README.md").write_text("\n".join([*lines, "---", "", "# a local copy for tests", ""]))
    return root


def write_stack_exchange_site_copy(root: Path, data_dir: str, num_questions: int = 1200) -> Path:
    """A local ``HuggingFaceH4/stack-exchange-preferences`` holding the one site folder
    ``data_dir`` (``data/<site>``, as ``dataset.data_dir`` names it)."""
    from rcollapse.data.synthetic_stack_exchange import write_stack_exchange_copy

    site = data_dir.removeprefix("data/").strip("/")
    return write_stack_exchange_copy(root, sites=(site,), num_questions=num_questions, seed=0)
