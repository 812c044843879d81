"""Handing memory back to the operating system after requests with large bodies.

A 10,000-row batch parses megabytes of JSON and builds hundreds of thousands of objects. Python
frees them when the request ends, but glibc's allocator keeps most of the freed pages for
reuse, so a web worker that has served a few batches stays ~70 MB above its size at rest.
``malloc_trim`` returns the free pages: measured in-process after one batch of each model,
390 -> 346 MB for ~5 ms of CPU (bench/README.md). The rest is held by Python's own small-object
arenas, which are only returned when entirely empty.

Done as a WSGI wrapper, not in a view or middleware: the pages are free only once the server has
sent the response, which the view's answer still holds until then. No maintained package does
this; it is one libc call.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def _libc_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc (macOS, musl): its allocator does its own returning


_MALLOC_TRIM = _libc_malloc_trim()


def release_free_memory() -> bool:
    """Return the allocator's free pages to the operating system; False where that is unsupported."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class ReleaseMemoryAfterLargeRequests:
    """WSGI middleware: after a request whose body is at least ``min_body_bytes``, once its
    response has been sent (the server calls ``close``), hands free memory back."""

    def __init__(self, application: Callable, min_body_bytes: int) -> None:
        self.application = application
        self.min_body_bytes = min_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        response = self.application(environ, start_response)
        if _content_length(environ) < self.min_body_bytes:
            return response  # the common case, untouched: single predictions, pages, reads
        return _ReleasingOnClose(response)


def _content_length(environ: dict[str, Any]) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class _ReleasingOnClose:
    """The response iterable as it was, with the release after its own ``close`` (PEP 3333)."""

    def __init__(self, response: Iterable[bytes]) -> None:
        self.response = response

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.response)

    def close(self) -> None:
        try:
            close = getattr(self.response, "close", None)
            if close is not None:
                close()
        finally:
            self.response = ()  # drop the body before trimming, so its pages are free too
            release_free_memory()
