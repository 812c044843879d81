"""Hand-edited admin addresses with values the database refuses lead back to a page, never a 500."""

from __future__ import annotations

import pytest
from django.contrib.messages.storage.fallback import FallbackStorage
from django.db import DataError
from django.test import RequestFactory
from django.urls import resolve

from config.admin import AdminUnreadableAddressMiddleware

# Committed transactions, as in production: a refused query inside a test's own transaction
# would abort it for the redirect that follows.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "address",
    [
        # Valid ISO 8601 and valid for Python; PostgreSQL refuses UTC offsets past ±15:59.
        "/admin/history/predictionrecord/?created_at__gte=2026-01-01T00:00:00%2B20:00",
        "/admin/predictions/bulkjob/?created_at__year=99999999999",  # past any integer column
        "/admin/accounts/apikey/%00/change/",  # PostgreSQL text holds no NUL byte
        "/admin/scheduling/beatlease/%00/change/",
    ],
)
def test_an_unreadable_value_in_the_address_leads_back_to_a_page(admin_client, address):
    response = admin_client.get(address, follow=True)

    assert response.status_code == 200
    assert b"<title>" in response.content  # an admin page, not an error body


def test_the_redirect_says_what_was_left_out_and_shows_the_list(admin_client, settings):
    address = "/admin/history/predictionrecord/?created_at__gte=2026-01-01T00:00:00%2B20:00"

    response = admin_client.get(address, follow=True)

    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("SQLite stores any UTC offset: the filter simply applies")
    assert response.redirect_chain == [("/admin/history/predictionrecord/", 302)]
    assert "the database cannot read (time zone displacement out of range" in response.content.decode()


def _refused(path: str, **match_kwargs):
    """What the middleware does with a database refusal raised while serving ``path``."""
    request = RequestFactory().get(path)
    request.resolver_match = resolve(request.path)
    request.resolver_match.kwargs.update(match_kwargs)
    request.session = {}
    request._messages = FallbackStorage(request)
    middleware = AdminUnreadableAddressMiddleware(lambda request: None)
    return middleware.process_exception(request, DataError("value out of range\nLINE 1: SELECT ..."))


def test_only_an_address_with_something_to_drop_is_redirected():
    from_filtered_list = _refused("/admin/history/predictionrecord/?created_at__gte=x")
    from_object_page = _refused("/admin/accounts/apikey/x/change/")

    assert from_filtered_list.status_code == 302 and from_filtered_list.url == "/admin/history/predictionrecord/"
    assert from_object_page.status_code == 302 and from_object_page.url == "/admin/"
    # Nothing in the address to drop: the error is not the address's, and a redirect to the
    # same page would loop. It stays a 500, in the error log.
    assert _refused("/admin/history/predictionrecord/") is None
    assert _refused("/admin/") is None
    assert _refused("/api/history/predictions?created_after=x") is None
