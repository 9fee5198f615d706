"""The utilities U: increasing, concave on (0, 1], finite and C¹ at 0 (all but the paper's x2), the
SPEC formulas."""

import math

import pytest
import torch
from hydra.utils import instantiate

from rcollapse.maths.utilities import (
    AdaptiveUtility,
    BoxCoxOpenEndednessUtility,
    BoxCoxUtility,
    InverseUtility,
    LinearUtility,
    LogSigmoidUtility,
    LogUtility,
    NegPowerUtility,
    PowerUtility,
    SquareUtility,
    Utility,
)
from tests.conftest import compose_config

EPS = 0.1
CONCAVE = {
    "x": LinearUtility(),
    "log": LogUtility(eps=EPS),
    "x_inv": InverseUtility(eps=EPS),
    "power0.5": PowerUtility(gamma=0.5, eps=EPS),
    "power0.9": PowerUtility(gamma=0.9, eps=EPS),
    "neg_power0.5": NegPowerUtility(gamma=0.5, eps=EPS),
    "neg_power2": NegPowerUtility(gamma=2.0, eps=EPS),
    "logsigmoid": LogSigmoidUtility(scale=4.0),
    "boxcox0.9": BoxCoxUtility(gamma=0.9),
    "boxcox0.5": BoxCoxUtility(gamma=0.5),
    "boxcox1e-5": BoxCoxUtility(gamma=1e-5),
    "boxcox0": BoxCoxUtility(gamma=0.0),
    "boxcox-0.5": BoxCoxUtility(gamma=-0.5),
    "boxcox-1": BoxCoxUtility(gamma=-1.0),
}
C1_AT_ZERO = {**CONCAVE, "x2_c1": SquareUtility(eps=EPS, extension="c1")}
ALL = {**C1_AT_ZERO, "x2": SquareUtility(eps=EPS)}  # the paper's x2: slope 1 below 0, 2ε above
GRID = torch.linspace(-1, 1, 4001, dtype=torch.float64)

# U'(0) for eps = 0.1, from the SPEC table by hand.
SLOPE_AT_ZERO = {
    "x": 1.0,
    "log": 1 / 0.1,
    "x_inv": 1 / 0.1**2,
    "power0.5": 0.5 * 0.1**-0.5,
    "power0.9": 0.9 * 0.1**-0.1,
    "neg_power0.5": 0.5 * 0.1**-1.5,
    "neg_power2": 2 * 0.1**-3,
    "logsigmoid": 4.0 * 0.5,
    "boxcox0.9": 0.1**-0.1,
    "boxcox0.5": 0.1**-0.5,
    "boxcox1e-5": 0.1 ** (1e-5 - 1),
    "boxcox0": 1 / 0.1,
    "boxcox-0.5": 0.1**-1.5,
    "boxcox-1": 0.1**-2,
    "x2_c1": 2 * 0.1,
}


def grad_at(u, x: float, dtype=torch.float64) -> float:
    t = torch.tensor([x], dtype=dtype, requires_grad=True)
    (g,) = torch.autograd.grad(u(t).sum(), t)
    return float(g)


@pytest.mark.parametrize("name", ALL)
def test_increasing_on_minus_one_to_one(name):
    values = ALL[name](GRID)
    assert torch.all(values[1:] > values[:-1])


@pytest.mark.parametrize("name", CONCAVE)
def test_concave_on_zero_one(name):
    x = torch.linspace(1e-4, 1, 2001, dtype=torch.float64)
    v = CONCAVE[name](x)
    second = v[2:] - 2 * v[1:-1] + v[:-2]
    assert torch.all(second <= 1e-12)


@pytest.mark.parametrize("extension", ["paper", "c1"])
def test_square_is_convex_on_zero_one(extension):
    x = torch.linspace(1e-4, 1, 2001, dtype=torch.float64)
    v = SquareUtility(extension=extension)(x)
    assert torch.all(v[2:] - 2 * v[1:-1] + v[:-2] >= -1e-12)


def test_x2_is_the_paper_code_by_default():
    # the paper's trainer.py: extended_x2(x, eps=1e-1) = torch.where(x > 0, (x+eps)**2-eps**2, x)
    eps = 0.1
    paper = torch.where(GRID > 0, (GRID + eps) ** 2 - eps**2, GRID)
    torch.testing.assert_close(SquareUtility()(GRID), paper, rtol=1e-12, atol=1e-15)
    assert SquareUtility().extension == "paper"
    # slope 1 below 0 (and at 0, where the paper's torch.where takes that branch), 2ε above
    u = SquareUtility(eps=eps)
    assert grad_at(u, -1e-7) == pytest.approx(1.0) and grad_at(u, 0.0) == pytest.approx(1.0)
    assert grad_at(u, 1e-7) == pytest.approx(2 * eps, rel=1e-5)


def test_x2_config_is_the_paper_code_with_the_c1_extension_as_an_option(tmp_path):
    x = torch.tensor([-0.5, -0.2, 0.3], dtype=torch.float64)
    paper = instantiate(compose_config(["utility=x2"], tmp_path).utility)
    assert paper(x).tolist() == pytest.approx([-0.5, -0.2, 0.4**2 - 0.01], rel=1e-12)
    c1 = instantiate(compose_config(["utility=x2", "utility.extension=c1"], tmp_path).utility)
    assert c1(x).tolist() == pytest.approx([-0.1, -0.04, 0.4**2 - 0.01], rel=1e-12)
    bogus = compose_config(["utility=x2", "utility.extension=smooth"], tmp_path).utility
    with pytest.raises(Exception, match=r"utility\.extension must be one of paper, c1 .*'smooth'"):
        instantiate(bogus)


@pytest.mark.parametrize("name", C1_AT_ZERO)
def test_finite_and_c1_at_zero(name):
    u = C1_AT_ZERO[name]
    assert torch.isfinite(u(GRID)).all()
    assert float(u(torch.zeros(1, dtype=torch.float64))) == 0.0 or name == "logsigmoid"
    left, at, right = grad_at(u, -1e-7), grad_at(u, 0.0), grad_at(u, 1e-7)
    slope = SLOPE_AT_ZERO[name]
    assert at == pytest.approx(slope, rel=1e-9)
    assert left == pytest.approx(slope, rel=1e-5)
    assert right == pytest.approx(slope, rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ALL)
def test_gradients_are_finite_everywhere(name, dtype):
    special = torch.tensor([0.0, -EPS, -1.0, 1.0, -1e-30, 1e-30, -50.0, 50.0], dtype=dtype)
    x = torch.cat([GRID.to(dtype), special]).requires_grad_()
    values = ALL[name](x)
    (g,) = torch.autograd.grad(values.sum(), x)
    assert torch.isfinite(values).all()
    assert torch.isfinite(g).all()
    assert torch.all(g[: GRID.numel()] > 0)  # (logsigmoid's gradient underflows at x = 50)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", ALL)
def test_keeps_dtype_and_shape(name, dtype):
    x = torch.linspace(-1, 1, 12, dtype=dtype).reshape(3, 4)
    out = ALL[name](x)
    assert out.dtype == dtype and out.shape == x.shape and out.device == x.device


# Expected values written from the SPEC table with Python's math, not from the implementation.
CASES = [
    (LinearUtility(), 0.3, 0.3),
    (LinearUtility(), -0.4, -0.4),
    (LogUtility(EPS), 0.3, math.log(0.4) - math.log(0.1)),
    (LogUtility(EPS), -0.2, -0.2 / 0.1),
    (LogUtility(0.05), 1.0, math.log(1.05) - math.log(0.05)),
    (InverseUtility(EPS), 0.3, 1 / 0.1 - 1 / 0.4),
    (InverseUtility(EPS), -0.2, -0.2 / 0.01),
    (InverseUtility(EPS), 1.0, 10 - 1 / 1.1),
    (PowerUtility(0.5, EPS), 0.3, 0.4**0.5 - 0.1**0.5),
    (PowerUtility(0.5, EPS), -0.2, 0.5 * 0.1**-0.5 * -0.2),
    (PowerUtility(0.25, EPS), 0.7, 0.8**0.25 - 0.1**0.25),
    (NegPowerUtility(0.5, EPS), 0.3, 0.1**-0.5 - 0.4**-0.5),
    (NegPowerUtility(0.5, EPS), -0.2, 0.5 * 0.1**-1.5 * -0.2),
    (NegPowerUtility(2.0, EPS), 0.9, 100 - 1.0),
    (LogSigmoidUtility(4.0), 0.3, math.log(1 / (1 + math.exp(-1.2)))),
    (LogSigmoidUtility(4.0), -0.5, math.log(1 / (1 + math.exp(2.0)))),
    (LogSigmoidUtility(1.0), 0.0, math.log(0.5)),
    (SquareUtility(EPS), 0.3, 0.4**2 - 0.01),
    (SquareUtility(EPS), -0.2, -0.2),
    (SquareUtility(EPS, extension="c1"), 0.3, 0.4**2 - 0.01),
    (SquareUtility(EPS, extension="c1"), -0.2, 2 * 0.1 * -0.2),
    (BoxCoxUtility(0.5, EPS), 0.3, (0.4**0.5 - 0.1**0.5) / 0.5),
    (BoxCoxUtility(-1.0, EPS), 0.3, (0.4**-1 - 0.1**-1) / -1),
    (BoxCoxUtility(0.0, EPS), 0.3, math.log(0.4) - math.log(0.1)),
    (BoxCoxUtility(0.5, EPS), -0.2, 0.1**-0.5 * -0.2),
    (BoxCoxUtility(-1.0, EPS), -0.2, 0.1**-2 * -0.2),
]


@pytest.mark.parametrize(
    ("utility", "x", "expected"), CASES, ids=[f"{c[0]!r}@{c[1]}" for c in CASES]
)
def test_matches_spec_formula(utility, x, expected):
    value = float(utility(torch.tensor([x], dtype=torch.float64))[0])
    assert value == pytest.approx(expected, rel=1e-12)


def test_float32_is_accurate_for_small_differences():
    x = torch.tensor([1e-6, 1e-4, 1e-2], dtype=torch.float32)
    for u, exact in (
        (PowerUtility(0.5), lambda t: (t + 0.1) ** 0.5 - 0.1**0.5),
        (NegPowerUtility(0.5), lambda t: 0.1**-0.5 - (t + 0.1) ** -0.5),
        (InverseUtility(), lambda t: 10 - 1 / (t + 0.1)),
        (LogUtility(), lambda t: math.log1p(t / 0.1)),
        (BoxCoxUtility(3e-6), lambda t: math.log1p(t / 0.1)),
    ):
        got = u(x).tolist()
        for t, value in zip(x.tolist(), got, strict=True):
            assert value == pytest.approx(exact(t), rel=1e-4), (u, t)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("utility, slope, points", [
    # ε^{−γ} − (x+ε)^{−γ} with a large γ: the exponent reaches −26 at x = 1 (the design tool
    # proposes γ = 10); torch.expm1's backward gave slope 0 there in float32
    (NegPowerUtility(10.0, eps=0.1), lambda x: 10 * (x + 0.1) ** -11, [1e-6, 0.1, 0.5, 1.0]),
    (NegPowerUtility(3.0, eps=0.01), lambda x: 3 * (x + 0.01) ** -4, [1e-6, 0.1, 0.5, 1.0]),
    (BoxCoxUtility(-1.0, eps=1e-6), lambda x: (x + 1e-6) ** -2, [1e-8, 0.1, 0.5, 1.0]),
    # un-shifted Box–Cox (x^γ − 1)/γ: slope x^{γ−1}, gave 0 at tiny x (float64: x = 1e−200)
    (BoxCoxUtility(0.5, eps=0), lambda x: x**-0.5, [1e-30, 1e-6, 0.5, 1.0]),
    (BoxCoxUtility(-0.5, eps=0), lambda x: x**-1.5, [1e-6, 0.5, 1.0]),
])
def test_slopes_equal_the_closed_form_derivative_where_the_exponent_is_far_below_zero(utility, slope, points, dtype):
    for x in points:
        assert grad_at(utility, x, dtype) == pytest.approx(slope(x), rel=1e-5 if dtype == torch.float64 else 1e-3), x


def test_the_un_shifted_box_cox_slope_stays_exact_at_a_gap_of_1e_minus_200():
    assert grad_at(BoxCoxUtility(0.5, eps=0), 1e-200) == pytest.approx(1e100, rel=1e-9)


def test_eps_zero_gives_the_unshifted_functions():
    x = torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64)
    expect = {
        LogUtility(eps=0): [math.log(0.25), math.log(0.5), 0.0],
        InverseUtility(eps=0): [-4.0, -2.0, -1.0],
        PowerUtility(0.5, eps=0): [0.5, 0.5**0.5, 1.0],
        NegPowerUtility(0.5, eps=0): [-2.0, -(2**0.5), -1.0],
        SquareUtility(eps=0): [0.0625, 0.25, 1.0],
        BoxCoxUtility(0.5, eps=0): [(0.5 - 1) / 0.5, (0.5**0.5 - 1) / 0.5, 0.0],
        BoxCoxUtility(-1.0, eps=0): [(4 - 1) / -1, (2 - 1) / -1, 0.0],
        BoxCoxUtility(0.0, eps=0): [math.log(0.25), math.log(0.5), 0.0],
        LinearUtility(eps=0): [0.25, 0.5, 1.0],
    }
    for u, expected in expect.items():
        assert u(x).tolist() == pytest.approx(expected, rel=1e-12), u
    edge = torch.tensor([0.0, -0.1, -1.0], dtype=torch.float64)
    singular = (LogUtility(0), InverseUtility(0), NegPowerUtility(0.5, 0), BoxCoxUtility(0.0, 0),
                BoxCoxUtility(-0.5, 0))
    for u in singular:
        assert torch.all(u(edge) == -math.inf), u
    assert PowerUtility(0.5, eps=0)(edge).tolist() == [0.0, -math.inf, -math.inf]
    assert BoxCoxUtility(0.5, eps=0)(edge).tolist() == [-2.0, -math.inf, -math.inf]
    assert SquareUtility(eps=0)(edge).tolist() == [0.0, -0.1, -1.0]
    assert SquareUtility(eps=0, extension="c1")(edge).tolist() == [0.0, 0.0, 0.0]
    assert LogSigmoidUtility(eps=0)(edge).tolist() == LogSigmoidUtility()(edge).tolist()


def test_adaptive_picks_per_element_and_needs_openness():
    u = AdaptiveUtility(open_utility=InverseUtility(), closed_utility=LinearUtility())
    assert u.prompt_aware and not InverseUtility.prompt_aware
    x = torch.tensor([0.3, 0.3, -0.2, -0.2, 0.3], dtype=torch.float64)
    s = torch.tensor([1.0, -1.0, 1.0, -1.0, 0.0], dtype=torch.float64)
    expected = [1 / 0.1 - 1 / 0.4, 0.3, -0.2 / 0.01, -0.2, 0.3]  # s = 0 is not > threshold 0
    assert u(x, s).tolist() == pytest.approx(expected, rel=1e-12)
    assert isinstance(u.for_openness(1.0), InverseUtility)
    assert isinstance(u.for_openness(-1.0), LinearUtility)
    assert isinstance(u.for_openness(torch.tensor(0.5)), InverseUtility)
    with pytest.raises(ValueError, match="openness"):
        u(x)
    shifted = AdaptiveUtility(InverseUtility(), LinearUtility(), threshold=0.5)
    assert shifted.for_openness(0.4) is shifted.closed_utility


def test_adaptive_broadcasts_openness_and_has_finite_gradients():
    u = AdaptiveUtility(open_utility=InverseUtility(), closed_utility=LinearUtility())
    diff = torch.linspace(-1, 1, 12, dtype=torch.float32).reshape(2, 6).requires_grad_()
    openness = torch.tensor([[1.0], [-1.0]])
    values = u(diff, openness)
    assert values.shape == diff.shape and values.dtype == torch.float32
    torch.testing.assert_close(values[0], InverseUtility()(diff[0]))
    torch.testing.assert_close(values[1], diff[1])
    (g,) = torch.autograd.grad(values.sum(), diff)
    assert torch.isfinite(g).all()
    assert u(torch.tensor([0.3]), 1.0).item() == pytest.approx(10 - 1 / 0.4, rel=1e-6)
    with pytest.raises(ValueError, match="broadcast"):
        u(diff, torch.ones(3))


def test_box_cox_is_a_positive_multiple_of_the_paper_classes():
    x = torch.linspace(-1, 1, 401, dtype=torch.float64)
    for g in (0.2, 0.5, 0.9):
        torch.testing.assert_close(BoxCoxUtility(g)(x), PowerUtility(g)(x) / g)
    for g in (0.3, 0.5, 1.0):
        torch.testing.assert_close(BoxCoxUtility(-g)(x), NegPowerUtility(g)(x) / g)
    torch.testing.assert_close(BoxCoxUtility(0.0)(x), LogUtility()(x))
    torch.testing.assert_close(BoxCoxUtility(-1.0)(x), InverseUtility()(x))
    # Continuous in γ through the log branch.
    for g in (-1e-5, 1e-5):
        torch.testing.assert_close(BoxCoxUtility(g)(x), LogUtility()(x), rtol=1e-4, atol=1e-6)


def test_open_endedness_interpolates_gamma_over_the_score():
    u = BoxCoxOpenEndednessUtility(gamma_closed=0.9, gamma_open=-1.0)
    assert u.prompt_aware
    assert u.gamma(-1.0) == pytest.approx(0.9)
    assert u.gamma(1.0) == pytest.approx(-1.0)
    assert u.gamma(0.0) == pytest.approx(-0.05)
    assert u.gamma(0.5) == pytest.approx(0.9 + 0.75 * -1.9)
    assert u.gamma(3.0) == pytest.approx(-1.0)  # clamped to [-1, 1]
    scores = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    assert u.gamma(scores).tolist() == pytest.approx([0.9, -0.05, -1.0])
    assert isinstance(u.for_openness(0.5), BoxCoxUtility)
    assert u.for_openness(0.5).gamma == pytest.approx(u.gamma(0.5))
    assert u.for_openness(0.5).eps == u.eps
    assert u.limit_beta_for(1.0) == pytest.approx((1.0, 1.0))  # uniform
    assert u.limit_beta_for(-1.0) == pytest.approx((0.05, 0.05))  # polarised


@pytest.mark.parametrize("eps", [0.1, 0.0])
def test_open_endedness_per_element_equals_for_openness(eps):
    u = BoxCoxOpenEndednessUtility(gamma_closed=0.5, gamma_open=-0.5, eps=eps)  # γ(0) = 0: log
    x = torch.linspace(-1, 1, 41, dtype=torch.float64)
    for s in (-1.0, -0.3, 0.0, 0.5, 1.0):
        torch.testing.assert_close(u(x, torch.full_like(x, s)), u.for_openness(s)(x))
    mixed_s = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    mixed = u(torch.full((3,), 0.3, dtype=torch.float64), mixed_s)
    expected = [((0.3 + eps) ** 0.5 - eps**0.5) / 0.5,
                math.log(0.3 + eps) - (math.log(eps) if eps else 0.0),
                ((0.3 + eps) ** -0.5 - (eps**-0.5 if eps else 1.0)) / -0.5]
    if eps == 0:
        expected[0] = (0.3**0.5 - 1) / 0.5
    assert mixed.tolist() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="openness"):
        u(x)


def test_open_endedness_gradients_are_finite_and_dtype_kept():
    u = BoxCoxOpenEndednessUtility()
    diff = torch.cat([GRID, torch.tensor([0.0, -EPS, -1.0])]).float().requires_grad_()
    s = torch.linspace(-1, 1, diff.numel())
    values = u(diff, s)
    (g,) = torch.autograd.grad(values.sum(), diff)
    assert values.dtype == torch.float32 and torch.isfinite(values).all()
    assert torch.isfinite(g).all() and torch.all(g > 0)
    half = u(torch.tensor([0.5], dtype=torch.bfloat16), torch.tensor([-1.0]))
    assert half.dtype == torch.bfloat16


def test_limit_predictions():
    assert LogUtility().limit_beta() == (0.5, 0.5)
    assert InverseUtility().limit_beta() == (1.0, 1.0)
    assert PowerUtility(0.5).limit_beta() == pytest.approx((0.25, 0.25))
    assert NegPowerUtility(0.5).limit_beta() == pytest.approx((0.75, 0.75))
    assert NegPowerUtility(3.0).limit_beta() == (1.0, 1.0)
    assert BoxCoxUtility(-0.5).limit_beta() == pytest.approx((0.75, 0.75))
    assert LinearUtility().limit_beta() is None and SquareUtility().limit_beta() is None


def test_fixed_utilities_ignore_openness_and_return_self():
    u = LogUtility()
    x = torch.tensor([0.3, -0.3])
    torch.testing.assert_close(u(x, torch.tensor([1.0, -1.0])), u(x))
    assert u.for_openness(1.0) is u
    assert isinstance(u, Utility)


def test_readable_repr():
    assert repr(PowerUtility(0.5)) == "PowerUtility(gamma=0.5, eps=0.1)"
    assert repr(LogSigmoidUtility()) == "LogSigmoidUtility(scale=4.0, eps=0.1)"
    assert repr(SquareUtility()) == "SquareUtility(eps=0.1, extension='paper')"
    assert "InverseUtility(eps=0.1)" in repr(AdaptiveUtility(InverseUtility(), LinearUtility()))
    text = repr(BoxCoxOpenEndednessUtility())
    assert text == "BoxCoxOpenEndednessUtility(gamma_closed=0.9, gamma_open=-1.0, eps=0.1)"


@pytest.mark.parametrize(
    ("factory", "key"),
    [
        (lambda: LogUtility(eps=-0.1), "utility.eps"),
        (lambda: InverseUtility(eps=math.inf), "utility.eps"),
        (lambda: LinearUtility(eps=math.nan), "utility.eps"),
        (lambda: SquareUtility(eps="small"), "utility.eps"),
        (lambda: SquareUtility(extension="C1"), "utility.extension"),
        (lambda: SquareUtility(extension=None), "utility.extension"),
        (lambda: PowerUtility(gamma=1.5), "utility.gamma"),
        (lambda: PowerUtility(gamma=0.0), "utility.gamma"),
        (lambda: PowerUtility(gamma=1.0), "utility.gamma"),
        (lambda: PowerUtility(gamma=math.nan), "utility.gamma"),
        (lambda: NegPowerUtility(gamma=0), "utility.gamma"),
        (lambda: NegPowerUtility(gamma=-1.0), "utility.gamma"),
        (lambda: NegPowerUtility(gamma=math.inf), "utility.gamma"),
        (lambda: LogSigmoidUtility(scale=0), "utility.scale"),
        (lambda: LogSigmoidUtility(scale=-4.0), "utility.scale"),
        (lambda: BoxCoxUtility(gamma=1.0), "utility.gamma"),
        (lambda: BoxCoxUtility(gamma=-1.5), "utility.gamma"),
        (lambda: BoxCoxOpenEndednessUtility(gamma_closed=1.0), "utility.gamma_closed"),
        (lambda: BoxCoxOpenEndednessUtility(gamma_open=-2.0), "utility.gamma_open"),
        (lambda: BoxCoxOpenEndednessUtility(eps=-1), "utility.eps"),
        (lambda: AdaptiveUtility(open_utility="x_inv", closed_utility=LinearUtility()),
         "utility.open_utility"),
        (lambda: AdaptiveUtility(open_utility=InverseUtility(), closed_utility=None),
         "utility.closed_utility"),
        (lambda: AdaptiveUtility(open_utility=BoxCoxOpenEndednessUtility(),
                                 closed_utility=LinearUtility()), "utility.open_utility"),
        (lambda: AdaptiveUtility(InverseUtility(), LinearUtility(), threshold=math.nan),
         "utility.threshold"),
    ],
)
def test_bad_arguments_name_the_key(factory, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        factory()
