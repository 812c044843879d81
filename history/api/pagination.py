"""Keyset pagination of records on (created_at, id): every page costs the same, however deep.

DRF's CursorPagination keys on one field and steps over ties with an OFFSET; records of one
batch share their created_at (10,000 of them, for a large batch), so its pages would slow down
inside a batch. Here the cursor holds both columns, and a page is one index range scan.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from config.api.datetimes import as_utc
from history.selectors import records_after

DEFAULT_PAGE_SIZE = 50
ORDERINGS = ("-created_at", "created_at")


class KeysetPagination(BasePagination):
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    ordering_query_param = "ordering"

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list:
        self.request = request
        self.page_size = page_size_from(request.query_params.get(self.page_size_query_param))
        self.ordering = request.query_params.get(self.ordering_query_param) or ORDERINGS[0]
        if self.ordering not in ORDERINGS:
            raise ValidationError({"ordering": f"Choose one of {', '.join(ORDERINGS)}."})
        descending = self.ordering.startswith("-")
        cursor = self._decode(request.query_params.get(self.cursor_query_param))
        backward = cursor is not None and cursor[0] == "b"
        # Reading backward means reading the other way round, then turning the page over.
        ascending = descending == backward
        page = queryset.order_by(*(("created_at", "id") if ascending else ("-created_at", "-id")))
        if cursor is not None:
            page = records_after(page, created_at=cursor[1], record_id=cursor[2], ascending=ascending)
        rows = list(page[: self.page_size + 1])
        more = len(rows) > self.page_size
        rows = rows[: self.page_size]
        if backward:
            rows.reverse()
        self.next_position = self.previous_position = None
        if rows:
            first, last = rows[0], rows[-1]
            if (more and not backward) or backward:
                self.next_position = ("f", last.created_at, last.pk)
            if (more and backward) or (cursor is not None and not backward):
                self.previous_position = ("b", first.created_at, first.pk)
        return rows

    def get_paginated_response(self, data) -> Response:
        return Response(
            {
                "next": self._link(self.next_position),
                "previous": self._link(self.previous_position),
                "ordering": self.ordering,
                "page_size": self.page_size,
                "results": data,
            }
        )

    def _link(self, position) -> str | None:
        if position is None:
            return None
        url = self.request.build_absolute_uri()
        direction, created_at, record_id = position
        raw = f"{direction}|{created_at.isoformat()}|{record_id}|{self.ordering}".encode()
        return replace_query_param(url, self.cursor_query_param, base64.urlsafe_b64encode(raw).decode())

    def _decode(self, encoded: str | None) -> tuple[str, datetime, int] | None:
        if not encoded:
            return None
        try:
            direction, created_at, record_id, ordering = base64.urlsafe_b64decode(encoded.encode()).decode().split("|")
            moment = datetime.fromisoformat(created_at)
            if direction not in ("f", "b") or moment.tzinfo is None:
                raise ValueError(direction)
            position = (direction, as_utc(moment), int(record_id))
        except (ValueError, binascii.Error, UnicodeError):
            raise ValidationError({"cursor": "Invalid cursor: use the next/previous links as given."}) from None
        if ordering != self.ordering:
            raise ValidationError({"cursor": "This cursor belongs to another ordering."})
        return position

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": self.cursor_query_param,
                "in": "query",
                "required": False,
                "description": "Opaque position from a `next` or `previous` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "in": "query",
                "required": False,
                "description": f"Records per page, 1 to {settings.HISTORY_PAGE_SIZE_MAX} (larger values are "
                f"served as {settings.HISTORY_PAGE_SIZE_MAX}); default {DEFAULT_PAGE_SIZE}.",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.ordering_query_param,
                "in": "query",
                "required": False,
                "description": "`-created_at` (newest first, the default) or `created_at`.",
                "schema": {"type": "string", "enum": list(ORDERINGS)},
            },
        ]

    def get_paginated_response_schema(self, schema: dict) -> dict:
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["next", "previous", "ordering", "page_size", "results"],
            "properties": {
                "next": link,
                "previous": link,
                "ordering": {"type": "string"},
                "page_size": {"type": "integer"},
                "results": schema,
            },
        }


def page_size_from(raw: str | None) -> int:
    """The page size asked for: 400 if not a positive integer, clamped to the maximum."""
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise ValidationError({"page_size": "Must be a whole number."}) from None
    if size < 1:
        raise ValidationError({"page_size": "Must be at least 1."})
    return min(size, settings.HISTORY_PAGE_SIZE_MAX)
