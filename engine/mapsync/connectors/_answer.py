"""The limits on an answer: its deadline, its size after decompression, and the depth of its JSON.

A hostile or broken server cannot hang a run or exhaust its memory: the answer is decoded here, a
bounded step at a time, so that a small gzip answer inflating a thousandfold is caught before it grows.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from itertools import chain, compress
from typing import Any

import httpx

from mapsync.errors import ConnectorError

INFLATE_STEP = 64 * 1024  # decoded bytes produced at a time, so that a gzip bomb is caught before it grows
# Only encodings decoded here under the size cap; httpx would otherwise also offer br/zstd when installed.
ACCEPT_ENCODING = "gzip, deflate"
# Deeper answers are refused: the parser would survive a few hundred levels, but the recursive code that
# handles records afterwards (copies, JMESPath, the store's encoder) might not. Records nest a few levels.
MAX_JSON_DEPTH = 64


class DeadlineExceeded(httpx.TimeoutException):
    """The answer did not finish within the request's deadline: retried like any other timeout."""


_BODY_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


def detached(streamed: httpx.Response, body: bytes) -> httpx.Response:
    """The streamed response, closed, now holding the decoded body, with httpx's response <-> stream
    reference cycle broken.

    Left alone, every page's body waits for the cyclic garbage collector, and a long listing's
    memory grows with the number of pages instead of staying at about one page. Reusing the response
    (rather than building a second one) saves most of the per-request cost of this step.
    """
    streamed.stream = httpx.ByteStream(b"")  # the bound stream pointed back at the response: the cycle
    # The body is decoded already: the encoding and length headers no longer describe it.
    headers = streamed.headers
    present = headers.keys()  # lower-cased; each `in headers` would decode every header again
    for name in _BODY_HEADERS:
        if name in present:
            del headers[name]
    # What Response.read() would store; tests/connectors/test_answer.py pins that `.content` answers it.
    streamed._content = body
    return streamed


class Decoder:
    """An answer without Content-Encoding: the bytes as they come."""

    def decode(self, data: bytes) -> Iterator[bytes]:
        yield data

    def flush(self) -> bytes:
        return b""


class Inflater(Decoder):
    """gzip or deflate, inflated at most INFLATE_STEP bytes at a time, so the size cap stops a bomb early."""

    def __init__(self, encoding: str, error: Callable[[str], ConnectorError]) -> None:
        deflate = encoding == "deflate"
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if deflate else zlib.MAX_WBITS | 16)
        # "deflate" is often sent raw, without the zlib header the standard asks for: the first bytes tell.
        self._may_be_raw = deflate
        self._error = error

    def decode(self, data: bytes) -> Iterator[bytes]:
        try:
            yield self._inflate(data)
            while self._zlib.unconsumed_tail:
                yield self._zlib.decompress(self._zlib.unconsumed_tail, INFLATE_STEP)
        except zlib.error as exc:
            raise self._error(f"the answer's compressed body is broken ({exc})") from exc

    def _inflate(self, data: bytes) -> bytes:
        if self._may_be_raw:
            self._may_be_raw = False
            try:
                return self._zlib.decompress(data, INFLATE_STEP)
            except zlib.error:
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._zlib.decompress(data, INFLATE_STEP)

    def flush(self) -> bytes:
        try:
            return self._zlib.flush()
        except zlib.error as exc:
            raise self._error(f"the answer's compressed body is broken ({exc})") from exc


def nested_deeper_than(value: Any, limit: int, text: bytes | None = None) -> bool:
    """Whether arrays and objects nest more than `limit` levels; iterative, so it cannot overflow itself.

    `text`, the JSON the value was parsed from, lets most answers skip the walk: nesting cannot be
    deeper than the count of `{` and `[` in it (brackets inside strings only raise the count).
    """
    if text is not None and text.count(b"{") + text.count(b"[") <= limit:
        return False
    # Level by level, each level's containers picked out by C-level iteration: a page of records is mostly
    # scalars, and a walk calling Python code per value cost as much as parsing the page.
    level = [value] if _is_container(type(value)) else []
    depth = 1
    while level:
        if depth > limit:
            return True
        children = list(chain.from_iterable(item.values() if type(item) is dict else item for item in level))
        level = list(compress(children, map(_is_container, map(type, children))))
        depth += 1
    return False


_is_container = frozenset((dict, list)).__contains__  # parsed JSON holds exactly these two container types
