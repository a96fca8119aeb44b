"""JMESPath expressions compiled once into Python closures, so a record costs a few plain calls instead of a
walk of the parsed tree by jmespath's interpreter (a fresh interpreter per search, a type check per call).

The closures do exactly what jmespath 1.x's TreeInterpreter does for the node types below (fields,
subexpressions, indexes, pipes, literals, `@`, comparisons, `&&`, `||`, `!` and function calls); an
expression holding any other node (projections, slices, multi-selects, `&expref`) is not compiled and
stays with jmespath. A function call checks its arguments' types against a subset of what its signature
allows; any other value (or a wrong number of arguments) goes through jmespath's own `call_function`, so
a type or arity error is exactly the one jmespath raises. The common shapes on text (`lower(Epost)`,
`regex_replace(Orgnr, '[^0-9]', '')`, `pad_left(Postnr, `4`, '0')`, ...) call the string method itself
when the value is a string; `coalesce` of plain fields reads them in place.
"""

from __future__ import annotations

import functools
import operator
import re
from collections import OrderedDict
from collections.abc import Callable
from numbers import Number
from typing import Any, cast

import jmespath

from mapsync.mapping.functions import FUNCTION_TABLE, OPTIONS

Compiled = Callable[[Any], Any]
Node = dict[str, Any]

_FUNCTIONS: Any = OPTIONS.custom_functions
_CALL_FUNCTION: Callable[[str, list[Any]], Any] = _FUNCTIONS.call_function
# The Python types a JMESPath type name stands for, by identity (jmespath checks type names: these pass).
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "boolean": (bool,), "array": (list,), "object": (dict, OrderedDict), "null": (type(None),),
    "string": (str,), "number": (float, int),
}


def compile_expression(expression: str) -> Compiled | None:
    """A closure evaluating `expression` as jmespath.search(expression, record, OPTIONS) would, or None
    when the expression holds a node this module leaves to jmespath."""
    return _compile(_parsed(expression))


def text_chain(expression: str) -> tuple[str, tuple[Callable[[str], Any], ...], bool] | None:
    """(field, steps, whether the last step gives text) when `expression` is text functions applied to one
    top-level field and literals (`lower(trim(Epost))`): for a string value of the field, the expression's
    value is the steps applied in turn (what the compiled closures do for it, minus the calls in between).
    None for any other shape."""
    found = _text_chain(_parsed(expression))
    if found is None or not found[1]:
        return None
    return found[0], tuple(step for _, step in found[1]), found[1][-1][0] in _TEXT_TO_TEXT


def coalesced_fields(expression: str) -> tuple[str, ...] | None:
    """The fields of `coalesce(a, b, ...)` when each argument is a plain top-level field, else None."""
    node = _parsed(expression)
    if node.get("type") != "function_expression" or node["value"] != "coalesce" or len(node["children"]) < 2:
        return None
    if not all(child.get("type") == "field" for child in node["children"]):
        return None
    return tuple(str(child["value"]) for child in node["children"])


def _text_chain(node: Node) -> tuple[str, list[tuple[str, Callable[[str], Any]]]] | None:
    if node.get("type") == "field":
        return node["value"], []
    if node.get("type") != "function_expression" or not node["children"]:
        return None
    name, (first, *others) = node["value"], node["children"]
    entry = FUNCTION_TABLE.get(name)
    checks = _argument_checks(entry["signature"]) if entry is not None else None
    if entry is None or checks is None or not _arity_fits(entry["signature"], len(node["children"])) or \
            any(child.get("type") != "literal" for child in others):
        return None
    constants = tuple(child["value"] for child in others)
    if str not in dict(checks).get(0, (str,)) or \
            not all(type(constants[i - 1]) in kinds for i, kinds in checks if i > 0):
        return None
    step, inner = _on_text(name, constants), _text_chain(first)
    if step is None or inner is None or (inner[1] and inner[1][-1][0] not in _TEXT_TO_TEXT):
        return None  # a step after regex_match would not be given text
    return inner[0], [*inner[1], (name, step)]


def _parsed(expression: str) -> Node:
    return cast(Node, jmespath.compile(expression).parsed)


def _compile(node: Node) -> Compiled | None:
    builder = _BUILDERS.get(node.get("type", ""))
    return builder(node) if builder is not None else None


def _children(node: Node) -> list[Compiled] | None:
    compiled = [_compile(child) for child in node.get("children", [])]
    return None if any(step is None for step in compiled) else [step for step in compiled if step is not None]


# -- paths --------------------------------------------------------------------------------------------------

def _field(node: Node) -> Compiled:
    key = node["value"]

    def field(value: Any) -> Any:
        try:
            return value.get(key)
        except AttributeError:  # not an object: null, as jmespath says
            return None

    return field


def _chain(node: Node) -> Compiled | None:
    """A subexpression, an index expression or a pipe: each step reads from what the one before gave."""
    steps = _children(node)
    if steps is None:
        return None
    if len(steps) == 2:
        first, second = steps
        return lambda value: second(first(value))

    def chain(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return chain


def _index(node: Node) -> Compiled:
    position = node["value"]

    def index(value: Any) -> Any:
        if not isinstance(value, list):
            return None
        try:
            return value[position]
        except IndexError:
            return None

    return index


def _literal(node: Node) -> Compiled:
    constant = node["value"]
    return lambda value: constant


def _current(node: Node) -> Compiled:
    return lambda value: value


# -- logic and comparison -----------------------------------------------------------------------------------

def _is_false(value: Any) -> bool:
    """JMESPath's falseness (the interpreter's own test, in its order)."""
    return value is None or value is False or value in ("", [], {})


def _is_number(value: Any) -> bool:
    kind = type(value)
    if kind is int or kind is float:  # what JSON parses to: decided without the ABC's isinstance
        return True
    if kind is bool or kind is str or value is None:
        return False
    return isinstance(value, Number)


def _equals(left: Any, right: Any) -> Any:
    """JMESPath's equality: 0 and 1 are not equal to false and true."""
    if _is_number(left) and left in (0, 1):
        if isinstance(right, bool):
            return False
    elif _is_number(right) and right in (0, 1) and isinstance(left, bool):
        return False
    return left == right


_ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt, "gt": operator.gt, "lte": operator.le, "gte": operator.ge}


def _field_is_literal(node: Node) -> Compiled | None:
    """`field == literal` for a literal true, false, null or string (a tombstone test, `kind == 'customer'`):
    one dict lookup. JMESPath equality with these is Python's on the same value, except that 1 and 0 are not
    true and false: compared by identity for those three."""
    first, second = node["children"]
    if first.get("type") != "field" or second.get("type") != "literal":
        return None
    name, literal = first["value"], second["value"]
    if literal is None or isinstance(literal, bool):
        return lambda value: (value.get(name) if isinstance(value, dict) else None) is literal
    if isinstance(literal, str):
        return lambda value: isinstance(value, dict) and value.get(name) == literal
    return None


def _comparator(node: Node) -> Compiled | None:
    sides = _children(node)
    if sides is None:
        return None
    left, right = sides
    kind = node["value"]
    if kind == "eq":
        return _field_is_literal(node) or (lambda value: _equals(left(value), right(value)))
    if kind == "ne":
        return lambda value: not _equals(left(value), right(value))
    order = _ORDERINGS[kind]

    def ordering(value: Any) -> Any:  # only numbers and strings are ordered; anything else is null
        first, second = left(value), right(value)
        if not (_is_number(first) or isinstance(first, str)) or not (_is_number(second) or isinstance(second, str)):
            return None
        return order(first, second)

    return ordering


def _or(node: Node) -> Compiled | None:
    sides = _children(node)
    if sides is None:
        return None
    left, right = sides

    def either(value: Any) -> Any:
        matched = left(value)
        return right(value) if _is_false(matched) else matched

    return either


def _and(node: Node) -> Compiled | None:
    sides = _children(node)
    if sides is None:
        return None
    left, right = sides

    def both(value: Any) -> Any:
        matched = left(value)
        return matched if _is_false(matched) else right(value)

    return both


def _not(node: Node) -> Compiled | None:
    inner = _children(node)
    if inner is None:
        return None
    operand = inner[0]

    def negation(value: Any) -> bool:
        result = operand(value)
        if _is_number(result) and result == 0:
            return False  # !0 is false: 0 is not falsy in JMESPath
        return not result

    return negation


# -- function calls -----------------------------------------------------------------------------------------

def _function(node: Node) -> Compiled | None:
    name: str = node["value"]
    arguments = _children(node)
    entry = FUNCTION_TABLE.get(name)
    if arguments is None or entry is None or not _arity_fits(entry["signature"], len(arguments)):
        return None  # jmespath raises its own error for an unknown function or a wrong count
    checks = _argument_checks(entry["signature"])
    if checks is None:
        return lambda value: _CALL_FUNCTION(name, [argument(value) for argument in arguments])
    if name == "coalesce" and all(child.get("type") == "field" for child in node["children"]):
        return _coalesce_fields([child["value"] for child in node["children"]])
    literals = [child.get("type") == "literal" for child in node["children"]]
    if not literals[0] and all(literals[1:]):
        constants = tuple(child["value"] for child in node["children"][1:])
        if all(type(constants[i - 1]) in allowed for i, allowed in checks if i > 0):
            return _call_on_first(name, entry["function"], node["children"][0], arguments[0],
                                  allowed=dict(checks).get(0), rest=constants, on_text=_on_text(name, constants))
    return _call_general(name, entry["function"], arguments, checks)


def _arity_fits(signature: list[dict[str, Any]], count: int) -> bool:
    if signature and signature[-1].get("variadic"):
        return count >= len(signature)
    return count == len(signature)


def _argument_checks(signature: list[dict[str, Any]]) -> list[tuple[int, tuple[type, ...]]] | None:
    """(argument index, the Python types that pass) for each checked argument (jmespath checks the first
    len(signature) ones); None when a signature holds a type this module does not check (arrays of a type)."""
    checks = []
    for index, argument in enumerate(signature):
        names: list[str] = argument["types"]
        if not names:
            continue  # any value
        if any(name not in _PYTHON_TYPES for name in names):
            return None
        checks.append((index, tuple(kind for name in names for kind in _PYTHON_TYPES[name])))
    return checks


def _call_on_first(name: str, function: Callable[..., Any], first_node: Node, first: Compiled, *,
                   allowed: tuple[type, ...] | None, rest: tuple[Any, ...],
                   on_text: Callable[[str], Any] | None) -> Compiled:
    """The common shape: a function of one value and literals (`lower(Epost)`, `pad_left(Postnr, `4`, '0')`).
    A plain field as that value is read in place (one call less); a string goes to `on_text` if given."""
    functions = _FUNCTIONS
    if allowed is None:
        return lambda value: function(functions, first(value), *rest)
    text = on_text if on_text is not None and str in allowed else None
    if first_node.get("type") == "field":
        key = first_node["value"]

        def call_on_field(value: Any) -> Any:
            try:
                argument = value.get(key)
            except AttributeError:
                argument = None
            if text is not None and type(argument) is str:
                return text(argument)
            if type(argument) in allowed:
                return function(functions, argument, *rest)
            return _CALL_FUNCTION(name, [argument, *rest])  # raises jmespath's own type error

        return call_on_field

    def call_on_value(value: Any) -> Any:
        argument = first(value)
        if text is not None and type(argument) is str:
            return text(argument)
        if type(argument) in allowed:
            return function(functions, argument, *rest)
        return _CALL_FUNCTION(name, [argument, *rest])

    return call_on_value


def _on_text(name: str, rest: tuple[Any, ...]) -> Callable[[str], Any] | None:
    """What the function does to a string first argument, as one string method (the literals checked
    here, once), or None when the function's own code must run (functions.py is the reference)."""
    if name in _STRING_METHODS and not rest:
        return _STRING_METHODS[name]
    if name == "replace" and len(rest) == 2 and all(type(part) is str for part in rest) and rest[0]:
        return operator.methodcaller("replace", rest[0], rest[1])
    if name == "pad_left" and len(rest) == 2 and _whole(rest[0]) and type(rest[1]) is str and len(rest[1]) == 1:
        return operator.methodcaller("rjust", int(rest[0]), rest[1])
    if name == "substring" and rest and len(rest) <= 2 and all(_whole(part) for part in rest):
        bounds = [int(part) for part in rest]
        return operator.itemgetter(slice(bounds[0], bounds[1] if len(bounds) == 2 else None))
    if name in {"regex_replace", "regex_match"}:
        return _on_text_regex(name, rest)
    return None


def _on_text_regex(name: str, rest: tuple[Any, ...]) -> Callable[[str], Any] | None:
    if not rest or type(rest[0]) is not str:
        return None
    try:
        pattern = re.compile(rest[0])
        if name == "regex_replace":
            if len(rest) != 2 or type(rest[1]) is not str:
                return None
            pattern.sub(rest[1], "")  # a replacement that does not fit fails here, never on a record
            return functools.partial(pattern.sub, rest[1])
    except (re.error, IndexError, RecursionError):
        return None  # the function's own code says why, on each record
    search = pattern.search
    return lambda text: search(text) is not None


def _whole(value: Any) -> bool:
    return type(value) is int or (type(value) is float and value.is_integer())


_STRING_METHODS: dict[str, Callable[[str], str]] = {"lower": str.lower, "upper": str.upper, "trim": str.strip}
# The functions whose step on text gives text (so another step may follow).
_TEXT_TO_TEXT = {"lower", "upper", "trim", "replace", "pad_left", "substring", "regex_replace"}


def _coalesce_fields(keys: list[str]) -> Compiled:
    """coalesce of plain fields: the first that is neither null nor "" (reading a field cannot fail, so
    stopping at the first is the same as jmespath reading them all)."""

    def coalesce(value: Any) -> Any:
        for key in keys:
            try:
                found = value.get(key)
            except AttributeError:
                return None
            if found is not None and found != "":
                return found
        return None

    return coalesce


def _call_general(name: str, function: Callable[..., Any], arguments: list[Compiled],
                  checks: list[tuple[int, tuple[type, ...]]]) -> Compiled:
    functions = _FUNCTIONS

    def call(value: Any) -> Any:
        resolved = [argument(value) for argument in arguments]
        for index, allowed in checks:
            if type(resolved[index]) not in allowed:
                return _CALL_FUNCTION(name, resolved)  # raises jmespath's own type error
        return function(functions, *resolved)

    return call


_BUILDERS: dict[str, Callable[[Node], Compiled | None]] = {
    "field": _field, "subexpression": _chain, "index_expression": _chain, "pipe": _chain, "index": _index,
    "literal": _literal, "current": _current, "identity": _current, "comparator": _comparator,
    "or_expression": _or, "and_expression": _and, "not_expression": _not, "function_expression": _function,
}
