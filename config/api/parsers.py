from __future__ import annotations

import json

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding

from config.api.exceptions import PayloadTooLarge


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, hardened.

    - NaN and Infinity are refused (they are not JSON, and no model accepts them);
    - deeply nested documents are a 400: Python's parser raises RecursionError, which stock DRF
      lets through as a 500;
    - the body is read with a bound, so a request that understates its Content-Length still
      cannot make the process read more than the limit.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = get_encoding(parser_context)
        limit = settings.MAX_REQUEST_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body is over the limit of {limit} bytes.")
        if encoding.lower().replace("-", "") == "utf8":
            try:
                # orjson is ~5x faster on 10,000-row batches. Whatever it refuses goes on to
                # the standard parser below, which accepts what it may (integers beyond 64
                # bits) and words the error for the client.
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            raise ParseError(f"Request body is not valid {encoding} text.") from None
        try:
            return json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError("JSON is nested too deeply.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error: {exc}") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON; send a number or null")
