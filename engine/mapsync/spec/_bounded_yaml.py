"""Reading YAML a user wrote, with bounds: a hostile file is refused while its node graph is composed,
before anything grows.

PyYAML's aliases share one node in the graph but are copied once per use when the document is built, so
nine levels of nine aliases ("billion laughs") build 10**9 strings; its composer recurses once per nesting
level, so thousands of `[` end in a RecursionError. Both are counted here as the graph is composed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import yaml

MAX_DEPTH = 64  # nesting levels (the reference mappings use 5); deeper would exhaust the Python stack
MAX_ALIASES = 100  # `*name` uses per file: plenty for anchors and merge keys, too few for an alias bomb
MAX_ALIAS_NODES = 10_000  # nodes that the aliases of one file may add once expanded

Step = str | int


class YamlProblem(Exception):
    """Why a text is not a usable YAML document, and where: 1-based line (when known) and key path."""

    def __init__(self, message: str, line: int | None = None, path: tuple[Step, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.path = path


def read_yaml(text: str, inspect: Callable[[yaml.Node], None]) -> Any:
    """The data of a one-document YAML text; raises YamlProblem. `inspect` sees the node graph (for lines)
    before the data is built: building merges `<<` keys into their mapping nodes in place."""
    fast = _compose_fast(text)
    loader = fast[0] if fast else _python_loader(text)
    root: yaml.Node | None = None
    try:
        root = fast[1] if fast else loader.get_single_node()
        if root is None:
            return None
        inspect(root)
        return loader.construct_document(root)
    except _UnreadableValue as exc:
        raise YamlProblem(exc.message, _line(exc.node.start_mark), _path_to(root, exc.node) or ()) from None
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(f"YAML syntax error: {_syntax_problem(exc)}",
                          _line(exc.problem_mark or exc.context_mark)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()


def _compose_fast(text: str) -> tuple[_Bounded, yaml.Node | None] | None:
    """The loader and node graph composed from libyaml's events (PyYAML's own scanner and parser are most of
    the start-up of `mapsync validate`), or None without libyaml or when the text has any problem: then the
    pure-Python reader reads it again, to say what is wrong in the words and at the lines it always has."""
    if _FastBoundedLoader is None or _LIBYAML_LAXER.search(text) or yaml.reader.Reader.NON_PRINTABLE.search(text):
        return None
    loader = _FastBoundedLoader(text)
    try:
        return loader, loader.get_single_node()
    except (yaml.YAMLError, YamlProblem):
        loader.dispose()
        return None


# libyaml accepts a tab, or a `?` in a flow collection, inside plain scalars where PyYAML refuses them: such
# a text is left to PyYAML, so that what mapsync accepts does not depend on how PyYAML was built.
_LIBYAML_LAXER = re.compile(r"[\t?]")


def _python_loader(text: str) -> _Bounded:
    try:
        # the reader checks every character up front: binary garbage is refused here
        return _BoundedLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1
        raise YamlProblem(f"YAML syntax error: character U+{exc.character:04X} is not allowed in YAML "
                          "(is this a text file?)", line) from None


def _syntax_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.problem and exc.context and exc.context_mark and mark and exc.context_mark.line != mark.line:
        # e.g. an unclosed bracket is noticed lines later: say where it was opened
        problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
    return problem


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


class _Bounded(yaml.composer.Composer, yaml.constructor.SafeConstructor):
    """PyYAML's composer and safe constructor, bounding nesting depth and alias expansion and reporting
    unreadable values at their node; the events come from the parser of the class that mixes this in."""

    # the parser's, annotated only: a method here would hide it
    dispose: Callable[[], None]
    peek_event: Callable[[], yaml.Event]

    def _start_bounds(self) -> None:
        self._path: list[Step] = []  # key path of the node being composed
        self._depth = 0
        self._open_anchors: set[str] = set()  # anchors whose node is still being composed
        self._aliases = 0
        self._alias_nodes = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, height), aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        step = _path_step(parent, index)
        if step is not None:
            self._path.append(step)
        self._depth += 1
        try:
            event = self.peek_event()
            anchor: str | None = getattr(event, "anchor", None)
            if isinstance(event, yaml.AliasEvent):
                self._count_alias(event, anchor)
                return super().compose_node(parent, index)
            if self._depth > MAX_DEPTH:
                self._refuse(f"nested more than {MAX_DEPTH} levels deep", event)
            if anchor is not None:
                self._open_anchors.add(anchor)
            node = super().compose_node(parent, index)
            if anchor is not None:
                self._open_anchors.discard(anchor)
            return node
        finally:
            self._depth -= 1
            if step is not None:
                self._path.pop()

    def _count_alias(self, event: yaml.Event, anchor: str | None) -> None:
        if anchor in self._open_anchors:
            self._refuse(f"alias *{anchor} refers to a node that contains it (a recursive alias)", event)
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            self._refuse(f"more than {MAX_ALIASES} aliases (*name) in one file", event)
        target = self.anchors.get(anchor) if anchor is not None else None
        if target is None:
            return  # PyYAML reports the undefined alias
        nodes, height = self._measure(target)
        self._alias_nodes += nodes
        if self._alias_nodes > MAX_ALIAS_NODES:
            self._refuse(f"aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?)", event)
        if self._depth - 1 + height > MAX_DEPTH:
            self._refuse(f"alias *{anchor} nests the document more than {MAX_DEPTH} levels deep", event)

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        """Node count and height of `node` with its aliases expanded, each node measured once. The recursion
        is bounded: every alias inside `node` was checked against MAX_DEPTH when it was composed."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        measured = [self._measure(child) for child in children]
        size = (1 + sum(n for n, _ in measured), 1 + max((h for _, h in measured), default=0))
        self._sizes[id(node)] = size
        return size

    def _refuse(self, message: str, event: yaml.Event) -> None:
        raise YamlProblem(message, _line(event.start_mark), tuple(self._path))

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A date that does not exist (2024-02-30) or an integer of thousands of digits fails in Python's
        # own constructors with a bare ValueError: report it at its node like every other problem.
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise _UnreadableValue(_unreadable(node, exc), node) from None


class _BoundedLoader(_Bounded, yaml.SafeLoader):
    """The pure-Python reader, scanner and parser: PyYAML's own words for every syntax error."""

    def __init__(self, text: str) -> None:
        yaml.SafeLoader.__init__(self, text)
        self._start_bounds()


_FastBoundedLoader: Callable[[str], _Bounded] | None = None
if yaml.__with_libyaml__:  # PyYAML built without libyaml has no CSafeLoader

    class _LibyamlBounded(_Bounded, yaml.CSafeLoader):
        """libyaml's scanner and parser under the same composer (libyaml's own would bypass the bounds)."""

        def __init__(self, text: str) -> None:
            yaml.CSafeLoader.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            self._start_bounds()

    _FastBoundedLoader = _LibyamlBounded


class _UnreadableValue(Exception):
    """A scalar that YAML accepts but Python cannot turn into a value."""

    def __init__(self, message: str, node: yaml.Node) -> None:
        super().__init__(message)
        self.message = message
        self.node = node


def _unreadable(node: yaml.Node, exc: Exception) -> str:
    text = str(node.value)
    digits = len(text.lstrip("+-").replace("_", ""))
    if node.tag == "tag:yaml.org,2002:int" and digits > sys.get_int_max_str_digits():
        return f"an integer of {digits} digits is too long"
    shown = text if len(text) <= 40 else text[:40] + "..."
    lines = str(exc).strip().splitlines()
    return f"cannot read the value {shown!r}: {lines[0] if lines else type(exc).__name__}"


def _path_step(parent: yaml.Node | None, index: Any) -> Step | None:
    """The key path step of a child being composed: a sequence index or a mapping value's key."""
    if isinstance(parent, yaml.SequenceNode) and isinstance(index, int):
        return index
    if isinstance(parent, yaml.MappingNode) and isinstance(index, yaml.Node):
        return str(index.value) if isinstance(index, yaml.ScalarNode) else "?"
    return None  # the root, or a mapping key


def _path_to(root: yaml.Node | None, wanted: yaml.Node) -> tuple[Step, ...] | None:
    """The key path of `wanted` in the graph under `root` (only looked up to report an error; the graph's
    depth is bounded by then)."""
    if root is wanted:
        return ()
    steps: list[tuple[Step, yaml.Node]] = []
    if isinstance(root, yaml.SequenceNode):
        steps = list(enumerate(root.value))
    elif isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            steps += [(name, key), (name, value)]
    for step, child in steps:
        found = _path_to(child, wanted)
        if found is not None:
            return (step, *found)
    return None
