"""The records listing, detail and export: filters, ordering, keyset pages, limits, roles."""

from __future__ import annotations

import base64
import csv
import io
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest

from history.services import OutcomeItem, outcomes_record

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "/api/history/predictions"


@pytest.fixture
def history(make_version, record):
    """Churn v1 and v2 and pricing v1 records at known times, sources, entities and scores."""
    churn_v1, churn_v2, pricing = make_version("churn", 1), make_version("churn", 2), make_version("pricing", 1)
    ids = {
        "old": record(churn_v1, T0, [0.1, 0.2, 0.3], entity_ids=["client-1", "client-2", "client-3"]),
        "batch": record(churn_v2, T0 + timedelta(hours=1), [0.5] * 60, source="batch", correlation_id="batch-call"),
        "bulk": record(churn_v2, T0 + timedelta(hours=2), [0.9], source="bulk", bulk_job_id=uuid.UUID(int=7)),
        "scheduled": record(churn_v1, T0 + timedelta(hours=3), [0.7], source="scheduled", scheduled_execution_id=42),
        "pricing": record(pricing, T0 + timedelta(hours=4), [1500.0, 2500.0]),
    }
    return ids


def listed(client, caller, **params) -> dict:
    response = client.get(URL, params, **caller.headers)
    assert response.status_code == 200, response.json()
    return response.json()


def ids_of(page: dict) -> list[int]:
    return [row["id"] for row in page["results"]]


def test_newest_first_with_model_version_and_outcome(client, viewer, history):
    outcomes_record(slug="churn", items=[OutcomeItem(prediction_id=history["bulk"][0], value=1)])

    page = listed(client, viewer, page_size=3)

    newest = page["results"][0]
    assert newest["id"] == history["pricing"][1] and newest["model"] == "pricing" and newest["version"] == 1
    bulk = next(row for row in listed(client, viewer, model="churn", source="bulk")["results"])
    assert bulk["outcome"]["value"] == 1.0 and bulk["outcome"]["error"] == pytest.approx(0.9 - 1)
    assert bulk["bulk_job_id"] == str(uuid.UUID(int=7)) and bulk["features"] == {"contract_type": "annual"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model": "pricing"}, "pricing"),
        ({"model": "churn", "version": 1}, "old+scheduled"),
        ({"source": "batch"}, "batch"),
        ({"entity_id": "client-2"}, "old[1]"),
        ({"correlation_id": "batch-call"}, "batch"),
        ({"score_min": 0.6, "score_max": 1.0}, "bulk+scheduled"),
        ({"scheduled_execution_id": 42}, "scheduled"),
        ({"bulk_job_id": str(uuid.UUID(int=7))}, "bulk"),
        (
            {
                "created_after": (T0 + timedelta(hours=2)).isoformat(),
                "created_before": (T0 + timedelta(hours=4)).isoformat(),
            },
            "bulk+scheduled",
        ),
        (  # the same instants at +20:00, an offset PostgreSQL itself would refuse
            {
                "created_after": (T0 + timedelta(hours=2)).astimezone(timezone(timedelta(hours=20))).isoformat(),
                "created_before": (T0 + timedelta(hours=4)).astimezone(timezone(timedelta(hours=20))).isoformat(),
            },
            "bulk+scheduled",
        ),
    ],
)
def test_each_filter_selects_exactly_its_records(client, viewer, history, params, expected):
    wanted = set()
    for part in expected.split("+"):
        name, _, index = part.partition("[")
        wanted |= {history[name][int(index[:-1])]} if index else set(history[name])

    page = listed(client, viewer, page_size=1000, **params)

    assert set(ids_of(page)) == wanted


def test_has_outcome_filter(client, viewer, history):
    outcomes_record(slug="churn", items=[OutcomeItem(prediction_id=history["old"][0], value=0)])

    assert ids_of(listed(client, viewer, has_outcome="true")) == [history["old"][0]]
    assert history["old"][0] not in ids_of(listed(client, viewer, has_outcome="false", page_size=1000))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"model": "nope"}, "model"),
        ({"version": 1}, "version"),  # a version number means nothing without the model
        ({"source": "fax"}, "source"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "0001-01-01T00:00:00+20:00"}, "created_after"),  # year 0 in UTC
        ({"score_min": "NaN"}, "score_min"),
        ({"score_min": "1e400"}, "score_min"),
        ({"score_min": 2, "score_max": 1}, "score_max"),
        ({"scheduled_execution_id": -1}, "scheduled_execution_id"),
        ({"scheduled_execution_id": 10**30}, "scheduled_execution_id"),
        ({"bulk_job_id": "not-a-uuid"}, "bulk_job_id"),
        ({"ordering": "main_score"}, "ordering"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": -5}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"cursor": "garbage!"}, "cursor"),
    ],
)
def test_bad_parameters_are_a_400_in_the_error_format(client, viewer, history, params, field):
    response = client.get(URL, params, **viewer.headers)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error" and field in body["details"]


def test_a_huge_page_size_is_clamped_to_the_maximum(client, viewer, history, settings):
    settings.HISTORY_PAGE_SIZE_MAX = 5

    page = listed(client, viewer, page_size=10**12)

    assert page["page_size"] == 5 and len(page["results"]) == 5 and page["next"]


@pytest.mark.parametrize("ordering", ["-created_at", "created_at"])
def test_cursor_pages_walk_every_record_once_even_inside_a_batch(client, viewer, history, ordering):
    # 60 records of one batch share created_at: pages must split the tie by id, not skip or repeat.
    every = sorted(set().union(*map(set, history.values())))
    seen, pages = [], []
    url, params = URL, {"page_size": 7, "ordering": ordering}
    while url:
        response = client.get(url, params, **viewer.headers)
        assert response.status_code == 200
        page = response.json()
        pages.append(page)
        seen += ids_of(page)
        url, params = page["next"], {}

    assert sorted(seen) == every and len(seen) == len(every)
    created = [row["created_at"] for page in pages for row in page["results"]]
    assert created == sorted(created, reverse=ordering.startswith("-"))
    # Going back from the last page gives the page before it, in the same order.
    back = client.get(pages[-1]["previous"], **viewer.headers).json()
    assert ids_of(back) == ids_of(pages[-2])


def test_a_cursor_from_another_ordering_is_refused(client, viewer, history):
    page = listed(client, viewer, page_size=2)
    cursor = page["next"].split("cursor=")[1].split("&")[0]

    response = client.get(URL, {"cursor": cursor, "ordering": "created_at"}, **viewer.headers)

    assert response.status_code == 400 and "cursor" in response.json()["details"]


def test_a_cursor_whose_time_is_written_at_another_offset_reads_the_same_page(client, viewer, history):
    # Cursors are opaque but not signed: one rewritten by hand must give a page or a 400, never a 500.
    page = listed(client, viewer, page_size=2)
    cursor = urllib.parse.parse_qs(urllib.parse.urlparse(page["next"]).query)["cursor"][0]
    direction, created_at, record_id, ordering = base64.urlsafe_b64decode(cursor).decode().split("|")
    far_east = datetime.fromisoformat(created_at).astimezone(timezone(timedelta(hours=20))).isoformat()
    rewritten = base64.urlsafe_b64encode("|".join([direction, far_east, record_id, ordering]).encode()).decode()

    assert ids_of(listed(client, viewer, cursor=rewritten, page_size=2)) == ids_of(
        listed(client, viewer, cursor=cursor, page_size=2)
    )


def test_listing_costs_the_same_queries_on_every_page(client, viewer, history, django_assert_num_queries):
    first = listed(client, viewer, model="churn", page_size=5)  # also marks the key as used

    # The key is remembered once verified; one query reads the page (model, version, outcome joined).
    with django_assert_num_queries(1):
        response = client.get(URL, {"model": "churn", "page_size": 5}, **viewer.headers)
    assert response.status_code == 200
    with django_assert_num_queries(1):
        response = client.get(first["next"], **viewer.headers)
    assert len(response.json()["results"]) == 5


def test_detail_shows_the_outcome_and_404s_in_the_error_format(client, viewer, history):
    record_id = history["old"][0]
    outcomes_record(slug="churn", items=[OutcomeItem(prediction_id=record_id, value=1)])

    found = client.get(f"{URL}/{record_id}", **viewer.headers)
    missing = client.get(f"{URL}/999999999", **viewer.headers)

    assert found.status_code == 200 and found.json()["outcome"]["value"] == 1.0
    assert found.json()["entity_id"] == "client-1"
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_records_need_a_key(client, history):
    assert client.get(URL).status_code == 401


def test_csv_export_has_every_filtered_record(client, viewer, history):
    response = client.get(f"{URL}/export", {"model": "churn", "format": "csv"}, **viewer.headers)

    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 65 and {row["model"] for row in rows} == {"churn"}
    assert rows[0]["id"] == str(history["scheduled"][0]) and rows[0]["features"] == '{"contract_type":"annual"}'


def test_parquet_export_reads_back(client, viewer, history, tmp_path):
    response = client.get(f"{URL}/export", {"model": "pricing", "format": "parquet"}, **viewer.headers)

    assert response.status_code == 200
    path = tmp_path / "export.parquet"
    path.write_bytes(b"".join(response.streaming_content))
    table = pq.read_table(path).to_pylist()
    assert [row["main_score"] for row in table] == [2500.0, 1500.0] and table[0]["model"] == "pricing"


def test_export_refuses_too_many_records_and_unknown_formats(client, viewer, history, settings):
    settings.HISTORY_EXPORT_MAX_ROWS = 10

    too_many = client.get(f"{URL}/export", **viewer.headers)
    unknown = client.get(f"{URL}/export", {"format": "xlsx", "model": "pricing"}, **viewer.headers)

    assert too_many.status_code == 400 and "narrow" in str(too_many.json()["details"])
    assert unknown.status_code == 400 and "format" in unknown.json()["details"]
