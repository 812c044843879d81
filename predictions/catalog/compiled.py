"""Fitted models as plain numpy parameters, and the artifact format that stores them.

A web worker that imports scikit-learn (and, through it, most of scipy) to unpickle a few
coefficient vectors carries ~100 MB more per process (`bench/README.md`). So the registry
stores and serves the *exported* artifact: every fitted scikit-learn object in the dict that
``CatalogModel.fit`` returns is replaced by one of the classes below (``export.py`` does
that, at training), and ``fast.py`` computes predictions from them. Neither this module nor
``fast.py`` imports scikit-learn.

Each class keeps the names of the scikit-learn attributes it stands for (``coef_``,
``named_steps``, ``output_indices_``...), so a model's answer code reads either form.

The file format is numpy's ``.npz``, loaded with ``allow_pickle=False``: arrays of numbers
and strings only, never an object that runs code on load. The structure around the arrays is
JSON in which a typed value names one of the classes below and nothing else, and a function
names one of ``FUNCTIONS``; anything else is refused. (skops, used before, needs scikit-learn
imported to load, which is what this module avoids.)

Pure numpy: no Django, no scikit-learn, no scipy.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

# The element-wise functions a FunctionTransformer may apply, by name. A new one is added
# here only if it is a pure numpy function.
FUNCTIONS = {
    func.__name__: func
    for func in (
        np.log, np.log1p, np.log2, np.log10, np.exp, np.expm1, np.negative, np.sqrt, np.square, np.absolute,
        np.round, np.clip,
    )
}  # fmt: skip

STRUCTURE_KEY = "__structure__"  # the JSON held in the .npz beside the arrays
# Raised whenever the structure or a step's fields change meaning: a file of another format is
# refused with a message that says so, instead of being read wrongly.
FORMAT_VERSION = 1


class UnsupportedTransformer(TypeError):
    """A fitted step (or a setting of one) that the numpy path does not reproduce."""


class ArtifactFormatError(ValueError):
    """An artifact that cannot be stored or read in this format; the message says why."""


# What each annotation of a step's field admits, so that a file cannot give a step a field of
# another type (a string where coefficients belong) and fail later, in a request.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "np.ndarray": (np.ndarray,),
    "np.ndarray | None": (np.ndarray, type(None)),
    "bool": (bool,),
    "int": (int,),
    "float": (float, int),
    "str": (str,),
    "str | None": (str, type(None)),
    "list": (list,),
    "dict": (dict,),
    "dict | None": (dict, type(None)),
}


class Step:
    """Base of every exported fitted step: one class per scikit-learn class supported."""

    # The step types a file may name, by class name: every subclass, nothing else.
    registry: ClassVar[dict[str, type[Step]]] = {}

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        Step.registry[cls.__name__] = cls

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):  # type: ignore[arg-type]  # every subclass is a dataclass
            value = getattr(self, spec.name, None)
            if spec.init and not isinstance(value, _FIELD_TYPES.get(spec.type, object)):
                raise ArtifactFormatError(f"{type(self).__name__}.{spec.name} cannot be a {type(value).__name__}")
            if spec.init and isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
                raise ArtifactFormatError(f"{type(self).__name__}.{spec.name} must hold numbers, not {value.dtype}")


@dataclass(frozen=True, eq=False)
class Pipeline(Step):
    steps: list  # [(name, step)]; a step may be "passthrough" or None

    @property
    def named_steps(self) -> dict[str, Any]:
        return dict(self.steps)


@dataclass(frozen=True, eq=False)
class ColumnTransformer(Step):
    transformers_: list  # [(name, step, column names)], only those that produce output, in order
    transformer_weights: dict | None
    output_indices_: dict  # name -> slice of the output columns

    @property
    def named_transformers_(self) -> dict[str, Any]:
        return {name: step for name, step, _ in self.transformers_}


@dataclass(frozen=True, eq=False)
class StandardScaler(Step):
    with_mean: bool
    with_std: bool
    mean_: np.ndarray | None
    scale_: np.ndarray | None


@dataclass(frozen=True, eq=False)
class FunctionTransformer(Step):
    func_name: str | None  # a key of FUNCTIONS; None is the identity
    kw_args: dict | None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.func_name is not None and self.func_name not in FUNCTIONS:
            raise ArtifactFormatError(f"function {self.func_name!r} is not one of the trusted functions")

    @property
    def func(self) -> Any:
        return None if self.func_name is None else FUNCTIONS[self.func_name]


@dataclass(frozen=True, eq=False)
class SplineTransformer(Step):
    knots: np.ndarray  # one row per input column: the full knot vector of its B-spline basis
    degree: int
    extrapolation: str  # "constant" or "continue"
    include_bias: bool
    handle_missing: str  # "error" or "zeros"


@dataclass(frozen=True, eq=False)
class PolynomialFeatures(Step):
    powers_: np.ndarray  # one row per output term: the power of each input column
    factors: tuple = field(init=False, repr=False)  # derived: each term's k-th factor's column

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.powers_.ndim != 2 or self.powers_.dtype.kind not in "iu" or (self.powers_ < 0).any():
            raise ArtifactFormatError("PolynomialFeatures.powers_ must be a table of non-negative integer powers")
        object.__setattr__(self, "factors", _product_factors(self.powers_))


@dataclass(frozen=True, eq=False)
class SimpleImputer(Step):
    missing_values: float
    statistics_: np.ndarray
    keep_empty_features: bool


@dataclass(frozen=True, eq=False)
class OneHotEncoder(Step):
    categories_: list  # per input column, its categories in output order
    handle_unknown: str  # "ignore" (an unknown value encodes as zeros) or "error"
    sorted_categories: bool  # True when the categories are sorted, as "auto" ones are


@dataclass(frozen=True, eq=False)
class LinearModel(Step):
    coef_: np.ndarray
    intercept_: Any  # a float, or an array for several outputs


@dataclass(frozen=True, eq=False)
class Covariance(Step):
    location_: np.ndarray
    precision_: np.ndarray

    def get_precision(self) -> np.ndarray:
        return self.precision_


def of(step: Any) -> Any:
    """``step`` as an exported step: itself if it is one (or "passthrough"/None), else the
    fitted scikit-learn object exported on the spot (training code passes those)."""
    if step is None or isinstance(step, (Step, str)):
        return step
    from predictions.catalog.export import export_step  # only processes that train get here

    return export_step(step)


def _product_factors(powers: np.ndarray) -> tuple[np.ndarray, ...]:
    """The terms of PolynomialFeatures as products of input columns: the k-th array holds each
    term's k-th factor (``n_features``, a column of ones, for a term of lower degree)."""
    n_terms, n_features = powers.shape
    width = max(1, int(powers.sum(axis=1).max()) if n_terms else 1)
    factors = np.full((n_terms, width), n_features, dtype=np.intp)
    for term, row in enumerate(powers):
        columns = np.repeat(np.arange(n_features), row)
        factors[term, : len(columns)] = columns
    return tuple(np.ascontiguousarray(factors[:, k]) for k in range(width))


# --- The file format ---------------------------------------------------------------------------


def artifact_to_bytes(artifact: dict[str, Any]) -> bytes:
    """The artifact as ``.npz`` bytes: its arrays, and its structure as JSON."""
    arrays: dict[str, np.ndarray] = {}
    structure = json.dumps({"format": FORMAT_VERSION, "artifact": _encode(artifact, arrays)}, allow_nan=True)
    buffer = io.BytesIO()
    np.savez(buffer, **{STRUCTURE_KEY: np.frombuffer(structure.encode(), dtype=np.uint8)}, **arrays)
    return buffer.getvalue()


def artifact_from_bytes(data: bytes) -> dict[str, Any]:
    """The artifact written by ``artifact_to_bytes``; any other content raises ArtifactFormatError.

    Only what the structure names is read, every member must be stored as ``np.savez`` stores
    it (uncompressed, so no member can unpack to more than the file holds), and any failure on
    the way, whatever its type, is a refusal: a crafted file must not crash the process that
    loads it.
    """
    try:
        _check_members(data)
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            structure = json.loads(stored[STRUCTURE_KEY].tobytes().decode())
            found = structure.get("format") if isinstance(structure, dict) else None
            if found != FORMAT_VERSION:
                raise ArtifactFormatError(
                    f"artifact format {found!r}, this service reads format {FORMAT_VERSION}: train the model again"
                )
            artifact = _decode(structure["artifact"], stored)
    except ArtifactFormatError:
        raise
    except Exception as exc:  # any failure to read the file is a refusal, never a crash
        raise ArtifactFormatError(f"not an artifact of this format ({type(exc).__name__}: {exc})"[:300]) from None
    if not isinstance(artifact, dict):
        raise ArtifactFormatError("the artifact is not a dict")
    return artifact


def _check_members(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
    if any(member.compress_type != zipfile.ZIP_STORED for member in members):
        raise ArtifactFormatError("the artifact has compressed members; np.savez writes none")
    if sum(member.file_size for member in members) > len(data):
        raise ArtifactFormatError("the artifact's members claim more bytes than the file holds")


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        name = f"a{len(arrays)}"
        if value.dtype == object:  # category labels: stored as text, given back as Python str
            if not all(isinstance(item, str) for item in value.flat):
                raise ArtifactFormatError("an object array in an artifact may hold only str (category labels)")
            arrays[name] = value.astype(str)
            return {"array": name, "object": True}
        arrays[name] = value
        return {"array": name}
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ArtifactFormatError("an artifact dict's keys must be str")
        return {"dict": {key: _encode(item, arrays) for key, item in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [_encode(item, arrays) for item in value]}
    if isinstance(value, slice):
        return {"slice": [value.start, value.stop, value.step]}
    if isinstance(value, Step):
        fields = {f.name: _encode(getattr(value, f.name), arrays) for f in dataclasses.fields(value) if f.init}
        return {"step": type(value).__name__, "fields": fields}
    raise ArtifactFormatError(f"an artifact cannot hold a {type(value).__module__}.{type(value).__name__}")


def _decode(value: Any, arrays: Any) -> Any:  # arrays: the open NpzFile, read on demand
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if not isinstance(value, dict):
        raise ArtifactFormatError(f"unexpected {type(value).__name__} in the artifact's structure")
    if "array" in value:
        name = value["array"]
        if not isinstance(name, str) or name == STRUCTURE_KEY or name not in arrays:
            raise ArtifactFormatError(f"the artifact's array {name!r} is missing")
        array = arrays[name]
        return array.astype(object) if value.get("object") else array
    if "dict" in value:
        return {key: _decode(item, arrays) for key, item in value["dict"].items()}
    if "list" in value:
        return [_decode(item, arrays) for item in value["list"]]
    if "tuple" in value:
        return tuple(_decode(item, arrays) for item in value["tuple"])
    if "slice" in value:
        bounds = value["slice"]
        if not (isinstance(bounds, list) and len(bounds) == 3 and all(b is None or type(b) is int for b in bounds)):
            raise ArtifactFormatError(f"a slice of the artifact is not three integers: {bounds!r}"[:200])
        return slice(*bounds)
    if "step" in value:
        cls = Step.registry.get(value["step"])
        if cls is None:
            raise ArtifactFormatError(f"unknown step type {value['step']!r}")
        return cls(**{name: _decode(item, arrays) for name, item in value["fields"].items()})
    raise ArtifactFormatError(f"unknown value in the artifact's structure: {sorted(value)}")
