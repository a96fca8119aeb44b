"""Checking one JMESPath expression of a mapping: it parses, and it is shallow enough to evaluate.

jmespath parses and evaluates recursively, and mapsync walks the parsed tree recursively too, so an
expression nested thousands of levels deep (`((((a))))`, `a.b.c...`, `!!!!a`) would end in a
RecursionError somewhere; it is refused here, once, with the row's file and line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jmespath
from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError, ParseError

from mapsync.mapping.functions import FUNCTION_TABLE, MOST_ARGUMENTS, literal_problem

MAX_EXPRESSION_DEPTH = 50  # levels of the parsed tree; `join(' ', [a, b])` has 3, a field path one per field
_SHOWN = 60  # characters of an expression quoted in a message


def expression_problem(expression: str, *, functions: Mapping[str, Any] = FUNCTION_TABLE,
                       parse_error: Callable[[JMESPathError], str] | None = None) -> str | None:
    """Why `expression` cannot be used, or None when it can: a mapping expression (the mapping functions,
    their literal arguments checked), or with `functions` another table, e.g. plain JMESPath's for a
    connector definition's selectors; `parse_error` words a syntax error (default: jmespath's first line)."""
    try:
        parsed = jmespath.compile(expression).parsed
    except JMESPathError as exc:
        return f"invalid JMESPath expression {shown(expression)}: {(parse_error or _first_line)(exc)}"
    except ValueError:  # the lexer turns digits into int(): thousands of them exceed Python's bound
        return f"invalid JMESPath expression {shown(expression)}: a number in it is too long"
    except RecursionError:
        return _too_deep(expression)
    if _depth(parsed) > MAX_EXPRESSION_DEPTH:
        return _too_deep(expression)
    return _function_problem(parsed, functions)


def readable_parse_error(exc: JMESPathError) -> str:
    """jmespath's own message spans three lines; this one says what and where in one."""
    position = getattr(exc, "lex_position", None)
    at = f" at character {position + 1}" if isinstance(position, int) else ""
    if isinstance(exc, IncompleteExpressionError):
        return "it ends too early (an unclosed bracket or a missing operand?)"
    if isinstance(exc, LexerError):
        return f"{str(getattr(exc, 'message', 'unreadable')).replace('Unclosed', 'unclosed')}{at}"
    if isinstance(exc, ParseError) and getattr(exc, "token_value", None) is not None:
        return f"unexpected {str(exc.token_value)!r}{at}"
    return _first_line(exc)


def shown(expression: str) -> str:
    """The expression quoted for a message, cut short when long."""
    if len(expression) <= _SHOWN:
        return repr(expression)
    return repr(expression[:_SHOWN]) + f"... ({len(expression)} characters)"


def _too_deep(expression: str) -> str:
    return f"JMESPath expression {shown(expression)} is nested more than {MAX_EXPRESSION_DEPTH} levels deep"


def _depth(tree: Any) -> int:
    """Height of a parsed expression, walked without recursion (the tree may be thousands deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_EXPRESSION_DEPTH:
            break
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.get("children", ()) if isinstance(child, dict))
    return deepest


def _function_problem(tree: Any, functions: Mapping[str, Any]) -> str | None:
    """jmespath checks function names and argument counts only when it evaluates: check them now, and
    the literal arguments a mapping function can judge before any record (a regular expression)."""
    for node in _nodes(tree):
        if node.get("type") != "function_expression":
            continue
        name = str(node.get("value"))
        entry = functions.get(name)
        if entry is None:
            return f"unknown JMESPath function {name}() (known: {', '.join(sorted(functions))})"
        arguments = list(node.get("children", ()))
        problem = _arity_problem(name, entry["signature"], len(arguments)) or literal_problem(name, arguments)
        if problem:
            return problem
    return None


def _arity_problem(name: str, signature: list[dict[str, Any]], given: int) -> str | None:
    least = len(signature)
    variadic = bool(signature) and signature[-1].get("variadic", False)
    most = MOST_ARGUMENTS.get(name, None if variadic else least)
    if least <= given and (most is None or given <= most):
        return None
    if most is None:
        wanted = f"at least {least}"
    elif most == least:
        wanted = str(least)
    else:
        wanted = f"{least} or {most}" if most == least + 1 else f"{least} to {most}"
    plural = "" if wanted in {"1", "at least 1"} else "s"
    return f"JMESPath function {name}() takes {wanted} argument{plural}, not {given}"


def _nodes(tree: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.append(node)
            stack.extend(node.get("children", ()))
    return found


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
