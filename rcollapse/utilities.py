"""Utility functions ``U`` of the ranking objective (Song, Cai, Lee, Su 2023, "Reward Collapse").

The reward model maximises ``Σ_x Σ_{i<j} U(R(x,y_i) − R(x,y_j))`` (eq. (1)); the prompt-aware
form lets ``U`` depend on the prompt (eq. (4)). ``U`` is increasing and concave on [0, 1]; its
argument lies in [−1, 1], so each ``U`` has a continuous extension below 0. The shifted forms
and linear (C¹ at 0) extensions follow the paper's code and Appendix A.1 (ε = 0.1 by default):

| class | x > 0 | x ≤ 0 |
|---|---|---|
| LinearUtility (`x`) | x | x |
| LogUtility (`log`) | log(x+ε) − log ε | x/ε |
| InverseUtility (`x_inv`) | 1/ε − 1/(x+ε) | x/ε² |
| PowerUtility (class 1) | (x+ε)^γ − ε^γ | γ ε^{γ−1} x |
| NegPowerUtility (class 2) | ε^{−γ} − (x+ε)^{−γ} | γ ε^{−γ−1} x |
| LogSigmoidUtility | log sigmoid(scale·x) | same |
| SquareUtility (`x2`, convex) | (x+ε)² − ε² | 2ε x |

``eps = 0`` gives the un-shifted functions (log x, −1/x, x^γ, −x^{−γ}, x²) that the theory
uses, where the argument is never negative; singular ones are −inf at and below 0 then.

Every utility is a callable ``U(diff, openness=None)`` on tensors; prompt-aware utilities read a
per-element open-endedness score in [−1, 1] (+1 open-ended, −1 closed-ended), fixed ones ignore
it. ``for_openness(s)`` returns the fixed utility used for prompts of score ``s`` (the theory
solves the collapse program with exactly that function). Pure torch.
"""

from __future__ import annotations

import math

import torch


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"utility.eps must be a finite number >= 0, got {eps}")
    return eps


class Utility:
    """Base class: ``U(diff)`` element-wise; ``prompt_aware`` utilities also take ``openness``."""

    prompt_aware: bool = False

    def __call__(self, diff: torch.Tensor, openness: torch.Tensor | None = None) -> torch.Tensor:
        return self.value(diff)

    def value(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def for_openness(self, openness: float) -> Utility:
        """The fixed utility used for a prompt of this open-endedness (self, if not prompt-aware)."""
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class _ShiftedUtility(Utility):
    """``g(x+ε) − g(ε)`` above 0 and the tangent line ``g'(ε)·x`` below (C¹ at 0).

    With ε = 0: ``g(x)`` above 0 and ``g(0)`` at 0 (−inf for singular ``g``), −inf below 0 unless
    the subclass says otherwise.
    """

    def __init__(self, eps: float = 0.1):
        self.eps = _check_eps(eps)

    def g(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_prime_at(self, z: float) -> float:
        raise NotImplementedError

    def g_at(self, z: float) -> float:
        raise NotImplementedError

    def value(self, x: torch.Tensor) -> torch.Tensor:
        if self.eps > 0:
            # Clamp the argument of the branch that is not used so that no NaN gradient leaks.
            positive = self.g(x.clamp_min(0) + self.eps) - self.g_at(self.eps)
            linear = self.g_prime_at(self.eps) * x.clamp_max(0)
            return torch.where(x > 0, positive, linear)
        safe = torch.where(x > 0, x, torch.ones_like(x))
        at_or_below = torch.full_like(x, self._unshifted_at_zero())
        below = torch.full_like(x, -math.inf)
        return torch.where(x > 0, self.g(safe), torch.where(x == 0, at_or_below, below))

    def _unshifted_at_zero(self) -> float:
        return -math.inf


class LinearUtility(Utility):
    """``U(x) = x`` (the paper's ``x``): collapsed limit two points, half at 0, half at 1.

    ``eps`` is accepted for a uniform interface and has no effect.
    """

    def __init__(self, eps: float = 0.1):
        self.eps = _check_eps(eps)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class LogUtility(_ShiftedUtility):
    """``U(x) = log(x+ε) − log ε``, ``x/ε`` below 0; un-shifted ``log x``: limit Beta(½, ½)."""

    def g(self, z):
        return torch.log(z)

    def g_at(self, z):
        return math.log(z)

    def g_prime_at(self, z):
        return 1.0 / z


class InverseUtility(_ShiftedUtility):
    """``U(x) = 1/ε − 1/(x+ε)``, ``x/ε²`` below 0 (``x_inv``); un-shifted ``−1/x``: limit Uniform(0, 1)."""

    def g(self, z):
        return -1.0 / z

    def g_at(self, z):
        return -1.0 / z

    def g_prime_at(self, z):
        return 1.0 / z**2


class PowerUtility(_ShiftedUtility):
    """Class 1: ``U(x) = (x+ε)^γ − ε^γ``, 0 < γ < 1, linear ``γ ε^{γ−1} x`` below 0.

    Un-shifted ``x^γ``: collapsed limit Beta((1−γ)/2, (1−γ)/2) (the paper's Theorem 3).
    """

    def __init__(self, gamma: float = 0.5, eps: float = 0.1):
        gamma = float(gamma)
        if not 0 < gamma < 1:
            raise ValueError(f"utility.gamma must lie in (0, 1) for the power utility, got {gamma}")
        self.gamma = gamma
        super().__init__(eps)

    def g(self, z):
        return z**self.gamma

    def g_at(self, z):
        return z**self.gamma

    def g_prime_at(self, z):
        return self.gamma * z ** (self.gamma - 1)

    def _unshifted_at_zero(self) -> float:
        return 0.0


class NegPowerUtility(_ShiftedUtility):
    """Class 2: ``U(x) = ε^{−γ} − (x+ε)^{−γ}``, γ > 0, linear ``γ ε^{−γ−1} x`` below 0.

    Un-shifted ``−x^{−γ}``: collapsed limit Beta((1+γ)/2, (1+γ)/2), uniform for γ ≥ 1.
    """

    def __init__(self, gamma: float = 0.5, eps: float = 0.1):
        gamma = float(gamma)
        if not gamma > 0 or not math.isfinite(gamma):
            raise ValueError(f"utility.gamma must be > 0 for the neg_power utility, got {gamma}")
        self.gamma = gamma
        super().__init__(eps)

    def g(self, z):
        return -(z ** (-self.gamma))

    def g_at(self, z):
        return -(z ** (-self.gamma))

    def g_prime_at(self, z):
        return self.gamma * z ** (-self.gamma - 1)


class SquareUtility(_ShiftedUtility):
    """``U(x) = (x+ε)² − ε²``, ``2εx`` below 0 (``x2``): convex, outside the concave theory."""

    def g(self, z):
        return z**2

    def g_at(self, z):
        return z**2

    def g_prime_at(self, z):
        return 2.0 * z

    def value(self, x):
        if self.eps > 0:
            return super().value(x)
        return torch.where(x > 0, x * x, torch.zeros_like(x))


class LogSigmoidUtility(Utility):
    """InstructGPT's ``U(x) = log sigmoid(scale·x)``; the paper's code uses ``scale = 1/σ = 4``.

    Collapsed limit: point masses at 0 and 1 (Theorem 4: the mass at 1 is asymptotically at
    least ``U'(1)/(U'(0)+U'(1))``), spreading out as the scale grows. ``eps`` has no effect.
    """

    def __init__(self, scale: float = 4.0, eps: float = 0.1):
        scale = float(scale)
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"utility.scale must be > 0, got {scale}")
        self.scale = scale
        self.eps = _check_eps(eps)

    def value(self, x):
        return torch.nn.functional.logsigmoid(self.scale * x)


class BoxCoxUtility(_ShiftedUtility):
    """Box–Cox ``U_γ(x) = ((x+ε)^γ − ε^γ)/γ`` (``log(x+ε) − log ε`` at γ = 0), ``ε^{γ−1} x`` below 0.

    γ > 0 is ``PowerUtility(γ)/γ``, γ < 0 is ``NegPowerUtility(−γ)/(−γ)``, γ = 0 is ``LogUtility``;
    so the collapsed limit of the un-shifted form is Beta((1−γ)/2, (1−γ)/2) for −1 ≤ γ < 1.
    """

    def __init__(self, gamma: float = 0.0, eps: float = 0.1):
        gamma = float(gamma)
        if not -1 <= gamma < 1:
            raise ValueError(f"utility.gamma must lie in [-1, 1) for the Box-Cox utility, got {gamma}")
        self.gamma = gamma
        super().__init__(eps)

    def g(self, z):
        return torch.log(z) if abs(self.gamma) < 1e-6 else z**self.gamma / self.gamma

    def g_at(self, z):
        return math.log(z) if abs(self.gamma) < 1e-6 else z**self.gamma / self.gamma

    def g_prime_at(self, z):
        return z ** (self.gamma - 1)

    def _unshifted_at_zero(self) -> float:
        return 0.0 if self.gamma > 1e-6 else -math.inf


class AdaptiveUtility(Utility):
    """The paper's prompt-aware utility (eq. (4), Section 3.2).

    Open-ended prompts (openness > ``threshold``) use ``open_utility`` (paper: ``x_inv``,
    limit near uniform), closed-ended ones ``closed_utility`` (paper: ``x``, polarised).
    ``eps`` is accepted for a uniform interface; the sub-utilities carry their own.
    """

    prompt_aware = True

    def __init__(self, open_utility: Utility, closed_utility: Utility, threshold: float = 0.0, eps: float = 0.1):
        for key, sub in (("utility.open_utility", open_utility), ("utility.closed_utility", closed_utility)):
            if not isinstance(sub, Utility):
                raise ValueError(f"{key} must be a Utility object, got {type(sub).__name__}")
            if sub.prompt_aware:
                raise ValueError(f"{key} must be a fixed (not prompt-aware) utility, got {sub!r}")
        self.open_utility = open_utility
        self.closed_utility = closed_utility
        self.threshold = float(threshold)
        self.eps = _check_eps(eps)

    def __call__(self, diff, openness=None):
        if openness is None:
            raise ValueError(
                "a prompt-aware utility needs each prompt's openness (+1 open-ended, −1 closed-ended)"
            )
        openness = torch.as_tensor(openness, device=diff.device).expand_as(diff)
        return torch.where(openness > self.threshold, self.open_utility(diff), self.closed_utility(diff))

    def for_openness(self, openness: float) -> Utility:
        return self.open_utility if openness > self.threshold else self.closed_utility


class BoxCoxOpenEndednessUtility(Utility):
    """Beyond the paper: a continuous prompt-aware utility driven by an open-endedness score.

    For a prompt of score ``s ∈ [−1, 1]`` it uses the Box–Cox utility ``U_γ(s)`` with γ moving
    linearly from ``gamma_closed`` (s = −1) to ``gamma_open`` (s = +1):
    ``γ(s) = gamma_closed + (s+1)/2 · (gamma_open − gamma_closed)``. The predicted collapsed
    distribution for such a prompt is Beta((1−γ)/2, (1−γ)/2): with the defaults (0.9 → −1) it goes
    from nearly polarised (Beta(0.05, 0.05)) for closed prompts, through the arcsine law near
    s = 0, to uniform (Beta(1, 1)) for open prompts, so each prompt's reward spread follows how
    open-ended it is.
    """

    prompt_aware = True

    def __init__(self, gamma_closed: float = 0.9, gamma_open: float = -1.0, eps: float = 0.1):
        for key, value in (("utility.gamma_closed", gamma_closed), ("utility.gamma_open", gamma_open)):
            if not -1 <= float(value) < 1:
                raise ValueError(f"{key} must lie in [-1, 1), got {value}")
        self.gamma_closed = float(gamma_closed)
        self.gamma_open = float(gamma_open)
        self.eps = _check_eps(eps)

    def gamma(self, openness):
        """γ(s), element-wise for tensors or for a float."""
        s = openness.clamp(-1, 1) if isinstance(openness, torch.Tensor) else min(1.0, max(-1.0, openness))
        return self.gamma_closed + (s + 1) / 2 * (self.gamma_open - self.gamma_closed)

    def __call__(self, diff, openness=None):
        if openness is None:
            raise ValueError("a prompt-aware utility needs each prompt's openness score in [-1, 1]")
        gamma = self.gamma(torch.as_tensor(openness, dtype=diff.dtype, device=diff.device)).expand_as(diff)
        eps = self.eps
        is_log = gamma.abs() < 1e-6
        safe_gamma = torch.where(is_log, torch.ones_like(gamma), gamma)
        if eps > 0:
            z = diff.clamp_min(0) + eps
            power = (z**safe_gamma - eps**safe_gamma) / safe_gamma
            log = torch.log(z) - math.log(eps)
            positive = torch.where(is_log, log, power)
            linear = eps ** (gamma - 1) * diff.clamp_max(0)
            return torch.where(diff > 0, positive, linear)
        z = torch.where(diff > 0, diff, torch.ones_like(diff))
        positive = torch.where(is_log, torch.log(z), z**safe_gamma / safe_gamma)
        at_zero = torch.where(gamma > 1e-6, torch.zeros_like(diff), torch.full_like(diff, -math.inf))
        return torch.where(diff > 0, positive, torch.where(diff == 0, at_zero, torch.full_like(diff, -math.inf)))

    def for_openness(self, openness: float) -> Utility:
        return BoxCoxUtility(gamma=float(self.gamma(float(openness))), eps=self.eps)
