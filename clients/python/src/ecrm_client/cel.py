"""Writing CEL text: number literals that round-trip exactly, operand grouping, identifiers."""

from __future__ import annotations

import math
import re
from typing import Any, Sequence, Tuple

# CEL's reserved words (the language definition): not usable as field names after a dot.
RESERVED = frozenset(
    "true false null in as break const continue else for function if import let loop package "
    "namespace return var void while".split()
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A selection chain, optionally followed by a call's opening parenthesis:
# `x`, `profile.traits.x0`, `double(`, `size(`.
_SELECTION = re.compile(r"[A-Za-z_][\w.]*\Z")
_CALLEE = re.compile(r"[A-Za-z_][\w.]*\(")
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?\Z")


def double(x: Any) -> str:
    """A CEL double literal that parses back to exactly ``float(x)``.

    ``float.__repr__`` is the shortest text that round-trips and always has a ``.`` or an exponent
    (``3.0``, ``1e-05``), so CEL reads it as a double, never an int. Negative values come out as
    ``-0.5`` (CEL's unary minus on a literal, which is exact). NaN and infinities raise ValueError.
    """
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"CEL has no literal for {value!r}")
    return repr(value)


def atom(expr: str) -> str:
    """``expr`` as an operand of a binary operator: parenthesised unless it is clearly one term."""
    text = expr.strip()
    if not text:
        raise ValueError("empty CEL expression")
    if _SELECTION.match(text) or _NUMBER.match(text):
        return text
    call = _CALLEE.match(text)
    start = call.end() - 1 if call else 0
    if text[start] == "(" and _closing_paren(text, start) == len(text) - 1:
        return text  # `f(...)` or `(...)` as a whole
    return f"({text})"


def _closing_paren(text: str, start: int) -> int:
    """The index of the parenthesis closing the one at ``start`` (-1 if none); skips string literals."""
    depth, quote, i = 0, "", start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def identifier(name: str) -> str:
    """``name`` if it can follow a dot in a CEL selection (``profile.traits.<name>``), else ValueError."""
    if not _IDENTIFIER.match(name) or name in RESERVED:
        raise ValueError(
            f"{name!r} is not a CEL identifier: give its expression explicitly "
            f"(features={{{name!r}: 'double(...)'}})"
        )
    return name


def linear(intercept: Any, terms: Sequence[Tuple[Any, str]]) -> str:
    """``b + w1 * x1 - w2 * x2 ...``, evaluated left to right as CEL does.

    A negative weight is written as a subtraction of its magnitude: ``b - w * x`` gives bit for bit
    the same double as ``b + (-w) * x`` (negation is exact), and reads better.
    """
    text = double(intercept)
    for weight, expr in terms:
        w = float(weight)
        sign = "-" if math.copysign(1.0, w) < 0 else "+"
        text += f" {sign} {double(abs(w))} * {atom(expr)}"
    return text


def conjoin(when: str, condition: str) -> str:
    """``when && condition``, dropping a ``when`` of ``true``."""
    if when.strip() == "true":
        return condition
    return f"{atom(when)} && {condition}"
