"""The plain scikit-learn call of each model: what a straightforward service would run.

Each function feeds a request frame to the fitted scikit-learn pipeline(s) in what ``fit`` returns,
the way the model's own tests check the numpy path against them, and returns scikit-learn's
raw output. ``predict_bench.py`` times these side by side with the catalog's ``predict``,
which computes the same numbers from the fitted parameters with numpy and then builds the
business answer. For pricing, the optimiser evaluates the win curve over a grid of prices;
the plain call shown is one ``predict_proba`` at the quoted price.

Uses the catalog modules' private input builders on purpose: a benchmark, not an API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from predictions.catalog import anomaly, budget, churn, demand, fast, pricing, profitability, revenue_leak


def _churn(artifact: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    return artifact["pipeline"].predict_proba(churn.MODEL._inputs(frame))[:, 1]


def _revenue_leak(artifact: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    columns = revenue_leak._columns(frame, revenue_leak.MODEL.feature_names())
    return artifact["pipeline"].predict_proba(pd.DataFrame(revenue_leak._indicators(columns)))[:, 1]


def _anomaly(artifact: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    derived = anomaly._derived(fast.frame_columns(frame, anomaly.MODEL.feature_names(), dtype=np.float64))
    encoded = artifact["pipeline"].named_steps["preprocess"].transform(pd.DataFrame(derived))
    return np.sqrt(artifact["pipeline"].named_steps["covariance"].mahalanobis(encoded))


def _profitability(artifact: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    return artifact["pipeline"].predict(pd.DataFrame(profitability._design(fast.frame_columns(frame))))


def _demand(artifact: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    design = pd.DataFrame(demand._design(fast.frame_columns(frame)))
    return artifact["first_month"]["pipeline"].predict(design)


def _pricing(artifact: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    ratio = frame["quoted_price"].to_numpy(dtype=float) / frame["list_price"].to_numpy(dtype=float)
    return artifact["pipeline"].predict_proba(pricing.MODEL._design(frame, np.log(ratio)))[:, 1]


def _budget(artifact: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    return artifact["pipeline"].predict(budget.MODEL._inputs(frame))


SCIKIT_LEARN_CALLS: dict[str, Callable[[dict[str, Any], pd.DataFrame], np.ndarray]] = {
    "churn": _churn,
    "revenue-leak": _revenue_leak,
    "anomaly": _anomaly,
    "profitability": _profitability,
    "demand": _demand,
    "pricing": _pricing,
    "budget": _budget,
}
