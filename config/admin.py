"""Admin pieces shared by the apps."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import DataError
from django.shortcuts import redirect


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
    the list with a message, not answered 500.

    The admin builds its queries from the address (``?created_at__gte=...``, ``/<id>/change/``),
    and the database refuses some values Django lets through: a NUL byte in a text id, a UTC
    offset beyond ±15:59, a year past what an integer holds. The refusal surfaces only when
    the page renders, after the view has returned, hence an exception hook rather than a check
    in each admin class. Django itself redirects the same way for a filter it cannot parse.
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
        reason = str(exception).splitlines()[0]  # the database's first line, not the SQL it quotes
        messages.error(request, f"The address held a value the database cannot read ({reason}); it was left out.")
        # The list's address without its query string holds no value; other pages lead back to the index.
        return redirect(request.path if match.url_name.endswith("_changelist") else "admin:index")
