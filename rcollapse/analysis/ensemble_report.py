"""What the ensemble stage reports (Banerjee & Gopalan, Table 1 and Fig. 6).

- :func:`accuracy_table`: accuracy per evaluation section for each head and for the ensemble
  mean, with their average; on RewardBench the sections weighted the leaderboard's way (fixed
  subset counts), the Prior Sets when evaluated, and the leaderboard's overall score.
- :func:`accuracy_notes`: what the table's RewardBench numbers rest on (missing or subsampled
  subsets), written under it.
- :func:`variance_by_section`: per pair, the sample variance over heads of the chosen reward
  and of the chosen − rejected difference.
- :func:`ensemble_metrics`: the ``ens/test/*`` numbers for ``metrics.json``;
  :func:`variance_summary`: σ² on one scale (raw or normalised), both of which the stage reports.
- :func:`write_accuracy_table`, :func:`plot_variance_histograms`: files beside the numbers.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rcollapse.analysis.figures import pyplot, save_figure
from rcollapse.data.hub_access import DATASET_PRIOR_PATH_KEY
from rcollapse.data.rewardbench_sections import (
    ALL_SECTIONS,
    FILTERED_COUNTS,
    PRIOR_SECTION,
    SECTION_OF_SUBSET,
    missing_subsets,
    overall_score,
    section_scores,
)

AVERAGE = "Average"
# RewardBench's overall score, (Chat + Chat Hard + Safety + Reasoning + ½ Prior Sets) / 4.5
OVERALL = "RewardBench score"
SUMMARY_COLUMNS = (AVERAGE, OVERALL)


def _sections_in_order(sections: list[str]) -> list[str]:
    return list(dict.fromkeys(sections))


def slug(name: str) -> str:
    """A metric-key form of a section name ("Chat Hard" → "chat_hard")."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def is_rewardbench(subsets: Sequence[str]) -> bool:
    """Every pair comes from a RewardBench subset (core or Prior Sets)."""
    return len(subsets) > 0 and all(s in SECTION_OF_SUBSET for s in subsets)


def _row(wins: np.ndarray, sections: list[str], subsets: list[str]) -> dict[str, float]:
    """One table row (fractions): section accuracies, their average and, on RewardBench, the
    overall score. On RewardBench the average is the plain mean of the four core sections
    (Prior Sets left out), the overall score the leaderboard's (only with all five sections)."""
    if is_rewardbench(subsets):
        subsets_arr = np.asarray(subsets)
        acc = {s: float(wins[subsets_arr == s].mean()) for s in _sections_in_order(subsets)}
        row = section_scores(acc)
        core = [v for section, v in row.items() if section != PRIOR_SECTION]
        row[AVERAGE] = float(np.mean(core)) if core else float("nan")
        overall = overall_score(row)
        if overall is not None:
            row[OVERALL] = overall
        return row
    sections_arr = np.asarray(sections)
    row = {s: float(wins[sections_arr == s].mean()) for s in _sections_in_order(sections)}
    row[AVERAGE] = float(np.mean(list(row.values())))
    return row


def accuracy_table(chosen: torch.Tensor, rejected: torch.Tensor, sections: list[str],
                   subsets: list[str] | None = None) -> dict[str, dict[str, float]]:
    """``{row: {section: accuracy %, ..., "Average": %}}`` for rows ``head 0`` … ``head k−1`` and
    ``ensemble mean``; a pair is won only if chosen scores strictly higher.

    On RewardBench pairs (``subsets`` all RewardBench subsets) the sections weigh subsets by
    RewardBench's fixed filtered counts (math-prm as 984), whatever was evaluated; "Average" is
    the plain mean of Chat, Chat Hard, Safety and Reasoning, and with the Prior Sets evaluated a
    "RewardBench score" column holds (Chat + Chat Hard + Safety + Reasoning + ½ Prior Sets) / 4.5.
    :func:`accuracy_notes` says which subsets were missing or subsampled.
    """
    subsets = subsets or sections
    columns = [(f"head {k}", chosen[:, k], rejected[:, k]) for k in range(chosen.size(1))]
    columns.append(("ensemble mean", chosen.mean(1), rejected.mean(1)))
    table = {}
    for name, c, r in columns:
        wins = (c > r).numpy().astype(float)
        table[name] = {s: 100 * a for s, a in _row(wins, sections, subsets).items()}
    return table


def accuracy_notes(subsets: Sequence[str]) -> list[str]:
    """Lines for under the accuracy table: on RewardBench, how sections are weighted, the subsets
    not evaluated (per section; a section is then scored over the present subsets with their fixed
    weights renormalised), the subsampled ones (pairs evaluated of the filtered count), and why an
    overall score is missing or partial. Nothing for other data."""
    if not is_rewardbench(subsets):
        return []
    counts = Counter(subsets)
    notes = ["RewardBench sections weigh each subset by its fixed filtered count (math-prm as 984 = 6 × 164, "
             "so Reasoning = ½ math-prm + ½ mean of the code subsets), whatever was evaluated; "
             f"{PRIOR_SECTION} = mean of its splits; {AVERAGE} = mean of the core sections scored (Prior Sets left out); "
             f"{OVERALL} = (Chat + Chat Hard + Safety + Reasoning + ½ {PRIOR_SECTION}) / 4.5."]
    missing = missing_subsets(counts)
    for section, names in missing.items():
        if len(names) == len(ALL_SECTIONS[section]):
            notes.append(f"{section}: not evaluated (missing {', '.join(names)}).")
        else:
            notes.append(f"{section}: missing {', '.join(names)}; scored over the present subsets, their fixed "
                         f"weights renormalised.")
    absent = [section for section, names in missing.items() if len(names) == len(ALL_SECTIONS[section])]
    if absent == [PRIOR_SECTION]:
        notes.append(f"No {OVERALL}: it needs the {PRIOR_SECTION} ({DATASET_PRIOR_PATH_KEY}).")
    elif absent:
        notes.append(f"No {OVERALL}: it needs all five sections.")
    elif missing:
        notes.append(f"{OVERALL} computed from partial sections: not comparable with the leaderboard's.")
    subsampled = [f"{s} {counts[s]}/{FILTERED_COUNTS[s]}" for s in counts
                  if s in FILTERED_COUNTS and counts[s] != FILTERED_COUNTS[s]]
    if subsampled:
        notes.append("Pairs evaluated / filtered count, where they differ (the weights stay the filtered counts): "
                     + ", ".join(subsampled) + ".")
    return notes


def variance_by_section(chosen: torch.Tensor, rejected: torch.Tensor, sections: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """``{section: {"chosen": var [n], "difference": var [n]}}``: sample variances over heads
    (unbiased, k − 1 in the denominator) of each pair's chosen reward and chosen − rejected."""
    var_chosen = chosen.var(dim=1, unbiased=True).numpy()
    var_diff = (chosen - rejected).var(dim=1, unbiased=True).numpy()
    sections_arr = np.asarray(sections)
    return {s: {"chosen": var_chosen[sections_arr == s], "difference": var_diff[sections_arr == s]}
            for s in _sections_in_order(sections)}


def ensemble_metrics(table: dict[str, dict[str, float]], variances: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
    heads = [row for name, row in table.items() if name.startswith("head ")]
    mean_row = table["ensemble mean"]
    metrics = {"ens/test/acc_mean": mean_row[AVERAGE] / 100,
               "ens/test/acc_head_average": float(np.mean([h[AVERAGE] for h in heads])) / 100,
               "ens/test/acc_head_min": float(min(h[AVERAGE] for h in heads)) / 100,
               "ens/test/acc_head_max": float(max(h[AVERAGE] for h in heads)) / 100}
    if OVERALL in mean_row:
        metrics["ens/test/rewardbench_score"] = mean_row[OVERALL] / 100
    for section, value in mean_row.items():
        if section not in SUMMARY_COLUMNS:
            metrics[f"ens/test/{slug(section)}/acc_mean"] = value / 100
    all_chosen = np.concatenate([v["chosen"] for v in variances.values()])
    all_diff = np.concatenate([v["difference"] for v in variances.values()])
    metrics["ens/test/var_chosen_median"] = float(np.median(all_chosen))
    metrics["ens/test/var_diff_median"] = float(np.median(all_diff))
    for section, v in variances.items():
        metrics[f"ens/test/{slug(section)}/var_chosen_median"] = float(np.median(v["chosen"]))
        metrics[f"ens/test/{slug(section)}/var_diff_median"] = float(np.median(v["difference"]))
    return metrics


def variance_summary(chosen: torch.Tensor, rejected: torch.Tensor, scale: str) -> dict[str, float]:
    """σ² of the test pairs on one scale (``raw`` or ``normalised``): ``ens/test/var_chosen_{median,
    mean,p10,p90}_{scale}`` of the heads' sample variance (unbiased, as :func:`variance_by_section`)
    of the chosen reward, the paper's Fig. 6 quantity (its raw range about 3–14, median above 3),
    and ``ens/test/var_diff_median_{scale}`` of chosen − rejected."""
    var_chosen = chosen.double().var(dim=1, unbiased=True).numpy()
    var_diff = (chosen.double() - rejected.double()).var(dim=1, unbiased=True).numpy()
    p10, p90 = np.percentile(var_chosen, [10, 90])
    return {f"ens/test/var_chosen_median_{scale}": float(np.median(var_chosen)),
            f"ens/test/var_chosen_mean_{scale}": float(var_chosen.mean()),
            f"ens/test/var_chosen_p10_{scale}": float(p10), f"ens/test/var_chosen_p90_{scale}": float(p90),
            f"ens/test/var_diff_median_{scale}": float(np.median(var_diff))}


def write_accuracy_table(table: dict[str, dict[str, float]], csv_path: Path, markdown_path: Path,
                         notes: Sequence[str] = ()) -> None:
    """The table as CSV and Markdown; ``notes`` (:func:`accuracy_notes`) go under the Markdown
    table and into ``csv_path``'s sibling ``*_notes.txt``."""
    columns = list(next(iter(table.values())))
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", *columns])
        for name, row in table.items():
            writer.writerow([name, *(f"{row[c]:.2f}" for c in columns)])
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in table.items():
        cells = " | ".join(f"{row[c]:.1f}" for c in columns)
        lines.append(f"| {'**' + name + '**' if name == 'ensemble mean' else name} | {cells} |")
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
        csv_path.with_name(f"{csv_path.stem}_notes.txt").write_text("\n".join(notes) + "\n")
    markdown_path.write_text("\n".join(lines) + "\n")


def plot_variance_histograms(variances: dict[str, dict[str, np.ndarray]], path: Path, title: str = "") -> Path:
    """Paper Fig. 6: per section, histograms of the heads' sample variance of the chosen reward
    (left) and of the chosen − rejected difference (right)."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "chosen", "variance of the chosen reward"),
                           (axes[1], "difference", "variance of chosen − rejected")):
        values = np.concatenate([v[key] for v in variances.values()])
        bins = np.linspace(0, max(float(values.max()), 1e-12), 40)
        for section, v in variances.items():
            ax.hist(v[key], bins=bins, alpha=0.5, label=f"{section} (median {np.median(v[key]):.3g})")
        ax.set(xlabel=label, ylabel="pairs")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
