"""`Upstash-Retry-Delay`: an arithmetic expression in milliseconds over `retried`.

Parsed by a small recursive-descent parser into a tree and evaluated by walking
it, never by eval: numbers, `retried`, + - * / % ^ (and ** as power), unary
minus, parentheses, and the functions pow, sqrt, abs, exp, floor, ceil, round,
min and max. Anything else is a ValueError at publish time.

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/" | "%") unary)*
    unary  := "-" unary | "+" unary | power
    power  := atom (("^" | "**") unary)?
    atom   := NUMBER | "retried" | NAME "(" expr ("," expr)* ")" | "(" expr ")"
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_LENGTH = 256
MAX_DEPTH = 32
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|([A-Za-z_]\w*)|(\*\*|[-+*/%^(),]))")


def _pow(a: float, b: float) -> float:
    if abs(b) > 1024:
        raise OverflowError("exponent too large")
    return float(math.pow(a, b))


FUNCTIONS: dict[str, tuple[Callable[..., float], int, int]] = {
    # name: (function, fewest arguments, most arguments)
    "pow": (_pow, 2, 2),
    "sqrt": (math.sqrt, 1, 1),
    "abs": (abs, 1, 1),
    "exp": (math.exp, 1, 1),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "round": (round, 1, 1),
    "min": (min, 1, 64),
    "max": (max, 1, 64),
}


@dataclass(frozen=True, slots=True)
class Num:
    value: float


@dataclass(frozen=True, slots=True)
class Var:
    pass


@dataclass(frozen=True, slots=True)
class Unary:
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]


Node = Num | Var | Unary | Binary | Call


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"unexpected {text[pos:].strip()[:10]!r}")
        tokens.append(match.group(match.lastindex or 0))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None:
            raise ValueError("the expression ends too soon")
        if expected is not None and token != expected:
            raise ValueError(f"expected {expected!r}, found {token!r}")
        self.pos += 1
        return token

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError("the expression is nested too deeply")
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            node = Binary(op, node, self.term())
        self.depth -= 1
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek() in ("*", "/", "%"):
            op = self.take()
            node = Binary(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek() == "-":
            self.take()
            return Unary(self.unary_nested())
        if self.peek() == "+":
            self.take()
            return self.unary_nested()
        return self.power()

    def unary_nested(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError("the expression is nested too deeply")
        node = self.unary()
        self.depth -= 1
        return node

    def power(self) -> Node:
        node = self.atom()
        if self.peek() in ("^", "**"):
            self.take()
            node = Binary("^", node, self.unary_nested())
        return node

    def atom(self) -> Node:
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            return Num(float(token))
        if token == "(":
            node = self.expr()
            self.take(")")
            return node
        if token == "retried":
            return Var()
        if token in FUNCTIONS:
            self.take("(")
            args = [self.expr()]
            while self.peek() == ",":
                self.take()
                args.append(self.expr())
            self.take(")")
            _, least, most = FUNCTIONS[token]
            if not least <= len(args) <= most:
                raise ValueError(f"{token}() takes {least} to {most} arguments")
            return Call(token, tuple(args))
        if token[0].isalpha() or token[0] == "_":
            raise ValueError(f"unknown name {token!r} (only retried and {', '.join(FUNCTIONS)})")
        raise ValueError(f"unexpected {token!r}")


def parse(text: str) -> Node:
    """The expression's tree; ValueError says what is wrong with it."""
    if len(text) > MAX_LENGTH:
        raise ValueError(f"at most {MAX_LENGTH} characters")
    parser = _Parser(_tokens(text))
    node = parser.expr()
    if parser.peek() is not None:
        raise ValueError(f"unexpected {parser.peek()!r}")
    return node


def evaluate(node: Node, retried: int) -> float:
    """The value of the tree for `retried`; ArithmeticError/ValueError on e.g. 1/0."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Var):
        return float(retried)
    if isinstance(node, Unary):
        return -evaluate(node.operand, retried)
    if isinstance(node, Binary):
        a, b = evaluate(node.left, retried), evaluate(node.right, retried)
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        if node.op == "/":
            return a / b
        if node.op == "%":
            return math.fmod(a, b)
        return _pow(a, b)
    function = FUNCTIONS[node.name][0]
    return float(function(*(evaluate(arg, retried) for arg in node.args)))


def delay_seconds(expression: str, retried: int, cap: float) -> float | None:
    """Seconds to wait before retry number `retried` (0 for the first retry), clamped to
    [0, cap]; None when the expression fails for this value (the default backoff applies)."""
    try:
        millis = evaluate(parse(expression), retried)
    except (ArithmeticError, ValueError):
        return None
    if not math.isfinite(millis):
        return None
    return min(max(millis / 1000.0, 0.0), cap)
