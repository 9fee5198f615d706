"""Per-prompt diagnostics of every reward run's test splits (issue 18, item 3).

After training, on each split the module tests (``test``, ``train``): the calibration of the
pairwise preferences, the margins, the reward–length correlation
(:mod:`rcollapse.analysis.reward_diagnostics` defines them) as ``rm/{split}/diag/*`` metrics
(they reach ``metrics.json`` through the trainer's callback metrics), ``figures/calibration_{split}.png``
and ``figures/margins_{split}.png`` (and to W&B when a WandbLogger is present), and
``scores_{split}.csv``: one line per completion with its prompt's id and type, its rank, its
length and its reward.

The module keeps each prompt's reward vector in ``eval_rewards`` (its ``test_step``); this
callback reads the same batches in ``on_test_batch_end`` for what the vectors lack: the prompts'
row ids (to find the completions' texts, so their lengths in words, in the data module's rows)
and the non-padding tokens of each (prompt, completion) sequence.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import WandbLogger

from rcollapse.analysis.reward_diagnostics import (
    diagnostics_metrics,
    plot_calibration,
    plot_margins,
    reward_diagnostics,
    score_rows,
    write_scores_csv,
)


def completion_words(text: str) -> int:
    """A completion's length in words (whitespace-separated), as the length task counts them."""
    return len(text.split())


def sequence_tokens(batch: dict, num_sequences: int) -> np.ndarray:
    """Non-padding tokens of each (prompt, completion) sequence of a batch, as the model read them
    (after truncation): from the padded ``attention_mask``, else a packed batch's
    ``sequence_lengths``, else NaN."""
    if "attention_mask" in batch and batch["attention_mask"].dim() == 2 and len(batch["attention_mask"]) == num_sequences:
        return batch["attention_mask"].sum(dim=1).cpu().numpy().astype(float)
    packed = batch.get("packed")
    if isinstance(packed, dict) and "sequence_lengths" in packed:
        return packed["sequence_lengths"].cpu().numpy().astype(float)
    return np.full(num_sequences, np.nan)


class RewardDiagnosticsCallback(L.Callback):
    def __init__(self, output_dir: str, title: str = ""):
        self.output_dir = Path(output_dir)
        self.title = title
        self.row_ids: dict[str, list[str]] = {}
        self.tokens: dict[str, list[np.ndarray]] = {}
        self.results: dict[str, dict] = {}

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module) -> None:
        self.row_ids, self.tokens, self.results = {}, {}, {}

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        split = pl_module.test_split_names[dataloader_idx]
        sizes = [int(n) for n in batch["group_sizes"].tolist()]
        per_sequence = sequence_tokens(batch, sum(sizes))
        starts = np.cumsum([0, *sizes])
        self.row_ids.setdefault(split, []).extend(str(r) for r in batch["row_ids"])
        self.tokens.setdefault(split, []).extend(per_sequence[a:b] for a, b in zip(starts[:-1], starts[1:]))

    def _lengths(self, trainer, split: str, vectors: list[np.ndarray]) -> list[np.ndarray] | None:
        """Each prompt's completion lengths in words, best first, from the data module's rows
        (NaN for a prompt not found or whose size differs); None without rows to read."""
        ids = self.row_ids.get(split, [])
        splits = getattr(getattr(trainer, "datamodule", None), "splits", None)
        if not isinstance(splits, dict) or len(ids) != len(vectors):
            return None
        # the split of that name first (the "train" test split is a probe of the train rows)
        by_id = {}
        for name in [*(n for n in splits if n != split), split]:
            by_id.update({str(row.row_id): row for row in splits.get(name) or []})
        lengths = []
        for row_id, vector in zip(ids, vectors):
            row = by_id.get(row_id)
            if row is None or len(row.completions) != vector.size:
                lengths.append(np.full(vector.size, np.nan))
            else:
                lengths.append(np.array([completion_words(t) for t in row.completions], dtype=float))
        return lengths

    # Callbacks' epoch-end hooks run before the module's, once every test_step has filled
    # ``eval_rewards``; every rank evaluates every prompt, so the numbers agree across ranks.
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        for split in pl_module.test_split_names:
            collected = pl_module.eval_rewards.get(split)
            if not collected:
                continue
            vectors = [np.asarray(v, dtype=np.float64) for v, _ in collected]
            openness = np.array([o for _, o in collected], dtype=np.float64)
            lengths = self._lengths(trainer, split, vectors)
            diagnostics = reward_diagnostics(vectors, openness, lengths)
            tokens = self.tokens.get(split)
            self.results[split] = {
                "diagnostics": diagnostics, "vectors": vectors, "openness": openness, "lengths": lengths,
                "ids": self.row_ids.get(split) if len(self.row_ids.get(split, [])) == len(vectors) else None,
                "tokens": tokens if tokens is not None and len(tokens) == len(vectors) else None,
            }
            metrics = diagnostics_metrics(diagnostics, f"rm/{split}")
            pl_module.log_dict(metrics, add_dataloader_idx=False, sync_dist=True)

    def on_test_end(self, trainer: L.Trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        images = {}
        for split, result in self.results.items():
            title = f"{self.title} ({split} prompts)".strip()
            figures = self.output_dir / "figures"
            images[f"rm/figures/calibration_{split}"] = plot_calibration(
                result["diagnostics"], figures / f"calibration_{split}.png", title=title)
            images[f"rm/figures/margins_{split}"] = plot_margins(
                result["diagnostics"], figures / f"margins_{split}.png", title=title)
            records = score_rows(result["vectors"], result["openness"], result["ids"], result["lengths"],
                                 result["tokens"])
            write_scores_csv(records, self.output_dir / f"scores_{split}.csv")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for key, path in images.items():
                    logger.log_image(key=key, images=[str(path)])
