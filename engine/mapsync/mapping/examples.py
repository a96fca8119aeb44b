"""Running a mapping's examples forward and backward (`mapsync test`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mapsync.errors import MappingError
from mapsync.mapping.mapper import DictLinks, Mapper
from mapsync.spec.model import DataflowSpec, Example, Workspace


@dataclass(frozen=True)
class ExampleResult:
    dataflow: str
    example: str
    direction: str  # "forward" or "backward"
    file: str
    line: int
    expected: Any
    actual: Any
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and self.expected == self.actual

    def diff(self) -> str:
        if self.error:
            return self.error
        import difflib  # only a failing example needs it

        want = _pretty(self.expected).splitlines()
        got = _pretty(self.actual).splitlines()
        return "\n".join(difflib.unified_diff(want, got, "expected", "actual", lineterm=""))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def run_examples(workspace: Workspace) -> Iterator[ExampleResult]:
    for spec in workspace.dataflows.values():
        mapper = Mapper(spec)
        for example in spec.examples:
            if example.direction in {"both", "forward"}:
                yield _forward(spec, mapper, example)
            if example.direction in {"both", "reverse"}:
                yield _backward(spec, mapper, example)


def _forward(spec: DataflowSpec, mapper: Mapper, example: Example) -> ExampleResult:
    try:
        # What a create in the target writes: a `direction: reverse` row is not sent.
        actual: Any = mapper.create_record(mapper.project_source(example.source, DictLinks(example.links)))
    except MappingError as exc:
        return _result(spec, example, "forward", example.target, None, error=f"mapping failed: {exc}")
    return _result(spec, example, "forward", example.target, actual)


def _backward(spec: DataflowSpec, mapper: Mapper, example: Example) -> ExampleResult:
    try:
        # What a create in the source writes: a `direction: forward` row is not sent.
        actual = mapper.create_back_body(example.target, DictLinks(example.links))
    except MappingError as exc:
        return _result(spec, example, "backward", example.source, None, error=f"mapping failed: {exc}")
    # Only the fields that rows write back are compared: the example's source may hold more (Id).
    expected = {k: v for k, v in example.source.items() if k in actual}
    missing = {k: None for k in actual if k not in example.source}
    return _result(spec, example, "backward", {**expected, **missing}, actual)


def _result(spec: DataflowSpec, example: Example, direction: str, expected: Any, actual: Any, *,
            error: str = "") -> ExampleResult:
    return ExampleResult(spec.name, example.name, direction, spec.file, example.line, expected, actual, error)
