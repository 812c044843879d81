"""Admin pieces shared by the apps."""

from __future__ import annotations

import logging

from django.contrib import admin, messages
from django.db import DataError
from django.shortcuts import redirect
from django.urls import reverse

logger = logging.getLogger(__name__)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the service writes and operators only look at: no add, change or delete in the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AdminUnreadableAddressMiddleware:
    """A hand-edited admin address holding a value the database cannot read is sent back to
    the list or the index with a message, not answered 500.

    The admin builds its queries from the address (``?created_at__gte=...``, ``/<id>/change/``),
    and the database refuses some values Django lets through: a NUL byte in a text id, a UTC
    offset beyond ±15:59, a year past what an integer holds. The refusal comes from queries
    the admin runs in its views and templates, so it is caught here rather than in each admin
    class. Django itself redirects the same way for a filter it cannot parse.

    Only where the address holds something to drop: a list with a query string, or an object
    page. Anywhere else the error is not the address's, and stays a 500 for the error log;
    redirecting there could also send the page back to itself.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        match = request.resolver_match
        unreadable = isinstance(exception, DataError | OverflowError)
        if not (unreadable and request.method in ("GET", "HEAD") and match and match.namespace == "admin"):
            return None
        if (match.url_name or "").endswith("_changelist") and request.GET:
            back_to = request.path  # the same list, without its query string
        elif "object_id" in match.kwargs:
            back_to = reverse("admin:index")
        else:
            return None
        logger.warning("admin address refused by the database: %s", request.get_full_path(), exc_info=exception)
        reason = str(exception).splitlines()[0]  # the database's first line, not the SQL it quotes
        messages.error(request, f"The address held a value the database cannot read ({reason}); it was left out.")
        return redirect(back_to)
