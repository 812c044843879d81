"""Reference profile of a version's training inputs and outputs, kept for drift reports.

Bin edges are fixed here, once, at training time; a drift report then only has to count the
current window into the same bins (PSI, chi-square) instead of re-reading the training data.
Pure numpy/pandas, no Django.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from predictions.catalog.base import Feature

PROFILE_BINS = 10  # deciles: enough resolution for PSI without sparse bins


def numeric_profile(values: np.ndarray) -> dict[str, Any]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"kind": "numeric", "count": 0}
    edges = np.unique(np.quantile(values, np.linspace(0, 1, PROFILE_BINS + 1)))
    if edges.size < 2:  # a constant column: one bin around its value
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    counts, _ = np.histogram(values, bins=edges)
    return {
        "kind": "numeric",
        "count": int(values.size),
        "bin_edges": [float(edge) for edge in edges],
        "bin_shares": [float(c) for c in counts / counts.sum()],
        "quantiles": {str(q): float(np.quantile(values, q)) for q in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)},
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def categorical_profile(values: pd.Series, categories: tuple[str, ...]) -> dict[str, Any]:
    shares = values.astype(str).value_counts(normalize=True)
    return {
        "kind": "categorical",
        "count": int(values.size),
        "shares": {category: float(shares.get(category, 0.0)) for category in categories},
    }


def feature_profile(feature: Feature, values: pd.Series) -> dict[str, Any]:
    if feature.kind == "category":
        return categorical_profile(values, feature.categories)
    if feature.kind == "boolean":
        return categorical_profile(values.map({True: "true", False: "false"}), ("true", "false"))
    return numeric_profile(values.to_numpy(dtype=float))


def build_reference_profile(features: tuple[Feature, ...], frame: pd.DataFrame, scores: np.ndarray) -> dict[str, Any]:
    """Profile of the training inputs (one entry per feature) and of the model's main score."""
    return {
        "rows": len(frame),
        "features": {feature.name: feature_profile(feature, frame[feature.name]) for feature in features},
        "main_score": numeric_profile(np.asarray(scores, dtype=float)),
    }
