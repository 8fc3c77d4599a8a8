"""A tiny evaluator for the CEL that ecrm_client.export writes (numbers, selections, double(),
sigmoid(), + - *, comparisons, && ||, !, ?:), so exports can be checked against scikit-learn without
a server. Arithmetic follows CEL/IEEE doubles, left to right. Not a CEL implementation."""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op><=|>=|==|!=|&&|\|\||[-+*/<>!?:().]))"
)


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise SyntaxError(f"unexpected {text[pos:pos + 10]!r}")
        out.append(m.group(0).strip())
        pos = m.end()
    return out


FUNCTIONS = {
    "double": float,
    "sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)),
    "exp": math.exp,
}


class _Parser:
    def __init__(self, text: str, env: Mapping[str, Any]) -> None:
        self.toks, self.i, self.env = _tokens(text), 0, env

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise SyntaxError(f"expected {want!r}, got {tok!r}")
        self.i += 1
        return tok

    def parse(self) -> Any:
        value = self.cond()
        if self.peek() is not None:
            raise SyntaxError(f"trailing {self.peek()!r}")
        return value

    def cond(self) -> Any:
        test = self.or_()
        if self.peek() == "?":
            self.take("?")
            yes = self.cond()
            self.take(":")
            no = self.cond()
            return yes if test else no  # both sides evaluated: fine for pure expressions
        return test

    def or_(self) -> Any:
        v = self.and_()
        while self.peek() == "||":
            self.take()
            w = self.and_()
            v = v or w
        return v

    def and_(self) -> Any:
        v = self.compare()
        while self.peek() == "&&":
            self.take()
            w = self.compare()
            v = v and w
        return v

    def compare(self) -> Any:
        v = self.add()
        ops = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
               ">": lambda a, b: a > b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
        if self.peek() in ops:
            op = self.take()
            v = ops[op](v, self.add())
        return v

    def add(self) -> Any:
        v = self.mul()
        while self.peek() in ("+", "-"):
            op = self.take()
            w = self.mul()
            v = v + w if op == "+" else v - w
        return v

    def mul(self) -> Any:
        v = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            w = self.unary()
            v = v * w if op == "*" else v / w
        return v

    def unary(self) -> Any:
        if self.peek() == "-":
            self.take()
            return -self.unary()
        if self.peek() == "!":
            self.take()
            return not self.unary()
        return self.primary()

    def primary(self) -> Any:
        tok = self.take()
        if tok == "(":
            v = self.cond()
            self.take(")")
            return v
        if re.match(r"\d", tok):
            return float(tok) if any(c in tok for c in ".eE") else int(tok)
        if tok in ("true", "false"):
            return tok == "true"
        if self.peek() == "(":
            self.take("(")
            arg = self.cond()
            self.take(")")
            return FUNCTIONS[tok](arg)
        v = self.env[tok]
        while self.peek() == ".":
            self.take(".")
            v = v[self.take()]
        return v


def evaluate(text: str, **env: Any) -> Any:
    """The value of ``text`` with the given top-level variables (``profile=..., event=...``)."""
    return _Parser(text, env).parse()
