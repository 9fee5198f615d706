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
