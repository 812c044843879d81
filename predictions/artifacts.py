"""Model artifacts on disk: written atomically, verified against their sha256 before every load.

Artifacts are untrusted input. They are saved with skops, which, unlike pickle, refuses to
build any type it was not told to trust. Beyond skops' own defaults (scikit-learn estimators,
numpy arrays and ufuncs, builtins containers) we trust an exact list of names, reviewed one by
one, and check it before writing as well as before loading. A prefix such as "numpy." would
not do: it admits functions that run code (numpy.testing), not only data types.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skops.io
from django.conf import settings

# Names skops asks about for the seven catalog models. A new model that needs another type
# fails at training with the name to review; add it here only if it is plain data or a pure function.
TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        "scipy.interpolate._bsplines.BSpline",  # SplineTransformer's fitted splines
        "scipy._lib.array_api_compat.numpy._aliases.asarray",  # referenced by SplineTransformer
    }
)


class ArtifactError(Exception):
    """An artifact cannot be written or loaded; the message says why, for operators."""


@dataclass(frozen=True)
class StoredArtifact:
    relative_path: str
    sha256: str
    size_bytes: int


def _refuse_untrusted_types(data: bytes) -> list[str]:
    types = skops.io.get_untrusted_types(data=data)
    refused = sorted(set(types) - TRUSTED_TYPES)
    if refused:
        raise ArtifactError(f"artifact holds types that are not trusted: {', '.join(refused)}")
    return types


def artifact_write(*, slug: str, artifact: dict[str, Any]) -> StoredArtifact:
    """Serialise and store atomically: a reader sees the whole file or none of it."""
    data = skops.io.dumps(artifact)
    _refuse_untrusted_types(data)
    digest = hashlib.sha256(data).hexdigest()
    folder = Path(settings.ARTIFACT_ROOT) / slug
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{digest}.skops"  # named by content: written before the version row exists
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
    trusted = _refuse_untrusted_types(data)
    try:
        return skops.io.loads(data, trusted=trusted)
    except Exception as exc:  # a corrupt file that still matches its digest: refuse it too
        raise ArtifactError(f"artifact {relative_path} cannot be read: {type(exc).__name__}") from None
