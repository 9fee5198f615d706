"""``python -m rcollapse.design target=beta a=0.5 b=0.5 [n=8]``: design a utility for a target
reward profile (root config ``conf/design.yaml``; the maths is in ``rcollapse.maths.utility_design``).

Prints the chosen family and parameter, the predicted profile against the target, W1 between
them (the symmetry gap apart from the design error) and the ``utility=...`` overrides that train
toward it; writes ``design.json`` and ``figures/design.png`` in the run dir.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from rcollapse.config.checks import ConfigError
from rcollapse.maths import utility_design as ud

TARGETS = ("beta", "quantiles", "types", "openness")


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _number(cfg: DictConfig, key: str, takes: str, ok=lambda v: True, integer: bool = False):
    """``cfg[key]``, checked: a :class:`ConfigError` naming the key and the values it takes otherwise."""
    value = cfg[key]
    if not (_is_number(value) and (not integer or isinstance(value, int)) and ok(value)):
        raise ConfigError(f"{key}: takes {takes}, got {value!r}")
    return value


def _numbers(cfg: DictConfig, key: str, takes: str, ok=lambda v: True) -> list:
    """``cfg[key]`` as a list of numbers (a single number is a list of one), each ``ok``."""
    value = _plain(cfg[key])
    values = value if isinstance(value, list) else [value]
    if not values or not all(_is_number(v) and ok(v) for v in values):
        raise ConfigError(f"{key}: takes {takes}, got {value!r}")
    return values


def _settings(cfg: DictConfig) -> dict:
    """The design's settings, each checked: n, eps, family, large_n, refine_large_n, max_neg_gamma."""
    family = cfg.family
    if family not in ud.FAMILIES:
        raise ConfigError(f"family: takes one of {', '.join(ud.FAMILIES)}, got {family!r}")
    large_n = None
    if cfg.large_n is not None:
        large_n = _number(cfg, "large_n", "an integer >= 2, or null to skip the large-n check (e.g. large_n=512)",
                          lambda v: v >= 2, integer=True)
    if not isinstance(cfg.refine_large_n, bool):
        raise ConfigError(f"refine_large_n: takes true or false, got {cfg.refine_large_n!r}")
    return {"n": _number(cfg, "n", "an integer >= 2, the completions per prompt (e.g. n=8)", lambda v: v >= 2,
                         integer=True),
            "eps": float(_number(cfg, "eps", "a number >= 0, the utilities' shift (e.g. eps=0.1)", lambda v: v >= 0)),
            "family": family, "large_n": large_n, "refine_large_n": cfg.refine_large_n,
            "max_neg_gamma": float(_number(cfg, "max_neg_gamma", "a number > 0 (e.g. max_neg_gamma=10)",
                                           lambda v: v > 0))}


def _beta(cfg: DictConfig) -> ud.Target:
    a = _number(cfg, "a", "a number > 0, the first shape of the Beta(a, b) target (e.g. a=0.5)", lambda v: v > 0)
    b = None if cfg.b is None else _number(cfg, "b", "a number > 0, the second shape of the Beta(a, b) target, "
                                           "or null for b = a (e.g. b=0.5)", lambda v: v > 0)
    return ud.beta_target(float(a), None if b is None else float(b))


def _quantiles(cfg: DictConfig) -> ud.Target:
    if cfg.q is None:
        raise ConfigError("q: target=quantiles needs q=[...], the rewards in [0, 1] by rank, worst first "
                          "(e.g. q=[0,0.2,0.8,1])")
    q = _numbers(cfg, "q", "a list of at least 2 nondecreasing rewards in [0, 1] (e.g. q=[0,0.2,0.8,1])")
    p = None if cfg.p is None else _numbers(cfg, "p", "null (equally spaced) or a list of increasing levels in "
                                            "[0, 1], one per q (e.g. p=[0,0.3,0.7,1])")
    try:
        return ud.quantile_target(q, p)
    except ValueError as err:
        raise ConfigError(f"q, p: {err}") from err


def _types(cfg: DictConfig) -> dict:
    if cfg.open is None or cfg.closed is None:
        raise ConfigError("open, closed: target=types needs open=... and closed=... "
                          "(e.g. open=[1,1] closed=[0.25,0.25])")
    targets = {}
    for side in ("open", "closed"):
        try:
            targets[side] = ud.target_from_spec(_plain(cfg[side]))
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{side}: takes a target: [a, b] (Beta), {{a: , b: }}, {{q: [...]}} or a number a "
                              f"(Beta(a, a)), e.g. {side}=[1,1]; got {_plain(cfg[side])!r} ({err})") from err
    return targets


def _openness(cfg: DictConfig, n: int, eps: float) -> dict:
    if cfg.s is None or cfg.a is None:
        raise ConfigError("s, a: target=openness needs s=[...] and a=[...] (b=[...] optional)")
    s = _numbers(cfg, "s", "a list of open-endedness scores in [-1, 1] (e.g. s=[-1,1])", lambda v: -1 <= v <= 1)
    a = _numbers(cfg, "a", "a number > 0 or a list of them, the Beta shapes a, one per s (e.g. a=[0.5,2])",
                 lambda v: v > 0)
    a = a * len(s) if len(a) == 1 and not isinstance(_plain(cfg.a), list) else a
    b = a if cfg.b is None else _numbers(cfg, "b", "null (b = a) or a list of numbers > 0, one per s",
                                         lambda v: v > 0)
    if not len(s) == len(a) == len(b):
        raise ConfigError(f"s, a, b: must have the same length, got {len(s)}, {len(a)}, {len(b)}")
    return ud.design_openness(s, [ud.beta_target(float(x), float(y)) for x, y in zip(a, b)], n, eps)


def build(cfg: DictConfig) -> dict:
    """The design for a composed ``conf/design.yaml`` (no files written); a value a key does not
    take is a :class:`ConfigError` naming the key and the values it takes."""
    kind = cfg.target
    if kind not in TARGETS:
        raise ConfigError(f"target: takes one of {', '.join(TARGETS)}, got {kind!r}")
    settings = _settings(cfg)
    if kind == "beta":
        out = ud.design(_beta(cfg), **settings)
    elif kind == "quantiles":
        out = ud.design(_quantiles(cfg), **settings)
    elif kind == "types":
        out = ud.design_types(_types(cfg), **settings)
    else:
        out = _openness(cfg, settings["n"], settings["eps"])
    out["target_kind"] = kind
    return out


def _report_single(d: dict, label: str = "") -> list[str]:
    best, cf = d["design"], d["closed_form"]
    head = f"[{label}] " if label else ""
    lines = [f"{head}target {d['target']['name']} {d['target']['params']}"]
    if not d["symmetric"]:
        lines.append(f"{head}NOT ATTAINABLE: {d['message']}")
    lines.append(f"{head}closed form (n → ∞, eps = 0): {cf['family']} {cf['params']}"
                 f" (Box–Cox γ = {cf['box_cox_gamma']:.4g}; symmetric target ≈ Beta({d['symmetrised_beta_c']:.4g},"
                 f" {d['symmetrised_beta_c']:.4g}))" + (f"; {cf['note']}" if cf["note"] else ""))
    if d.get("beyond_classes"):
        lines.append(f"{head}BEYOND THE CLASSES: the (symmetrised) target is more concentrated than uniform"
                     f" (nearest Beta(c, c): c = {d['symmetrised_beta_c']:.3g} > 1); the classes' limits stop at"
                     f" uniform, W1(symmetrised target, uniform) = {d['uniform_floor_w1']:.4f}")
    lines.append(f"{head}design at n={d['n']}, eps={d['eps']:g}: {best['family']} {best['params']}")
    lines.append(f"{head}  W1 symmetry gap (irreducible) = {d['symmetry_gap_w1']:.4f};"
                 f" design error W1 = {best['design_error_w1_at_n']:.4f};"
                 f" W1 to the target = {best['w1_to_target_at_n']:.4f}")
    lines.append(f"{head}  target at n    : " + " ".join(f"{x:.3f}" for x in d["target_at_n"]))
    if not d["symmetric"]:
        lines.append(f"{head}  symmetrised    : " + " ".join(f"{x:.3f}" for x in d["symmetrised_target_at_n"]))
    lines.append(f"{head}  predicted at n : " + " ".join(f"{x:.3f}" for x in best["rewards"]))
    for cand in d["candidates"]:
        if cand is not best and cand["family"] != best["family"]:
            lines.append(f"{head}  (also tried {cand['family']} {cand['params']}: design error"
                         f" {cand['design_error_w1_at_n']:.4f})")
    if "large_n" in d:
        big = d["large_n"]
        lines.append(f"{head}at n={big['n']}: this design W1 to target = {big['design_at_n']['w1_to_target']:.4f}"
                     f" (to the symmetrised target {big['design_at_n']['w1_to_symmetrised']:.4f})")
        if "refined" in big:
            r = big["refined"]
            lines.append(f"{head}  refined at n={big['n']}: {r['family']} {r['params']}, W1 to target"
                         f" {r['w1_to_target']:.4f} (to symmetrised {r['w1_to_symmetrised']:.4f});"
                         f" overrides: {' '.join(r['overrides'])}")
    return lines


def report_lines(out: dict) -> list[str]:
    kind = out["target_kind"]
    if kind in ("beta", "quantiles"):
        lines = _report_single(out)
        over = out["design"]["overrides"]
    elif kind == "types":
        lines = _report_single(out["types"]["open"], "open") + _report_single(out["types"]["closed"], "closed")
        over = out["overrides"]
    else:
        lines = [f"open_endedness: gamma_closed={out['gamma_closed']:.4g}, gamma_open={out['gamma_open']:.4g}"
                 f" (γ linear in s), n={out['n']}, eps={out['eps']:g}"]
        for row in out["scores"]:
            lines.append(f"  s={row['s']:+.2f} target {row['target']['params']}: γ alone {row['gamma_alone']:.4g},"
                         f" on the line {row['gamma_line']:.4g}; symmetry gap {row['symmetry_gap_w1']:.4f},"
                         f" design error {row['design_error_w1_at_n']:.4f}")
        over = out["overrides"]
    if out["eps"] == 0:
        lines.append("note: eps=0 is the un-shifted theory; training refuses it for the singular utilities")
    lines.append("overrides: " + " ".join(over))
    return lines


def plot(out: dict, path: Path) -> Path:
    """Target against predicted: reward by rank (quantile functions) at n and at large n."""
    from rcollapse.analysis.figures import pyplot, save_figure

    plt = pyplot()
    if out["target_kind"] == "openness":
        panels = [(f"s={row['s']:+.2f}", row["rewards"], None, None, row) for row in out["scores"]]
    elif out["target_kind"] == "types":
        panels = [(side, d["design"]["rewards"], d, d.get("large_n"), None) for side, d in out["types"].items()]
    else:
        panels = [("", out["design"]["rewards"], out, out.get("large_n"), None)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    p = np.linspace(0, 1, 401)
    for ax, (label, rewards, d, big, row) in zip(axes[0], panels):
        target = d["target"] if d else row["target"]
        if target["name"] == "beta":
            from scipy import stats

            q = stats.beta(target["params"]["a"], target["params"]["b"]).ppf(p)
        else:
            q = np.interp(p, target["params"]["p"], target["params"]["q"])
        ax.plot(p, q, "k-", label="target")
        ax.plot(p, 0.5 * (q + 1 - q[::-1]), "k:", label="nearest symmetric")
        n = len(rewards)
        ax.plot(np.arange(n) / (n - 1), rewards, "o", label=f"predicted, n={n}")
        if big and "rewards_quantiles" in big["design_at_n"]:
            if "refined_rewards_quantiles" in big:
                rq = big["refined_rewards_quantiles"]
                what = f" (refined: {big['refined']['family']} {big['refined']['params']})"
            else:
                rq, what = big["design_at_n"]["rewards_quantiles"], ""
            ax.plot(np.linspace(0, 1, len(rq)), rq, "--", label=f"predicted, n={big['n']}{what}")
        title = label
        if d:
            title = (f"{label} {d['design']['family']} {d['design']['params']}\nW1: gap {d['symmetry_gap_w1']:.3f},"
                     f" design {d['design']['design_error_w1_at_n']:.3f}")
        ax.set(xlabel="rank level p (worst 0, best 1)", ylabel="reward", title=title, xlim=(0, 1), ylim=(0, 1))
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def run(cfg: DictConfig) -> dict:
    from rcollapse.runs.atomic_files import write_json_atomic

    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    out = build(cfg)
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / "design.json", out, indent=2)
    if cfg.plot:
        plot(out, output_dir / "figures" / "design.png")
    print("\n".join(report_lines(out)) + f"\noutputs in {output_dir}")
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="design")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
