"""OpenAPI document, Swagger UI and ReDoc: valid, documented errors and security, offline."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_openapi_document_is_valid(schema):
    validate(schema)

    assert schema["openapi"].startswith("3.")


def test_the_api_key_scheme_is_declared_and_required(schema):
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key; `Authorization: Api-Key <key>` is accepted too.",
    }
    me = schema["paths"]["/api/me"]["get"]
    assert {"ApiKeyAuth": []} in me["security"]


def test_operations_document_the_error_format(schema):
    create_key = schema["paths"]["/api/keys"]["post"]["responses"]

    assert {"201", "400", "401", "403", "413", "415", "429"} <= create_key.keys()
    assert create_key["403"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert {"error", "message", "status_code", "correlation_id"} <= set(
        schema["components"]["schemas"]["Error"]["required"]
    )


def test_prediction_requests_document_what_their_validation_refuses(schema, settings):
    components = schema["components"]["schemas"]

    for prefix in ("Churn", "RevenueLeak", "Demand"):  # unknown fields are a 400 at every level
        for part in ("FeaturesRequest", "PredictionRequestRequest", "BatchRowRequest", "BatchRequestRequest"):
            assert components[f"{prefix}{part}"]["additionalProperties"] is False, f"{prefix}{part}"
    rows = components["ChurnBatchRequestRequest"]["properties"]["rows"]
    assert (rows["minItems"], rows["maxItems"]) == (1, settings.PREDICTION_BATCH_MAX_ROWS)
    described = components["ChurnFeaturesRequest"]["properties"]["active_projects"]["description"]
    assert described.startswith("Projects currently running for the client (projects). Example: ")


def test_public_endpoints_do_not_claim_401(schema):
    assert "401" not in schema["paths"]["/api/health"]["get"]["responses"]


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_doc_pages_load_their_assets_from_this_server(client, page):
    html = client.get(page).content.decode()

    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert assets, html
    assert all(asset.startswith("/static/") for asset in assets), assets
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
