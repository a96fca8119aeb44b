"""The functions a mapping expression may call beyond JMESPath's own: text clean-up, regular expressions,
and fallbacks (`lower(Navn)`, `regex_replace(Orgnr, '[^0-9]', '')`, `coalesce(Mobil, Telefon)`).

They are added through jmespath's extension point (a `Functions` subclass in an `Options`); every place
that evaluates an expression passes `OPTIONS`. The rules they share:

- null in gives null out: a text function given a null argument returns null, never raises;
- a number given where text is wanted is written as JSON writes it (`42`, `4.5`; `10.0` as `10`);
- a boolean, array or object given where text is wanted is an error naming the function;
- regular expressions use Python's syntax and are compiled once.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.functions import Functions, signature

_TEXT = ["string", "number", "null"]
_NUMBER = ["number", "null"]
_ANY: list[str] = []  # jmespath: an empty list of types accepts any value

# Functions whose last argument may be left out (jmespath signatures know "at least", not "at most").
MOST_ARGUMENTS = {"substring": 3}
# Arguments that are regular expressions: (function, argument index) -> index of its replacement, if any.
REGEX_ARGUMENTS = {("regex_match", 1): None, ("regex_replace", 1): 2}


class FunctionError(JMESPathError):
    """A mapping function given a value it cannot work with (a bad pattern, a pad of two characters)."""


class MappingFunctions(Functions):
    """JMESPath's built-in functions plus mapsync's (the metaclass collects every `_func_` method)."""

    @signature({"types": _TEXT})
    def _func_lower(self, s: Any) -> str | None:
        return None if s is None else _text("lower", s).lower()

    @signature({"types": _TEXT})
    def _func_upper(self, s: Any) -> str | None:
        return None if s is None else _text("upper", s).upper()

    @signature({"types": _TEXT})
    def _func_trim(self, s: Any) -> str | None:
        return None if s is None else _text("trim", s).strip()

    @signature({"types": _TEXT}, {"types": _TEXT}, {"types": _TEXT})
    def _func_replace(self, s: Any, old: Any, new: Any) -> str | None:
        if s is None or old is None or new is None:
            return None
        text, old_text = _text("replace", s), _text("replace", old)
        return text.replace(old_text, _text("replace", new)) if old_text else text  # "" would go everywhere

    @signature({"types": _TEXT}, {"types": ["string", "null"]}, {"types": _TEXT})
    def _func_regex_replace(self, s: Any, pattern: str | None, replacement: Any) -> str | None:
        if s is None or pattern is None or replacement is None:
            return None
        try:
            return regex("regex_replace", pattern).sub(_text("regex_replace", replacement), _text("regex_replace", s))
        except (re.error, IndexError) as exc:
            raise FunctionError(f"regex_replace(): replacement {_raw(replacement)} does not fit the pattern "
                                f"{_raw(pattern)}: {exc}") from None

    @signature({"types": _TEXT}, {"types": ["string", "null"]})
    def _func_regex_match(self, s: Any, pattern: str | None) -> bool | None:
        if s is None or pattern is None:
            return None
        return regex("regex_match", pattern).search(_text("regex_match", s)) is not None

    @signature({"types": _TEXT}, {"types": _TEXT})
    def _func_split(self, s: Any, separator: Any) -> list[str] | None:
        if s is None or separator is None:
            return None
        text, sep = _text("split", s), _text("split", separator)
        return text.split(sep) if sep else list(text)

    @signature({"types": _TEXT}, {"types": _NUMBER, "variadic": True})
    def _func_substring(self, s: Any, start: Any, *rest: Any) -> str | None:
        if len(rest) > 1:
            raise FunctionError(f"substring() takes 2 or 3 arguments, not {2 + len(rest)}")
        end = rest[0] if rest else None
        if s is None or start is None or (rest and end is None):
            return None
        return _text("substring", s)[_index("substring", start):_index("substring", end) if rest else None]

    @signature({"types": _TEXT}, {"types": _NUMBER}, {"types": ["string", "null"]})
    def _func_pad_left(self, s: Any, width: Any, char: str | None) -> str | None:
        if s is None or width is None or char is None:
            return None
        if len(char) != 1:
            raise FunctionError(f"pad_left(): the pad must be one character, not {_raw(char)}")
        return _text("pad_left", s).rjust(_index("pad_left", width), char)

    @signature({"types": _TEXT}, {"types": _TEXT, "variadic": True})
    def _func_concat(self, *parts: Any) -> str | None:
        present = [_text("concat", part) for part in parts if part is not None]
        return "".join(present) if present else None

    @signature({"types": _ANY}, {"types": _ANY, "variadic": True})
    def _func_coalesce(self, *values: Any) -> Any:
        return next((value for value in values if value is not None and value != ""), None)


OPTIONS = jmespath.Options(custom_functions=MappingFunctions())
# name -> {"function", "signature"}: JMESPath's built-ins and the functions above, for `validate`.
FUNCTION_TABLE: dict[str, Any] = MappingFunctions.FUNCTION_TABLE


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def regex(function: str, pattern: str) -> re.Pattern[str]:
    """The compiled pattern (compiled once per distinct pattern), or a FunctionError saying why not."""
    try:
        return _compiled(pattern)
    except re.error as exc:
        raise FunctionError(f"{function}(): regular expression {_raw(pattern)} does not compile: {exc}") from None
    except RecursionError:
        raise FunctionError(f"{function}(): regular expression {_raw(pattern)} is nested too deeply") from None


def _text(function: str, value: Any) -> str:
    """A string argument as text: a number as JSON writes it; anything else is an error."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is int:
        return str(value)
    if kind is float:
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    raise FunctionError(f"{function}() takes text or a number, not {_json_type(value)} {_short(value)}")


def _index(function: str, value: Any) -> int:
    """A position or width: a whole number (4 or 4.0)."""
    if type(value) is int or (type(value) is float and value.is_integer()):
        return int(value)
    raise FunctionError(f"{function}() takes a whole number there, not {_short(value)}")


def _raw(text: Any) -> str:
    """Text quoted as a JMESPath raw string, the way it is written in an expression."""
    return "'" + str(text).replace("'", "\\'") + "'"


def _json_type(value: Any) -> str:
    return {"bool": "a boolean", "list": "an array", "dict": "an object"}.get(type(value).__name__, "a value")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def literal_problem(function: str, arguments: list[dict[str, Any]]) -> str | None:
    """What `validate` can tell of a call's literal arguments before any record: a regular expression
    (and its replacement) that does not compile, a pad that is not one character."""
    for (name, index), replacement_at in REGEX_ARGUMENTS.items():
        pattern = _literal(arguments, index) if name == function else None
        if not isinstance(pattern, str):
            continue
        try:
            compiled = regex(function, pattern)
        except FunctionError as exc:
            return str(exc)
        replacement = _literal(arguments, replacement_at) if replacement_at is not None else None
        if isinstance(replacement, str):
            try:
                compiled.sub(replacement, "")
            except (re.error, IndexError) as exc:
                return f"{function}(): replacement {_raw(replacement)} does not fit the pattern {_raw(pattern)}: {exc}"
    pad = _literal(arguments, 2) if function == "pad_left" else None
    if isinstance(pad, str) and len(pad) != 1:
        return f"pad_left(): the pad must be one character, not {_raw(pad)}"
    return None


def _literal(arguments: list[dict[str, Any]], index: int) -> Any:
    """The value of argument `index` when it is a literal ('raw' or `json`), else None."""
    if index >= len(arguments) or arguments[index].get("type") != "literal":
        return None
    return arguments[index].get("value")


@dataclass(frozen=True)
class FunctionDoc:
    """One function in docs/mapping-reference.md; its example is run by the tests."""

    call: str
    summary: str
    expression: str
    record: dict[str, Any]
    result: Any


FUNCTION_DOCS = (
    FunctionDoc("lower(s)", "`s` in lower case.", "lower(Epost)", {"Epost": "Post@Firma.NO"}, "post@firma.no"),
    FunctionDoc("upper(s)", "`s` in upper case.", "upper(Landkode)", {"Landkode": "no"}, "NO"),
    FunctionDoc("trim(s)", "`s` without white space at either end.", "trim(Navn)", {"Navn": "  Salg Oslo "},
                "Salg Oslo"),
    FunctionDoc("replace(s, old, new)", "`s` with every `old` replaced by `new` (an empty `old` changes nothing).",
                "replace(Telefon, ' ', '')", {"Telefon": "22 33 44 55"}, "22334455"),
    FunctionDoc("regex_replace(s, pattern, replacement)",
                "`s` with every match of the regular expression replaced; `\\1` or `\\g<name>` in the "
                "replacement insert a group.",
                "regex_replace(Orgnr, '[^0-9]', '')", {"Orgnr": "NO 974 760 673 MVA"}, "974760673"),
    FunctionDoc("regex_match(s, pattern)",
                "true when the regular expression matches somewhere in `s` (anchor it with `^...$` to "
                "match the whole); null when `s` is null.",
                "regex_match(Postnr, '^[0-9]{4}$')", {"Postnr": "0154"}, True),
    FunctionDoc("split(s, separator)", "the parts of `s` between separators, as an array (an empty "
                "separator splits into characters).", "split(Navn, ' ')[0]", {"Navn": "Kari Nordmann"}, "Kari"),
    FunctionDoc("substring(s, start, end)",
                "characters `start` up to (not including) `end`, counted from 0; `end` may be left out "
                "(to the end); a negative position counts from the end.",
                "substring(Kontonr, `0`, `4`)", {"Kontonr": "12345678903"}, "1234"),
    FunctionDoc("pad_left(s, width, char)", "`s` padded on the left with `char` (one character) to `width`.",
                "pad_left(Kundenr, `6`, '0')", {"Kundenr": 42}, "000042"),
    FunctionDoc("concat(a, b, ...)", "the arguments joined as text; null ones are skipped (all null: null).",
                "concat(Fornavn, ' ', Etternavn)", {"Fornavn": "Kari", "Etternavn": "Nordmann"}, "Kari Nordmann"),
    FunctionDoc("coalesce(a, b, ...)", "the first argument that is neither null nor \"\" (none: null); any "
                "type.", "coalesce(Mobil, Telefon)", {"Mobil": "", "Telefon": "22334455"}, "22334455"),
)


def functions_reference() -> str:
    """The "Functions" section of docs/mapping-reference.md (its generator calls this)."""
    rows = "".join(f"| `{doc.call}` | {doc.summary} | `` {doc.expression} `` on `{json.dumps(doc.record)}` | "
                   f"`{json.dumps(doc.result, ensure_ascii=False)}` |\n" for doc in FUNCTION_DOCS)
    return _REFERENCE_INTRO + "| function | gives | example | result |\n|---|---|---|---|\n" + rows + _REFERENCE_END


_REFERENCE_INTRO = """\
## Functions

Every expression (a row's `source`, its `reverse`, a dataflow's `where` and `target_where`) may call
JMESPath's own functions (`join`, `length`, `to_string`, ... see [jmespath.org](https://jmespath.org/specification.html#built-in-functions))
and these:

- **Null in, null out.** A function given a null argument returns null, never fails (`concat` skips null
  parts, `coalesce` passes over them).
- **Numbers are text too.** A function that takes text takes a number as JSON writes it (`42`, `4.5`;
  `10.0` as `10`). A boolean, array or object there fails the record.
- **Literals.** Text in single quotes (`'0'`, a JMESPath raw string), numbers in backticks (`` `6` ``).
- **Regular expressions** use [Python's syntax](https://docs.python.org/3/library/re.html) and are compiled
  once. In a double-quoted YAML string a backslash is doubled (`"regex_match(Postnr, '^\\\\d{4}$')"`);
  `[0-9]` needs none.

"""

_REFERENCE_END = """
Functions nest, and a computed row still says how to go back:

```yaml
- source: "lower(trim(Epost))"                                 # forward: cleaned up
  target: email
  type: string
  reverse: {Epost: email}                                      # back: as it is
- source: "regex_replace(Organisasjonsnummer, '[^0-9]', '')"   # "NO 974 760 673 MVA" -> "974760673"
  target: organization_number
  type: string
  reverse: {Organisasjonsnummer: organization_number}
- source: "pad_left(Postnr, `4`, '0')"                         # 150 -> "0150"
  target: postal_address.postal_code
  type: string
  reverse: {Postnr: postal_address.postal_code}
- source: "coalesce(Mobil, Telefon)"                           # the mobile, else the landline
  target: phone
  type: string
  reverse: {Mobil: phone}
```

`validate` reports at the row's file:line an unknown function, a wrong number of arguments, a regular
expression (or a `regex_replace` replacement) written in the expression that does not compile, and a
`pad_left` pad that is not one character:

```console
$ mapsync validate
mappings/kunde-customer.yaml:17: properties[1].source: regex_replace(): regular expression '[0-9' does not compile: unterminated character set at position 0
1 problem found
```

A function that fails on a record's values (a pattern read from the record that does not compile, text
where a number was expected) fails that record, in `plan`, `apply` and `mapsync test`; the message names
the row's file:line, the expression and the record:

```console
$ mapsync plan --dataflow kunde-customer
kunde-customer: Tidsbanken Kunde -> Custompms Customer
  x fail Kunde K1042 "Fjordbygg AS"
      cannot map it: mappings/kunde-customer.yaml:28: cannot evaluate 'lower(Epost)' on Kunde record 'K1042': lower() cannot take an array there (it takes string or number or null)
```
"""  # noqa: E501 (command output, as printed)
