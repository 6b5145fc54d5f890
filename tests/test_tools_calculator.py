"""The calculator tool: safe arithmetic, math functions, unit conversion, and refusals."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrt.tools import ToolFailure, calculator, convert_units
from agentrt.tools._calculator import calculate, evaluate, split_conversion


@pytest.mark.parametrize(
    ("expression", "answer"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("7 // 2", "3"),
        ("7 % 4", "3"),
        ("7 / 2", "3.5"),
        ("2 ** 10", "1024"),
        ("2^10", "1024"),
        ("-2^2", "-4"),
        ("0.1 + 0.2", "0.3"),
        ("sqrt(16)", "4"),
        ("log(8, 2)", "3"),
        ("log10(1000)", "3"),
        ("exp(0)", "1"),
        ("sin(pi / 2)", "1"),
        ("cos(0) + tan(0)", "1"),
        ("abs(-3)", "3"),
        ("round(2.567, 2)", "2.57"),
        ("min(3, 1, 2) + max(3, 1, 2)", "4"),
        ("floor(2.7) + ceil(2.1)", "5"),
        ("factorial(10)", "3628800"),
        ("pow(3, 4)", "81"),
        ("e", "2.71828182845905"),
        ("2 * pi", "6.28318530717959"),
    ],
)
def test_evaluates_arithmetic_and_functions(expression: str, answer: str) -> None:
    assert calculate(expression) == answer


@pytest.mark.parametrize(
    ("expression", "answer"),
    [
        ("5 km in mi", "5 km = 3.10685596118667 mi"),
        ("12 in to cm", "12 in = 30.48 cm"),
        ("(1 + 1) lb in kg", "2 lb = 0.90718474 kg"),
        ("90 min in h", "90 min = 1.5 h"),
        ("2 weeks in days", "2 weeks = 14 days"),
        ("100 degC in degF", "100 degC = 212 degF"),
        ("-40 F in C", "-40 F = -40 C"),
        ("0 K in degC", "0 K = -273.15 degC"),
        ("98.6 fahrenheit to celsius", "98.6 fahrenheit = 37 celsius"),
    ],
)
def test_converts_units_written_as_value_unit_in_unit(expression: str, answer: str) -> None:
    assert calculate(expression) == answer


def test_convert_function_works_inside_an_expression() -> None:
    assert calculate('convert(1, "mi", "km") * 2') == "3.218688"


def test_temperature_conversion_is_affine_not_a_ratio() -> None:
    # A plain ratio would map 0 to 0; Celsius and Fahrenheit have different zeros.
    assert convert_units(0, "degC", "degF") == pytest.approx(32)
    assert convert_units(10, "degC", "degF") - convert_units(0, "degC", "degF") == pytest.approx(18)


@given(
    value=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    pair=st.sampled_from(
        [("km", "mi"), ("ft", "m"), ("lb", "g"), ("h", "s"), ("degF", "K"), ("degC", "degR")]
    ),
)
def test_conversion_round_trips(value: float, pair: tuple[str, str]) -> None:
    there = convert_units(value, *pair)
    back = convert_units(there, pair[1], pair[0])
    assert back == pytest.approx(value, rel=1e-9, abs=1e-9)


@given(st.integers(-(10**30), 10**30), st.integers(-(10**30), 10**30))
def test_integer_arithmetic_is_exact(a: int, b: int) -> None:
    assert evaluate(f"{a} + ({b})") == a + b
    assert evaluate(f"{a} * ({b})") == a * b


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("9**9**9", "digits"),
        ("10**100000", "digits"),
        ("factorial(100000)", "at most"),
        ("1 / 0", "division by zero"),
        ("1e308 * 10", "overflowed"),
        ("(-8) ** 0.5", "not a real number"),
        ("sqrt(-1)", "math error"),
        ("x + 1", "unknown name 'x'"),
        ("__import__('os')", "unknown function '__import__'"),
        ("__import__('os').system('true')", "only plain function calls"),
        ("(1).__class__", "Attribute is not supported"),
        ("[1, 2][0]", "is not supported"),
        ("lambda: 1", "Lambda is not supported"),
        ("'a' * 10**9", "must be a number"),
        ("1 if 1 else 2", "IfExp is not supported"),
        ("sqrt(x=4)", "keyword arguments"),
        ("5 kg in m", "cannot convert mass (kg) to length (m)"),
        ("5 parsec in m", "unknown unit 'parsec'"),
        ('convert(5, "km")', "convert(value"),
        ("1 +", "invalid syntax"),
        ("", "empty"),
        ("1+" * 600 + "1", "longer than"),
        ("(" * 250 + "1" + ")" * 250, "nested"),
        ("-" * 300 + "1", "nested"),
    ],
)
def test_refuses_with_a_clear_message(expression: str, message: str) -> None:
    with pytest.raises(ToolFailure) as caught:
        calculate(expression)
    assert message in str(caught.value)


def test_refusals_are_fast_even_for_huge_powers() -> None:
    # The guard estimates the size before computing; 9**9**9 would take minutes.
    with pytest.raises(ToolFailure):
        evaluate("2 ** 2 ** 2 ** 2 ** 2 ** 2")


@pytest.mark.anyio
async def test_tool_is_side_effect_free_and_describes_its_syntax() -> None:
    assert calculator.side_effect_free
    assert calculator.expected_latency_s is not None and calculator.expected_latency_s < 0.1
    assert calculator.parameters["required"] == ["expression"]
    for word in ("sqrt", "5 km in mi", "degF", "convert("):
        assert word in calculator.description
    assert await calculator.invoke({"expression": "6 * 7"}) == "42"


def test_results_are_finite_numbers() -> None:
    value = evaluate("exp(700)")
    assert isinstance(value, float) and math.isfinite(value)


@pytest.mark.parametrize("text", ["a" * 20_000, "1 " + "a" * 20_000 + " in mi", " " * 20_000 + "x"])
def test_an_overlong_expression_is_refused_before_any_parsing(text: str) -> None:
    # The unit-conversion pattern used to run first: 20,000 letters took seconds.
    started = time.perf_counter()
    with pytest.raises(ToolFailure, match="expression: longer than 1,000 characters"):
        calculate(text)
    assert time.perf_counter() - started < 0.05


_UNIT_NAME = st.from_regex(r"[A-Za-z][A-Za-z_]{0,8}", fullmatch=True)


@given(
    value=st.from_regex(r"[0-9(][0-9+*/ ().]{0,20}[0-9)]", fullmatch=True),
    src=_UNIT_NAME,
    word=st.sampled_from(["in", "to", "into", "as"]),
    dst=_UNIT_NAME,
    gap=st.sampled_from([" ", "", "  "]),
)
def test_conversions_split_into_value_and_units(
    value: str, src: str, word: str, dst: str, gap: str
) -> None:
    assert split_conversion(f"{value}{gap}{src} {word} {dst}") == (value.strip(), src, dst)


@given(st.text(max_size=300))
def test_splitting_never_fails_and_keeps_the_value_nonempty(text: str) -> None:
    split = split_conversion(text)
    if split is not None:
        value, src, dst = split
        assert value and value == value.strip()
        assert not src.startswith("_") and not dst.startswith("_")
        assert text.rstrip().endswith(dst)
