"""Utility functions ``U`` of the ranking objective (Song, Cai, Lee, Su 2023, "Reward Collapse").

The reward model maximises ``Σ_x Σ_{i<j} U(R(x,y_i) − R(x,y_j))`` (the paper's eq. (1)); the
prompt-aware form (eq. (4)) lets ``U`` depend on the prompt. ``U`` is increasing and concave on
[0, 1]; its argument, a difference of rewards in [0, 1], lies in [−1, 1], so every ``U`` has a
continuous extension below 0. The shifted forms and linear extensions follow the paper's code
and Appendix A.1, with ε = 0.1 by default; all are C¹ at 0 except the paper's ``x2``:

==========================  ========================  ============  ======================
class (config name)         U(x), x > 0               U(x), x ≤ 0   limit (un-shifted U)
==========================  ========================  ============  ======================
LinearUtility (``x``)       x                         x             ½ δ₀ + ½ δ₁
LogUtility (``log``)        log(x+ε) − log ε          x/ε           Beta(½, ½)
InverseUtility (``x_inv``)  1/ε − 1/(x+ε)             x/ε²          Uniform(0, 1)
PowerUtility (class 1)      (x+ε)^γ − ε^γ, 0<γ<1      γ ε^{γ−1} x   Beta((1−γ)/2, (1−γ)/2)
NegPowerUtility (class 2)   ε^{−γ} − (x+ε)^{−γ}, γ>0  γ ε^{−γ−1} x  Beta((1+γ)/2, (1+γ)/2)
LogSigmoidUtility           log sigmoid(scale·x)      same          masses at 0 and 1
SquareUtility (``x2``)      (x+ε)² − ε² (convex)      x (or 2ε x)   outside the theory
BoxCoxUtility (new)         ((x+ε)^γ − ε^γ)/γ         ε^{γ−1} x     Beta((1−γ)/2, (1−γ)/2)
==========================  ========================  ============  ======================

(NegPower's limit is uniform for γ ≥ 1.) The prompt-aware ``AdaptiveUtility`` (eq. (4)) picks
one fixed utility per prompt type; ``BoxCoxOpenEndednessUtility`` moves γ continuously with a
prompt's open-endedness score.

``eps = 0`` gives the un-shifted functions that the theory uses, where the argument is never ≤ 0:
``log x``, ``−1/x``, ``x^γ``, ``−x^{−γ}``, ``x²``, Box–Cox ``(x^γ − 1)/γ``; at and below 0 the
singular ones are ``−inf``. With ``eps > 0`` every utility is finite, C¹ at 0 (``x2`` only with
``extension="c1"``) and has finite gradients for every finite input (the branch that
``torch.where`` discards is always evaluated at a clamped, harmless argument, so no NaN leaks
into autograd).

Every utility is a callable ``U(diff, openness=None)`` on tensors. Prompt-aware utilities read a
per-element open-endedness score in [−1, 1] (+1 open-ended, −1 closed-ended) broadcastable to
``diff``; fixed ones ignore it. ``for_openness(s)`` returns the fixed utility used for prompts of
score ``s``, so that the collapse solver takes exactly the function that training used.
Pure torch: no Lightning, Hydra or other project module here.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "Utility",
    "LinearUtility",
    "LogUtility",
    "InverseUtility",
    "PowerUtility",
    "NegPowerUtility",
    "LogSigmoidUtility",
    "SquareUtility",
    "BoxCoxUtility",
    "AdaptiveUtility",
    "BoxCoxOpenEndednessUtility",
]

# |γ| below this uses the log branch of the Box–Cox family.
_LOG_GAMMA_TOL = 1e-6


def _expm1(z: torch.Tensor) -> torch.Tensor:
    """``exp(z) − 1`` whose gradient is ``exp(z)`` to full precision for every z.

    ``torch.expm1``'s backward forms ``exp(z)`` as ``expm1(z) + 1``, which for z ≪ 0 cancels:
    0 from z ≈ −17 in float32 (−37 in float64) on, so ``ε^{−γ} − (x+ε)^{−γ}`` with γ = 10
    had slope 0 instead of 2756 at x = ½ in float32, and un-shifted Box–Cox ``(x^γ − 1)/γ``
    slope 0 at x = 1e−200 (the solver then took its U'(0+) = ∞ for finite). ``expm1`` is kept
    for |z| ≤ 1, where its value needs it and its backward is exact; ``exp(z) − 1`` elsewhere.
    """
    small = z.abs() <= 1
    near = torch.expm1(torch.where(small, z, torch.zeros_like(z)))
    far = torch.exp(torch.where(small, torch.zeros_like(z), z)) - 1
    return torch.where(small, near, far)


# ----------------------------------------------------------------------------------------------
# argument checks (messages name the config key)


def _number(value, key: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if math.isnan(number):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return number


def _check_eps(eps) -> float:
    eps = _number(eps, "utility.eps")
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"utility.eps must be a finite number >= 0, got {eps}")
    return eps


def _as_float(diff) -> torch.Tensor:
    """A floating tensor (the input itself when it already is one)."""
    if not isinstance(diff, torch.Tensor):
        diff = torch.as_tensor(diff)
    if not diff.is_floating_point():
        diff = diff.to(torch.get_default_dtype())
    return diff


# ----------------------------------------------------------------------------------------------
# base class


class Utility:
    """Base class: ``U(diff)`` element-wise; prompt-aware utilities also read ``openness``.

    Subclasses that are fixed (the same ``U`` for every prompt) implement ``_value(x)``;
    prompt-aware ones set ``prompt_aware = True`` and override ``__call__`` and ``for_openness``.
    """

    prompt_aware: bool = False

    def __call__(self, diff: torch.Tensor, openness: torch.Tensor | None = None) -> torch.Tensor:
        """``U(diff)``: same shape, dtype and device as ``diff``, differentiable.

        ``diff`` holds reward differences ``r_i − r_j`` (values in [−1, 1]); ``openness`` is
        ignored by fixed utilities.
        """
        return self._value(_as_float(diff))

    def _value(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def for_openness(self, openness: float) -> Utility:
        """The fixed utility used for prompts of this open-endedness (``self`` if fixed)."""
        return self

    def limit_beta(self) -> tuple[float, float] | None:
        """Parameters (a, b) of the Beta law that the collapsed rewards approach as n → ∞.

        Theorem 5 of the paper for the *un-shifted* (``eps = 0``) form of this utility; with
        ``eps > 0`` it is the prediction the shifted function approximates. ``None`` where the
        limit is not a Beta law (``x``: two point masses; ``logsigmoid``; convex ``x2``) or
        depends on the prompt.
        """
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


# ----------------------------------------------------------------------------------------------
# fixed utilities of the paper


class LinearUtility(Utility):
    """``U(x) = x`` everywhere (the paper's ``x``).

    Collapsed limit: polarised, half of the rewards at 0 and half at 1. ``eps`` is accepted for a
    uniform interface and has no effect.
    """

    def __init__(self, eps: float = 0.1):
        self.eps = _check_eps(eps)

    def _value(self, x):
        return x.clone()


class LogUtility(Utility):
    """``U(x) = log(x+ε) − log ε`` for x > 0, ``x/ε`` for x ≤ 0 (the paper's ``log``).

    Un-shifted (``eps = 0``): ``log x``, −inf at x ≤ 0; collapsed limit Beta(½, ½) (arcsine).
    """

    def __init__(self, eps: float = 0.1):
        self.eps = _check_eps(eps)

    def _value(self, x):
        eps = self.eps
        if eps == 0:
            safe = torch.where(x > 0, x, torch.ones_like(x))
            return torch.where(x > 0, torch.log(safe), torch.full_like(x, -math.inf))
        # log(x+ε) − log ε = log1p(x/ε), evaluated at max(x, 0) so the unused branch is harmless.
        positive = torch.log1p(x.clamp_min(0) / eps)
        return torch.where(x > 0, positive, x / eps)

    def limit_beta(self):
        return (0.5, 0.5)


class InverseUtility(Utility):
    """``U(x) = 1/ε − 1/(x+ε)`` for x > 0, ``x/ε²`` for x ≤ 0 (the paper's ``x_inv``).

    Un-shifted (``eps = 0``): ``−1/x``, −inf at x ≤ 0; collapsed limit Uniform(0, 1).
    """

    def __init__(self, eps: float = 0.1):
        self.eps = _check_eps(eps)

    def _value(self, x):
        eps = self.eps
        if eps == 0:
            safe = torch.where(x > 0, x, torch.ones_like(x))
            return torch.where(x > 0, -1.0 / safe, torch.full_like(x, -math.inf))
        xp = x.clamp_min(0)
        positive = xp / (eps * (xp + eps))  # = 1/ε − 1/(x+ε), without cancellation
        return torch.where(x > 0, positive, x / eps**2)

    def limit_beta(self):
        return (1.0, 1.0)


class PowerUtility(Utility):
    """Class 1 (Appendix A.1): ``U(x) = (x+ε)^γ − ε^γ``, 0 < γ < 1, for x > 0.

    Below 0 the tangent line ``γ ε^{γ−1} x`` (C¹ at 0). Un-shifted (``eps = 0``): ``x^γ``, 0 at
    x = 0 and −inf below; collapsed limit Beta((1−γ)/2, (1−γ)/2).
    """

    def __init__(self, gamma: float, eps: float = 0.1):
        gamma = _number(gamma, "utility.gamma")
        if not 0 < gamma < 1:
            raise ValueError(f"utility.gamma must lie in (0, 1) for the power utility, got {gamma}")
        self.gamma = gamma
        self.eps = _check_eps(eps)

    def _value(self, x):
        g, eps = self.gamma, self.eps
        if eps == 0:
            safe = torch.where(x > 0, x, torch.ones_like(x))
            rest = torch.where(x == 0, torch.zeros_like(x), torch.full_like(x, -math.inf))
            return torch.where(x > 0, safe**g, rest)
        # (x+ε)^γ − ε^γ = ε^γ · expm1(γ · log1p(x/ε)): accurate for small x, also in float32.
        positive = eps**g * torch.expm1(g * torch.log1p(x.clamp_min(0) / eps))
        return torch.where(x > 0, positive, (g * eps ** (g - 1)) * x)

    def limit_beta(self):
        a = (1 - self.gamma) / 2
        return (a, a)


class NegPowerUtility(Utility):
    """Class 2 (Appendix A.1): ``U(x) = ε^{−γ} − (x+ε)^{−γ}``, γ > 0, for x > 0.

    Below 0 the tangent line ``γ ε^{−γ−1} x`` (C¹ at 0). Un-shifted (``eps = 0``): ``−x^{−γ}``,
    −inf at x ≤ 0; collapsed limit Beta((1+γ)/2, (1+γ)/2), uniform for γ ≥ 1.
    """

    def __init__(self, gamma: float, eps: float = 0.1):
        gamma = _number(gamma, "utility.gamma")
        if not (gamma > 0 and math.isfinite(gamma)):
            raise ValueError(
                f"utility.gamma must be a finite number > 0 for the neg_power utility, got {gamma}"
            )
        self.gamma = gamma
        self.eps = _check_eps(eps)

    def _value(self, x):
        g, eps = self.gamma, self.eps
        if eps == 0:
            safe = torch.where(x > 0, x, torch.ones_like(x))
            return torch.where(x > 0, -(safe ** (-g)), torch.full_like(x, -math.inf))
        # ε^{−γ} − (x+ε)^{−γ} = −ε^{−γ} · expm1(−γ · log1p(x/ε)), its slope exact (see _expm1)
        positive = -(eps ** (-g)) * _expm1(-g * torch.log1p(x.clamp_min(0) / eps))
        return torch.where(x > 0, positive, (g * eps ** (-g - 1)) * x)

    def limit_beta(self):
        a = min((1 + self.gamma) / 2, 1.0)
        return (a, a)


class LogSigmoidUtility(Utility):
    """InstructGPT's ``U(x) = log sigmoid(scale·x)`` everywhere; the paper's code: scale = 1/σ = 4.

    Collapsed limit: point masses at 0 and 1 with the middle spread (Theorem 4: the mass at 1 is
    asymptotically at least ``U'(1)/(U'(0)+U'(1))``); it spreads out as the scale grows.
    ``eps`` is accepted for a uniform interface and has no effect.
    """

    def __init__(self, scale: float = 4.0, eps: float = 0.1):
        scale = _number(scale, "utility.scale")
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"utility.scale must be a finite number > 0, got {scale}")
        self.scale = scale
        self.eps = _check_eps(eps)

    def _value(self, x):
        return torch.nn.functional.logsigmoid(self.scale * x)


class SquareUtility(Utility):
    """``U(x) = (x+ε)² − ε²`` for x > 0 (the paper's code, ``x2``); below 0 by ``extension``.

    ``extension="paper"`` (default): ``U(x) = x`` for x ≤ 0, as the paper's code has it
    (``extended_x2`` in its ``trainer.py``: ``torch.where(x > 0, (x+eps)**2-eps**2, x)``): slope 1
    below 0 against 2ε just above, a kink at 0. ``extension="c1"``: the tangent line ``2εx``,
    C¹ at 0. Convex on [0, 1], hence outside the concave theory (no collapse prediction).
    Un-shifted (``eps = 0``): ``x²`` for x > 0; below 0, ``x`` (paper) or 0 (c1).
    """

    EXTENSIONS = ("paper", "c1")

    def __init__(self, eps: float = 0.1, extension: str = "paper"):
        if extension not in self.EXTENSIONS:
            raise ValueError(
                f"utility.extension must be one of {', '.join(self.EXTENSIONS)} for the x2 utility, "
                f"got {extension!r}"
            )
        self.eps = _check_eps(eps)
        self.extension = extension

    def _value(self, x):
        eps = self.eps
        xp = x.clamp_min(0)
        positive = xp * (xp + 2 * eps)  # = (x+ε)² − ε²
        below = x if self.extension == "paper" else (2 * eps) * x
        return torch.where(x > 0, positive, below)


# ----------------------------------------------------------------------------------------------
# the Box–Cox family (beyond the paper)


def _box_cox(x: torch.Tensor, gamma: torch.Tensor, eps: float) -> torch.Tensor:
    """Box–Cox utility with a per-element ``gamma`` (broadcastable to ``x``); see BoxCoxUtility."""
    out_dtype = x.dtype
    work = torch.promote_types(x.dtype, torch.float32)  # keep γ exact for half / bfloat16 input
    x = x.to(work)
    gamma = gamma.to(device=x.device, dtype=work)
    is_log = gamma.abs() < _LOG_GAMMA_TOL
    safe_gamma = torch.where(is_log, torch.ones_like(gamma), gamma)
    if eps > 0:
        log_ratio = torch.log1p(x.clamp_min(0) / eps)  # log((x+ε)/ε)
        # ((x+ε)^γ − ε^γ)/γ = ε^γ · expm1(γ · log((x+ε)/ε)) / γ, stable as γ → 0.
        power = torch.pow(eps, safe_gamma) * _expm1(safe_gamma * log_ratio) / safe_gamma
        positive = torch.where(is_log, log_ratio, power)
        linear = torch.pow(eps, gamma - 1) * x
        out = torch.where(x > 0, positive, linear)
    else:
        safe = torch.where(x > 0, x, torch.ones_like(x))
        log_x = torch.log(safe)
        positive = torch.where(is_log, log_x, _expm1(safe_gamma * log_x) / safe_gamma)
        minus_inf = torch.full_like(gamma, -math.inf)
        at_zero = torch.where(gamma > _LOG_GAMMA_TOL, -1.0 / safe_gamma, minus_inf)
        rest = torch.where(x == 0, at_zero, torch.full_like(x, -math.inf))
        out = torch.where(x > 0, positive, rest)
    return out.to(out_dtype)


def _check_box_cox_gamma(value, key: str) -> float:
    gamma = _number(value, key)
    if not -1 <= gamma < 1:
        raise ValueError(f"{key} must lie in [-1, 1) for the Box-Cox utility, got {value}")
    return gamma


class BoxCoxUtility(Utility):
    """Fixed Box–Cox utility ``U_γ(x) = ((x+ε)^γ − ε^γ)/γ``, x > 0, −1 ≤ γ < 1 (beyond the paper).

    At γ = 0 (|γ| < 1e-6) it is ``log(x+ε) − log ε``; below 0 the tangent line ``ε^{γ−1} x``
    (C¹ at 0). γ > 0 is ``PowerUtility(γ)/γ``, γ < 0 is ``NegPowerUtility(−γ)/(−γ)``, γ = 0 is
    ``LogUtility``: positive multiples of the paper's classes, so the collapsed limit is
    Beta((1−γ)/2, (1−γ)/2) (uniform at γ = −1, arcsine at γ = 0, polarised as γ → 1).

    Un-shifted (``eps = 0``): the classical Box–Cox transform ``(x^γ − 1)/γ`` (``log x`` at γ = 0),
    continuous in γ; it differs from ``PowerUtility(γ, eps=0)/γ`` only by the constant −1/γ,
    which does not change the objective's maximiser. At x = 0 it is −1/γ for γ > 0 and −inf for
    γ ≤ 0; −inf below 0.
    """

    def __init__(self, gamma: float, eps: float = 0.1):
        self.gamma = _check_box_cox_gamma(gamma, "utility.gamma")
        self.eps = _check_eps(eps)

    def _value(self, x):
        return _box_cox(x, torch.tensor(self.gamma, dtype=torch.float64), self.eps)

    def limit_beta(self):
        a = (1 - self.gamma) / 2
        return (a, a)


# ----------------------------------------------------------------------------------------------
# prompt-aware utilities


def _openness_like(openness, diff: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if openness is None:
        raise ValueError(
            "a prompt-aware utility needs each prompt's openness score in [-1, 1] "
            "(+1 open-ended, -1 closed-ended): call utility(diff, openness)"
        )
    openness = torch.as_tensor(openness, device=diff.device).to(dtype)
    try:
        return torch.broadcast_to(openness, diff.shape)
    except RuntimeError as err:
        raise ValueError(
            f"openness of shape {tuple(openness.shape)} does not broadcast to diff of shape "
            f"{tuple(diff.shape)}"
        ) from err


class AdaptiveUtility(Utility):
    """The paper's prompt-aware utility (eq. (4), Section 3.2): one fixed ``U`` per prompt type.

    Element-wise, openness > ``threshold`` uses ``open_utility`` (paper: ``x_inv``, collapsed
    limit near uniform), otherwise ``closed_utility`` (paper: ``x``, polarised). ``eps`` is
    accepted for a uniform interface; the sub-utilities carry their own.
    """

    prompt_aware = True

    def __init__(
        self,
        open_utility: Utility,
        closed_utility: Utility,
        threshold: float = 0.0,
        eps: float = 0.1,
    ):
        subs = (("utility.open_utility", open_utility), ("utility.closed_utility", closed_utility))
        for key, sub in subs:
            if not isinstance(sub, Utility):
                raise ValueError(
                    f"{key} must be a Utility object, got {type(sub).__name__}: {sub!r}"
                )
            if sub.prompt_aware:
                raise ValueError(f"{key} must be a fixed (not prompt-aware) utility, got {sub!r}")
        threshold = _number(threshold, "utility.threshold")
        if not math.isfinite(threshold):
            raise ValueError(f"utility.threshold must be finite, got {threshold}")
        self.open_utility = open_utility
        self.closed_utility = closed_utility
        self.threshold = threshold
        self.eps = _check_eps(eps)

    def __call__(self, diff, openness=None):
        diff = _as_float(diff)
        openness = _openness_like(openness, diff, diff.dtype)
        is_open = openness > self.threshold
        return torch.where(is_open, self.open_utility(diff), self.closed_utility(diff))

    def for_openness(self, openness: float) -> Utility:
        return self.open_utility if float(openness) > self.threshold else self.closed_utility


class BoxCoxOpenEndednessUtility(Utility):
    """Beyond the paper: a continuous prompt-aware utility driven by an open-endedness score.

    A prompt of score ``s ∈ [−1, 1]`` (−1 closed-ended, +1 open-ended; clamped to that range)
    gets the Box–Cox utility ``U_γ(s)`` (see ``BoxCoxUtility``):

        U_γ(x) = ((x+ε)^γ − ε^γ)/γ   (log(x+ε) − log ε at γ = 0),   ε^{γ−1}·x for x ≤ 0,
        γ(s)   = gamma_closed + (s+1)/2 · (gamma_open − gamma_closed).

    γ > 0 is a positive multiple of the class-1 power utility, γ < 0 of the class-2 neg_power
    utility, γ = 0 is log, so the predicted collapsed distribution of a prompt of score ``s`` is

        Beta((1−γ(s))/2, (1−γ(s))/2)    for −1 ≤ γ < 1.

    With the defaults (gamma_closed = 0.9 → gamma_open = −1) it moves from nearly polarised
    (Beta(0.05, 0.05)) for closed prompts, through the arcsine law Beta(½, ½) where γ(s) = 0
    (s ≈ −0.05), to uniform (Beta(1, 1)) for open prompts: each prompt's reward spread follows
    how open-ended it is, instead of the two shapes of the paper's adaptive utility.
    """

    prompt_aware = True

    def __init__(self, gamma_closed: float = 0.9, gamma_open: float = -1.0, eps: float = 0.1):
        self.gamma_closed = _check_box_cox_gamma(gamma_closed, "utility.gamma_closed")
        self.gamma_open = _check_box_cox_gamma(gamma_open, "utility.gamma_open")
        self.eps = _check_eps(eps)

    def gamma(self, openness):
        """γ(s) for a float or, element-wise, a tensor of scores (clamped to [−1, 1])."""
        if isinstance(openness, torch.Tensor):
            s = openness.clamp(-1, 1)
        else:
            s = min(1.0, max(-1.0, float(openness)))
        return self.gamma_closed + (s + 1) / 2 * (self.gamma_open - self.gamma_closed)

    def limit_beta_for(self, openness: float) -> tuple[float, float]:
        """(a, a) of the predicted limit Beta((1−γ(s))/2, (1−γ(s))/2) for a prompt of score s."""
        a = (1 - self.gamma(float(openness))) / 2
        return (a, a)

    def __call__(self, diff, openness=None):
        diff = _as_float(diff)
        work = torch.promote_types(diff.dtype, torch.float32)
        s = _openness_like(openness, diff, work)
        return _box_cox(diff, self.gamma(s), self.eps)

    def for_openness(self, openness: float) -> Utility:
        return BoxCoxUtility(gamma=float(self.gamma(float(openness))), eps=self.eps)
