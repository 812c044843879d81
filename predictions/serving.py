"""The versions this process serves, loaded once and swapped when the active version changes.

Every process (each gunicorn worker, each Celery worker) keeps its own loaded artifacts and
asks the database which version is active at most every REFRESH_SECONDS, so a promotion or a
rollback is served everywhere within a second, without a restart. A version whose artifact is
missing or tampered is refused: the model's health turns red and the version loaded before it
keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from predictions.artifacts import ArtifactError, artifact_load
from predictions.selectors import ActivePointer, active_pointer, version_pointer

logger = logging.getLogger(__name__)

# Promotions must reach every process within a second; one indexed query per model per half
# second per process is the price.
REFRESH_SECONDS = 0.5


class ModelUnavailable(Exception):
    """No version of this model can be served by this process right now."""


@dataclass(frozen=True)
class LoadedVersion:
    slug: str
    version_id: int
    model_id: int
    number: int
    sha256: str
    artifact: dict[str, Any]


class ServingRegistry:
    def __init__(self) -> None:
        self._loaded: dict[str, LoadedVersion] = {}
        self._checked_at: dict[str, float] = {}
        self._pinned: dict[str, LoadedVersion] = {}
        self._lock = threading.Lock()

    def get(self, slug: str) -> LoadedVersion:
        if time.monotonic() - self._checked_at.get(slug, float("-inf")) >= REFRESH_SECONDS:
            with self._lock:
                self._refresh(slug)
        loaded = self._loaded.get(slug)
        if loaded is None:
            # In a threaded server another thread may be loading it right now (it marks the
            # check done before the load finishes): wait for it under the lock, then retry once.
            with self._lock:
                loaded = self._loaded.get(slug)
                if loaded is None:
                    self._refresh(slug)
                    loaded = self._loaded.get(slug)
        if loaded is None:
            raise ModelUnavailable(f"Model '{slug}' has no servable version; see /api/models/{slug}/health.")
        return loaded

    def get_version(self, slug: str, version_id: int) -> LoadedVersion:
        """A given version, active or not: what a job pinned to the version it started with uses.

        Served from the active slot when it is that version; otherwise loaded (verified like
        any load) and kept while it stays pinned: one such version per model at a time.
        """
        active = self._loaded.get(slug)
        if active is not None and active.version_id == version_id:
            return active
        pinned = self._pinned.get(slug)
        if pinned is not None and pinned.version_id == version_id:
            return pinned
        with self._lock:
            pointer = version_pointer(version_id)
            if pointer is None:
                raise ModelUnavailable(f"Version {version_id} of model '{slug}' does not exist.")
            try:
                artifact = artifact_load(relative_path=pointer.artifact_path, sha256=pointer.sha256)
            except ArtifactError as refused:
                raise ModelUnavailable(f"Model '{slug}' v{pointer.number} cannot be loaded: {refused}") from None
            pinned = self._pinned[slug] = _loaded_version(slug, pointer, artifact)
        return pinned

    def loaded(self, slug: str) -> LoadedVersion | None:
        return self._loaded.get(slug)

    def forget(self) -> None:
        """Drop everything loaded (tests, and after ARTIFACT_ROOT changes)."""
        with self._lock:
            self._loaded.clear()
            self._checked_at.clear()
            self._pinned.clear()

    def _refresh(self, slug: str) -> None:
        self._checked_at[slug] = time.monotonic()
        pointer = active_pointer(slug)
        current = self._loaded.get(slug)
        if pointer is None or (current is not None and current.version_id == pointer.version_id):
            return
        self._load(slug, pointer)

    def _load(self, slug: str, pointer: ActivePointer) -> None:
        from predictions.services import model_clear_serving_error, model_record_serving_error

        try:
            artifact = artifact_load(relative_path=pointer.artifact_path, sha256=pointer.sha256)
        except ArtifactError as refused:
            logger.error("refusing %s v%s: %s", slug, pointer.number, refused)
            model_record_serving_error(slug=slug, error=f"v{pointer.number}: {refused}")
            return
        self._loaded[slug] = _loaded_version(slug, pointer, artifact)
        model_clear_serving_error(slug=slug)
        logger.info("serving %s v%s", slug, pointer.number)


def _loaded_version(slug: str, pointer: ActivePointer, artifact: dict[str, Any]) -> LoadedVersion:
    return LoadedVersion(slug, pointer.version_id, pointer.model_id, pointer.number, pointer.sha256, artifact)


registry = ServingRegistry()
