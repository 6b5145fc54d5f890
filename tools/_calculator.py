"""The ``calculator`` tool: a safe arithmetic evaluator with math functions and unit conversion.

Expressions are parsed with ``ast`` and walked over an allow-list of node types; nothing
is ever passed to ``eval``. Limits on length, nesting and integer size keep a hostile or
careless expression ("9**9**9**9") from exhausting the CPU or memory of the agent.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from ._tool import ToolFailure, tool
from ._units import convert_units, known_units, lookup_unit

MAX_EXPRESSION_CHARS = 1_000
MAX_DEPTH = 200  # a sum of many terms is a left-leaning chain this deep
MAX_INT_BITS = 10_000  # about 3,000 decimal digits
MAX_FACTORIAL = 1_000
MAX_ROUND_DIGITS = 100

Number = int | float

_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

# "5 km in mi", "(1+2) lb to kg", "100 degF in degC": <expression><unit> <keyword> <unit>
_CONVERSION_WORDS = frozenset({"in", "to", "into", "as"})
_UNIT_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyzµ°")
_UNIT_CHARS = _UNIT_START | {"_"}


def _number(value: Any, what: str) -> Number:
    # bool is an int subclass; True + 1 is not arithmetic a model means to do.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolFailure(f"{what} must be a number, got {type(value).__name__}")
    return value


def _checked(value: Any) -> Number:
    """Refuse results that are complex, infinite, NaN or too large to keep computing with."""
    if isinstance(value, complex):
        raise ToolFailure("the result is not a real number (e.g. a fractional power of a negative)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolFailure("the result overflowed (it is too large for a floating-point number)")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolFailure(f"the result has more than {MAX_INT_BITS * 3 // 10:,} digits")
    return _number(value, "a result")


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        # Estimate before computing: 9**9**9 would take minutes and gigabytes.
        bits = exponent * math.log2(abs(base))
        if bits > MAX_INT_BITS:
            raise ToolFailure(
                f"the result would have about {int(bits * 0.30103):,} digits; integers are "
                f"limited to {MAX_INT_BITS * 3 // 10:,} digits"
            )
    return _checked(base**exponent)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _round(x: Number, digits: int | None = None) -> Number:
    if digits is not None and (isinstance(digits, bool) or not isinstance(digits, int)):
        raise ToolFailure("round(): digits must be an integer")
    if digits is not None and abs(digits) > MAX_ROUND_DIGITS:
        raise ToolFailure(f"round(): digits must be within ±{MAX_ROUND_DIGITS}")
    return round(x) if digits is None else round(x, digits)


def _factorial(n: Number) -> int:
    if not isinstance(n, int) or n < 0:
        raise ToolFailure("factorial(): needs a non-negative integer")
    if n > MAX_FACTORIAL:
        raise ToolFailure(f"factorial(): n must be at most {MAX_FACTORIAL}")
    return math.factorial(n)


_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "cbrt": math.cbrt,
    "exp": math.exp,
    "log": _log,
    "ln": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "hypot": math.hypot,
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
    "trunc": math.trunc,
    "factorial": _factorial,
    "gcd": math.gcd,
    "lcm": math.lcm,
    "pow": _power,
}

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: _power,
}


def _evaluate(node: ast.AST, depth: int) -> Number | str:
    if depth > MAX_DEPTH:
        raise ToolFailure(f"expression: nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, depth + 1)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return node.value  # only meaningful as a unit name inside convert(...)
        return _number(node.value, "a constant")
    if isinstance(node, ast.Name):
        if node.id not in _CONSTANTS:
            raise ToolFailure(f"expression: unknown name {node.id!r}; constants: pi, e, tau")
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _number(_evaluate(node.operand, depth + 1), "an operand")
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _number(_evaluate(node.left, depth + 1), "an operand")
        right = _number(_evaluate(node.right, depth + 1), "an operand")
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Call):
        return _call(node, depth)
    raise ToolFailure(
        f"expression: {type(node).__name__} is not supported; use numbers, + - * / // % **, "
        "parentheses, and the listed functions"
    )


def _call(node: ast.Call, depth: int) -> Number:
    if not isinstance(node.func, ast.Name):
        raise ToolFailure("expression: only plain function calls like sqrt(2) are supported")
    name = node.func.id
    if node.keywords:
        raise ToolFailure(f"{name}(): keyword arguments are not supported")
    args = [_evaluate(arg, depth + 1) for arg in node.args]
    if name == "convert":
        if len(args) != 3 or not isinstance(args[1], str) or not isinstance(args[2], str):
            raise ToolFailure('convert(): use convert(value, "from_unit", "to_unit")')
        return _checked(convert_units(_number(args[0], "convert()'s value"), args[1], args[2]))
    function = _FUNCTIONS.get(name)
    if function is None:
        raise ToolFailure(f"expression: unknown function {name!r}")
    numbers = [_number(arg, f"{name}()'s argument") for arg in args]
    try:
        return _checked(function(*numbers))
    except TypeError as exc:
        raise ToolFailure(f"{name}(): {exc}") from None


def format_number(value: Number) -> str:
    """A number as the model should read it: integers exact, floats to 15 significant digits."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    # 15 digits hide binary noise such as 0.1 + 0.2 = 0.30000000000000004.
    return format(value, ".15g")


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression (``^`` is a power, as on calculators).

    Raises:
        ToolFailure: a syntax error, an unsupported construct, a math error, or a limit.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolFailure(f"expression: longer than {MAX_EXPRESSION_CHARS:,} characters")
    source = expression.replace("^", "**").replace("×", "*").replace("÷", "/").strip()
    if not source:
        raise ToolFailure("expression: empty")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ToolFailure(f"expression: invalid syntax ({exc.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        raise ToolFailure("expression: too deeply nested or malformed") from None
    try:
        return _number(_evaluate(tree, 0), "the result")
    except ZeroDivisionError:
        raise ToolFailure("division by zero") from None
    except OverflowError:
        raise ToolFailure(
            "the result overflowed (it is too large for a floating-point number)"
        ) from None
    except ValueError as exc:
        raise ToolFailure(f"math error: {exc}") from None


def _is_unit_name(word: str) -> bool:
    return bool(word) and word[0] in _UNIT_START and all(ch in _UNIT_CHARS for ch in word)


def split_conversion(expression: str) -> tuple[str, str, str] | None:
    """``(expression, from_unit, to_unit)`` of "<expression> <unit> in <unit>", else None.

    One pass from the end of the text, linear in its length (a regular expression with a
    lazy prefix took quadratic time here). The unit may be attached: "5km in mi".
    """
    parts = expression.rsplit(None, 2)
    if len(parts) != 3 or parts[1] not in _CONVERSION_WORDS or not _is_unit_name(parts[2]):
        return None
    head = parts[0]
    start = len(head)
    while start > 0 and head[start - 1] in _UNIT_CHARS:
        start -= 1
    while start < len(head) and head[start] not in _UNIT_START:
        start += 1  # a unit name starts with a letter, not "_"
    value, src = head[:start].strip(), head[start:]
    if not value or not src:
        return None
    return value, src, parts[2]


def calculate(expression: str) -> str:
    """Evaluate ``expression``; "<expr> <unit> in <unit>" converts units and names them.

    The length is checked before any parsing, so no input is expensive to refuse.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolFailure(f"expression: longer than {MAX_EXPRESSION_CHARS:,} characters")
    conversion = split_conversion(expression)
    # A trailing name that is no unit (e.g. "pi") means this was not a conversion.
    if conversion is not None and conversion[1] not in _CONSTANTS:
        text, src, dst = conversion
        lookup_unit(src, field="from_unit")
        value = evaluate(text)
        converted = _checked(convert_units(value, src, dst))
        return f"{format_number(value)} {src} = {format_number(converted)} {dst}"
    return format_number(evaluate(expression))


_DESCRIPTION = (
    "Evaluate a math expression and answer its value. Syntax: numbers, + - * / // % and ** "
    "(or ^) for powers, parentheses. Functions: sqrt, cbrt, exp, log(x) (natural) or "
    "log(x, base), ln, log2, log10, sin, cos, tan, asin, acos, atan, atan2 (radians), sinh, "
    "cosh, tanh, degrees, radians, hypot, abs, round(x[, digits]), min, max, floor, ceil, "
    "trunc, factorial, gcd, lcm, pow. Constants: pi, e, tau. Unit conversion: write "
    "'<expression> <unit> in <unit>', e.g. '5 km in mi', '(2+3) lb to kg', '98.6 degF in "
    'degC\', or use convert(value, "from", "to") inside an expression. Temperatures '
    "convert with their offsets. Units: " + known_units() + "."
)


@tool(
    name="calculator",
    description=_DESCRIPTION,
    timeout_s=5.0,
    expected_latency_s=0.001,
    side_effect_free=True,
)
def calculator(expression: Annotated[str, Field(max_length=200)]) -> str:
    """Calculator.

    Args:
        expression: e.g. 'sqrt(2) * 3', '2^10', '5 km in mi' or 'convert(100, "degC", "degF")'.
    """
    return calculate(expression)
