"""The contract every catalog model follows.

Pure computation: numpy, pandas, scikit-learn and scipy only, never Django. scikit-learn is
imported only where a model is fitted or scored against outcomes: serving does without it. The registry
(predictions/services.py) trains, stores and serves these; the API validation, the OpenAPI
examples, the CSV importer and the drift reports are all generated from ``features``.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

FeatureKind = Literal["number", "integer", "category", "boolean"]
TargetKind = Literal["binary", "number"]
Task = Literal["classification", "regression", "optimisation", "forecast", "anomaly"]

# Prefix of generator columns that hold ground truth only the generator knows (true
# probabilities, true curves, injected-anomaly flags). Never used for training or serving.
TRUTH_PREFIX = "truth_"


@dataclass(frozen=True)
class Feature:
    """One input of a model, as a client sends it."""

    name: str
    kind: FeatureKind
    description: str
    example: Any
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    required: bool = True
    default: Any = None  # used when an optional feature is missing

    def __post_init__(self) -> None:
        if self.kind == "category" and not self.categories:
            raise ValueError(f"category feature {self.name} needs its categories")
        if not self.required and self.default is None:
            raise ValueError(f"optional feature {self.name} needs a default")


@dataclass(frozen=True)
class Target:
    """What the model learns to predict, as a column of a training dataset."""

    name: str
    kind: TargetKind
    description: str
    unit: str | None = None


class CatalogModel(ABC):
    """A business model: its inputs, its data generator, its training and its answers.

    Subclasses set the class attributes and implement the four methods. The artifact that
    ``fit`` returns is a dict holding only fitted scikit-learn objects of the kinds ``export.py``
    knows, numpy arrays and plain Python values (str, int, float, bool, list, tuple, dict).
    ``predict`` and ``evaluate`` receive it exported (``fit_exported``): the scikit-learn
    objects replaced by their parameters, with the same attribute names, read through ``fast``.
    """

    slug: ClassVar[str]
    title: ClassVar[str]
    task: ClassVar[Task]
    summary: ClassVar[str]  # one line for the model list
    features: ClassVar[tuple[Feature, ...]]
    target: ClassVar[Target | None]  # None for unsupervised models (anomaly)
    main_score: ClassVar[str]  # key of the answer recorded as history's main score
    entity_label: ClassVar[str] = "entity"  # what an entity id names: client, invoice, deal...
    default_training_rows: ClassVar[int] = 20_000

    @abstractmethod
    def generate(self, n: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
        """``n`` synthetic rows: every feature, the target, and ``truth_*`` columns.

        ``drift`` in [0, 1] shifts the inputs (and, where it makes sense, the relationship);
        0 is the reference world the default model is trained on.
        """

    @abstractmethod
    def fit(self, frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
        """Train on the feature and target columns of ``frame``; return the artifact."""

    def fit_exported(self, frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
        """``fit``, with every fitted scikit-learn object replaced by its exported parameters
        (``compiled.py``): the artifact the registry stores, and all that serving needs."""
        from predictions.catalog.export import export_artifact  # scikit-learn: training processes only

        return export_artifact(self.fit(frame, seed=seed))

    @abstractmethod
    def predict(self, artifact: dict[str, Any], frame: pd.DataFrame) -> list[dict[str, Any]]:
        """One JSON-ready business answer per row of ``frame`` (feature columns only).

        Every answer holds the key named by ``main_score``, as a float.
        """

    @abstractmethod
    def evaluate(self, artifact: dict[str, Any], frame: pd.DataFrame) -> dict[str, float]:
        """Holdout metrics from the feature and target columns only, as a real dataset has."""

    # --- Helpers shared by all models ------------------------------------------------------

    @classmethod
    def feature_names(cls) -> list[str]:
        return [f.name for f in cls.features]

    @classmethod
    def example_row(cls) -> dict[str, Any]:
        return {f.name: f.example for f in cls.features}

    @classmethod
    def feature_frame(cls, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Rows of validated inputs as a frame in schema order, defaults filled in."""
        # One object block, built from a 2-D array: pandas then skips inferring a type per
        # column (and converting text to Arrow strings), which is most of the cost for one
        # row (~0.28 ms -> ~0.05 ms). The models convert the columns they read themselves.
        values = np.empty((len(rows), len(cls.features)), dtype=object)
        for i, row in enumerate(rows):
            values[i] = [row.get(f.name, f.default) for f in cls.features]
        return pd.DataFrame(values, columns=cls._column_index(), dtype=object, copy=False)

    @classmethod
    @functools.cache
    def _column_index(cls) -> pd.Index:
        """The feature names as a frame's column index, built once (pandas would infer its type)."""
        return pd.Index(cls.feature_names(), dtype=object)


def split_holdout(frame: pd.DataFrame, fraction: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reproducible random train/holdout split."""
    rng = np.random.default_rng(seed)
    mask = rng.random(len(frame)) < fraction
    return frame.loc[~mask].reset_index(drop=True), frame.loc[mask].reset_index(drop=True)


def split_conformal_levels(n: int, level: float) -> tuple[float, float]:
    """The quantile levels of ``n`` calibration scores that bound a two-sided ``level`` interval.

    Split conformal: the levels are corrected for the calibration size, (n + 1) / n, so that
    the interval holds a new outcome with probability ``level`` or more.
    """
    alpha = 1 - level
    return max(0.0, math.floor((n + 1) * alpha / 2) / n), min(1.0, math.ceil((n + 1) * (1 - alpha / 2)) / n)


def rounded_list(values: np.ndarray, digits: int) -> list:
    """``values`` rounded to ``digits`` decimals, as JSON-ready Python numbers.

    ``+ 0.0`` turns a rounded -0.0 into 0.0, which an answer should never show.
    """
    return (np.round(values, digits) + 0.0).tolist()
