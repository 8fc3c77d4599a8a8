"""CEL text helpers: exact double literals, operand grouping, linear sums."""

import pytest

from ecrm_client import cel


@pytest.mark.parametrize(
    "x, text",
    [(0.1, "0.1"), (3, "3.0"), (-2.5, "-2.5"), (1e-05, "1e-05"), (1.5e20, "1.5e+20"), (1 / 3, "0.3333333333333333")],
)
def test_double_is_float_repr(x, text):
    assert cel.double(x) == text
    assert float(text) == float(x)


@pytest.mark.parametrize("x", [float("nan"), float("inf"), float("-inf")])
def test_double_rejects_non_finite(x):
    with pytest.raises(ValueError):
        cel.double(x)


@pytest.mark.parametrize(
    "expr, out",
    [
        ("x", "x"),
        ("profile.traits.x0", "profile.traits.x0"),
        ("double(profile.stats.page_views)", "double(profile.stats.page_views)"),
        ("event.properties.name.size()", "event.properties.name.size()"),
        ("sigmoid(1.0 + double(a))", "sigmoid(1.0 + double(a))"),
        ("(a + b)", "(a + b)"),
        ("2.5", "2.5"),
        ("f(')')", "f(')')"),
        ("double(a) + double(b)", "(double(a) + double(b))"),
        ("(a) + (b)", "((a) + (b))"),
        ("-1.0", "(-1.0)"),
        ("a ? 1.0 : 2.0", "(a ? 1.0 : 2.0)"),
    ],
)
def test_atom(expr, out):
    assert cel.atom(expr) == out


def test_linear_writes_negative_weights_as_subtraction():
    text = cel.linear(-0.5, [(2.0, "double(a)"), (-0.25, "x + y"), (0, "z")])
    assert text == "-0.5 + 2.0 * double(a) - 0.25 * (x + y) + 0.0 * z"


def test_identifier():
    assert cel.identifier("x0") == "x0"
    for bad in ["page-views", "0x", "in", "a.b", ""]:
        with pytest.raises(ValueError):
            cel.identifier(bad)


def test_conjoin():
    assert cel.conjoin("true", "a > 1.0") == "a > 1.0"
    assert cel.conjoin("event.type == 'track'", "a > 1.0") == "(event.type == 'track') && a > 1.0"
