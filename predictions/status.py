"""What the model endpoints report: summaries, schema and health. Reads only."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from history.selectors import last_prediction_at
from predictions.artifacts import ArtifactError, artifact_path, artifact_verified_bytes
from predictions.catalog import get_catalog_model
from predictions.catalog.base import CatalogModel
from predictions.models import MLModel, ModelVersion
from predictions.selectors import active_version
from predictions.serving import registry
from predictions.usage import usage_recent

# Above this share of failed requests over the last hour or two, health turns amber.
ERROR_RATE_WARNING = 0.05


def _version_brief(version: ModelVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "number": version.number,
        "trained_at": version.created_at,
        "activated_at": version.activated_at,
        "metrics": version.metrics,
        "training_rows": version.training_rows,
    }


def model_summary(model: MLModel, version: ModelVersion | None) -> dict[str, Any]:
    spec = get_catalog_model(model.slug)
    return {
        "slug": model.slug,
        "title": spec.title,
        "task": spec.task,
        "summary": spec.summary,
        "active_version": _version_brief(version),
        "serving_error": model.serving_error or None,
        "endpoints": {"predict": f"/api/{model.slug}", "batch": f"/api/{model.slug}/batch"},
    }


def schema_of(spec: CatalogModel) -> dict[str, Any]:
    return {
        "features": [asdict(feature) for feature in spec.features],
        "target": asdict(spec.target) if spec.target else None,
        "main_score": spec.main_score,
        "entity": spec.entity_label,
        "example_request": {"features": spec.example_row(), "entity_id": "example-1"},
    }


def model_info(model: MLModel, spec: CatalogModel) -> dict[str, Any]:
    return {**model_summary(model, active_version(model)), "schema": schema_of(spec)}


def model_health(model: MLModel) -> dict[str, Any]:
    version = active_version(model)
    verified, problem = _verify(version)
    loaded = registry.loaded(model.slug)
    requests, errors = usage_recent(slug=model.slug)
    error_rate = errors / requests if requests else 0.0
    if version is None or not verified or model.serving_error:
        status = "red"
    elif error_rate > ERROR_RATE_WARNING:
        status = "amber"
    else:
        status = "green"
    return {
        "slug": model.slug,
        "status": status,
        "active_version": version.number if version else None,
        "artifact_verified": verified,
        "artifact_problem": problem,
        "serving_error": model.serving_error or None,
        "serving_error_at": model.serving_error_at,
        "loaded_in_this_process": loaded.number if loaded else None,
        "last_prediction_at": last_prediction_at(model_id=model.pk),
        "recent_requests": requests,
        "recent_errors": errors,
        "recent_error_rate": round(error_rate, 4),
    }


# (path, sha256) -> (file size and mtime, verdict): hashing again only when the file changed
# keeps the public readiness probe cheap however often it is called.
_verdicts: dict[tuple[str, str], tuple[tuple[int, int] | None, tuple[bool, str | None]]] = {}


def _verify(version: ModelVersion | None) -> tuple[bool, str | None]:
    if version is None:
        return False, "no active version"
    key = (version.artifact_path, version.sha256)
    try:
        stat = artifact_path(version.artifact_path).stat()
        signature = (stat.st_size, stat.st_mtime_ns)
    except (OSError, ArtifactError):
        signature = None
    cached = _verdicts.get(key)
    if cached is not None and signature is not None and cached[0] == signature:
        return cached[1]
    try:
        artifact_verified_bytes(relative_path=version.artifact_path, sha256=version.sha256)
        verdict: tuple[bool, str | None] = (True, None)
    except ArtifactError as exc:
        verdict = (False, str(exc))
    _verdicts[key] = (signature, verdict)
    return verdict


def active_artifact_problems() -> dict[str, str]:
    """Models whose active artifact fails verification right now, with the reason."""
    problems = {}
    for version in (
        ModelVersion.objects.filter(status="active")
        .select_related("model")
        .only("artifact_path", "sha256", "model__slug")
    ):
        verified, problem = _verify(version)
        if not verified:
            problems[version.model.slug] = problem
    return problems
