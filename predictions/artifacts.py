"""Model artifacts on disk: written atomically, verified against their sha256 before every load.

Artifacts are untrusted input. They hold exported models (``predictions/catalog/compiled.py``):
numbers, text and a closed list of step types, in numpy's ``.npz`` loaded without pickle, so a
file cannot make a process build anything else, let alone run code. Loading one needs neither
scikit-learn nor skops, which keeps both out of the web workers.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from predictions.catalog.compiled import ArtifactFormatError, artifact_from_bytes, artifact_to_bytes

ARTIFACT_SUFFIX = ".npz"


class ArtifactError(Exception):
    """An artifact cannot be written or loaded; the message says why, for operators."""


@dataclass(frozen=True)
class StoredArtifact:
    relative_path: str
    sha256: str
    size_bytes: int


def artifact_write(*, slug: str, artifact: dict[str, Any]) -> StoredArtifact:
    """Serialise an exported artifact and store it atomically: a reader sees the whole file or none of it."""
    try:
        data = artifact_to_bytes(artifact)
    except ArtifactFormatError as refused:
        raise ArtifactError(f"artifact cannot be stored: {refused}") from None
    digest = hashlib.sha256(data).hexdigest()
    folder = Path(settings.ARTIFACT_ROOT) / slug
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{digest}{ARTIFACT_SUFFIX}"  # named by content: written before the version row exists
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".incoming-", delete=False) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, final)
    return StoredArtifact(relative_path=f"{slug}/{final.name}", sha256=digest, size_bytes=len(data))


def artifact_path(relative_path: str) -> Path:
    """The absolute path of a stored artifact; never anything outside ARTIFACT_ROOT."""
    root = Path(settings.ARTIFACT_ROOT).resolve()
    path = (root / relative_path).resolve()
    if root not in path.parents:
        raise ArtifactError(f"artifact path {relative_path!r} is outside ARTIFACT_ROOT")
    return path


def artifact_verified_bytes(*, relative_path: str, sha256: str) -> bytes:
    try:
        data = artifact_path(relative_path).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"artifact {relative_path} is missing") from None
    except OSError as exc:  # permissions, a directory in its place, I/O errors
        raise ArtifactError(f"artifact {relative_path} cannot be read: {exc.strerror}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ArtifactError(
            f"artifact {relative_path} does not match its recorded sha256 (expected {sha256[:12]}…, "
            f"found {actual[:12]}…): it was changed after training and is refused"
        )
    return data


def artifact_load(*, relative_path: str, sha256: str) -> dict[str, Any]:
    data = artifact_verified_bytes(relative_path=relative_path, sha256=sha256)
    try:
        return artifact_from_bytes(data)
    except ArtifactFormatError as refused:  # another format, or a crafted file that matches its digest
        raise ArtifactError(f"artifact {relative_path} cannot be read: {refused}") from None
