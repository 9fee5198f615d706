"""What the ensemble stage reports (Banerjee & Gopalan, Table 1 and Fig. 6).

- :func:`accuracy_table`: accuracy per evaluation section for each head and for the ensemble
  mean, with their average (RewardBench sections weighted the leaderboard's way).
- :func:`variance_by_section`: per pair, the sample variance over heads of the chosen reward
  and of the chosen − rejected difference.
- :func:`ensemble_metrics`: the ``ens/test/*`` numbers for ``metrics.json``.
- :func:`write_accuracy_table`, :func:`plot_variance_histograms`: files beside the numbers.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import torch

from rcollapse.analysis.figures import pyplot, save_figure
from rcollapse.data.rewardbench_sections import SECTION_OF_SUBSET, section_scores


def _sections_in_order(sections: list[str]) -> list[str]:
    return list(dict.fromkeys(sections))


def slug(name: str) -> str:
    """A metric-key form of a section name ("Chat Hard" → "chat_hard")."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _section_accuracies(wins: np.ndarray, sections: list[str], subsets: list[str]) -> dict[str, float]:
    sections_arr, subsets_arr = np.asarray(sections), np.asarray(subsets)
    if all(s in SECTION_OF_SUBSET for s in subsets):  # RewardBench: the leaderboard's weighting
        names = _sections_in_order(subsets)
        acc = {s: float(wins[subsets_arr == s].mean()) for s in names}
        counts = {s: int((subsets_arr == s).sum()) for s in names}
        return section_scores(acc, counts)
    return {s: float(wins[sections_arr == s].mean()) for s in _sections_in_order(sections)}


def accuracy_table(chosen: torch.Tensor, rejected: torch.Tensor, sections: list[str],
                   subsets: list[str] | None = None) -> dict[str, dict[str, float]]:
    """``{row: {section: accuracy %, ..., "Average": %}}`` for rows ``head 0`` … ``head k−1`` and
    ``ensemble mean``; a pair is won only if chosen scores strictly higher."""
    subsets = subsets or sections
    columns = [(f"head {k}", chosen[:, k], rejected[:, k]) for k in range(chosen.size(1))]
    columns.append(("ensemble mean", chosen.mean(1), rejected.mean(1)))
    table = {}
    for name, c, r in columns:
        wins = (c > r).numpy().astype(float)
        row = {s: 100 * a for s, a in _section_accuracies(wins, sections, subsets).items()}
        row["Average"] = float(np.mean(list(row.values())))
        table[name] = row
    return table


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
    metrics = {"ens/test/acc_mean": mean_row["Average"] / 100,
               "ens/test/acc_head_average": float(np.mean([h["Average"] for h in heads])) / 100,
               "ens/test/acc_head_min": float(min(h["Average"] for h in heads)) / 100,
               "ens/test/acc_head_max": float(max(h["Average"] for h in heads)) / 100}
    for section, value in mean_row.items():
        if section != "Average":
            metrics[f"ens/test/{slug(section)}/acc_mean"] = value / 100
    all_chosen = np.concatenate([v["chosen"] for v in variances.values()])
    all_diff = np.concatenate([v["difference"] for v in variances.values()])
    metrics["ens/test/var_chosen_median"] = float(np.median(all_chosen))
    metrics["ens/test/var_diff_median"] = float(np.median(all_diff))
    for section, v in variances.items():
        metrics[f"ens/test/{slug(section)}/var_chosen_median"] = float(np.median(v["chosen"]))
        metrics[f"ens/test/{slug(section)}/var_diff_median"] = float(np.median(v["difference"]))
    return metrics


def write_accuracy_table(table: dict[str, dict[str, float]], csv_path: Path, markdown_path: Path) -> None:
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
