"""Fitted scikit-learn objects exported to ``compiled`` steps: what the registry stores and serves.

``export_artifact`` replaces every fitted scikit-learn object in a ``CatalogModel.fit``
artifact by its parameters (``compiled.py``); everything else is kept as it is. A step or a
setting that ``fast.py`` cannot reproduce raises ``UnsupportedTransformer`` here, at
training, rather than answering differently in production. The catalog tests hold the
exported form's answers equal to scikit-learn's.

Imports scikit-learn: used by the processes that train, never by the ones that only serve.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.covariance import EmpiricalCovariance
from sklearn.impute import SimpleImputer
from sklearn.linear_model._base import LinearClassifierMixin, LinearModel  # the bases of all linear models
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    PolynomialFeatures,
    SplineTransformer,
    StandardScaler,
)

from predictions.catalog import compiled
from predictions.catalog.compiled import UnsupportedTransformer


def export_artifact(artifact: Any) -> Any:
    """The artifact with each fitted scikit-learn object replaced by its exported step."""
    if isinstance(artifact, dict):
        return {key: export_artifact(value) for key, value in artifact.items()}
    if isinstance(artifact, (list, tuple)):
        return type(artifact)(export_artifact(value) for value in artifact)
    if type(artifact).__module__.startswith("sklearn."):
        return export_step(artifact)
    return artifact


def export_step(step: Any) -> Any:
    """One fitted scikit-learn object (or "passthrough"/None) as a ``compiled`` step."""
    if step is None or isinstance(step, (str, compiled.Step)):
        return step
    for kind, exporter in _EXPORTERS:
        if isinstance(step, kind):
            return exporter(step)
    raise UnsupportedTransformer(f"no numpy path for {type(step).__name__}: not a linear model or a supported step")


def _pipeline(pipeline: Pipeline) -> compiled.Pipeline:
    return compiled.Pipeline([(name, export_step(step)) for name, step in pipeline.steps])


def _column_transformer(column_transformer: ColumnTransformer) -> compiled.ColumnTransformer:
    fitted = []
    for name, step, selection in column_transformer.transformers_:
        if isinstance(step, str) and step == "drop":
            continue
        names = _column_names(column_transformer, selection)
        if names:  # scikit-learn skips an empty selection
            fitted.append((name, export_step(step), names))
    output = {name: column_transformer.output_indices_[name] for name, _, _ in fitted}
    weights = dict(column_transformer.transformer_weights) if column_transformer.transformer_weights else None
    return compiled.ColumnTransformer(fitted, weights, output)


def _column_names(column_transformer: ColumnTransformer, selection: Any) -> list[str]:
    if isinstance(selection, list) and all(isinstance(column, str) for column in selection):
        return selection  # the usual case: a list of column names
    if isinstance(selection, str) or np.isscalar(selection):
        raise UnsupportedTransformer(f"a scalar column selection ({selection!r}) gives 1-D input; use a list")
    if isinstance(selection, slice) or (
        len(selection) and not isinstance(selection[0], str) and np.asarray(selection).dtype == bool
    ):
        return [str(name) for name in np.asarray(column_transformer.feature_names_in_)[selection]]
    return [
        column if isinstance(column, str) else str(column_transformer.feature_names_in_[column]) for column in selection
    ]


def _scaler(step: StandardScaler) -> compiled.StandardScaler:
    return compiled.StandardScaler(step.with_mean, step.with_std, step.mean_, step.scale_)


def _function(step: FunctionTransformer) -> compiled.FunctionTransformer:
    if step.func is None:
        return compiled.FunctionTransformer(None, None)
    name = getattr(step.func, "__name__", None)
    if compiled.FUNCTIONS.get(name) is not step.func:
        raise UnsupportedTransformer(f"no numpy path for FunctionTransformer({step.func!r})")
    return compiled.FunctionTransformer(name, dict(step.kw_args) if step.kw_args else None)


def _splines(step: SplineTransformer) -> compiled.SplineTransformer:
    if step.extrapolation not in ("constant", "continue"):
        raise UnsupportedTransformer(f"no numpy path for SplineTransformer(extrapolation={step.extrapolation!r})")
    for spline in step.bsplines_:
        # A non-periodic SplineTransformer evaluates its whole basis: coefficients = identity.
        if not np.array_equal(spline.c, np.eye(len(spline.t) - spline.k - 1)):
            raise UnsupportedTransformer("no numpy path for a SplineTransformer whose splines are not its basis")
    return compiled.SplineTransformer(
        knots=np.vstack([np.asarray(spline.t, dtype=np.float64) for spline in step.bsplines_]),  # one length
        degree=int(step.degree),
        extrapolation=step.extrapolation,
        include_bias=bool(step.include_bias),
        handle_missing=getattr(step, "handle_missing", "error"),
    )


def _products(step: PolynomialFeatures) -> compiled.PolynomialFeatures:
    return compiled.PolynomialFeatures(np.asarray(step.powers_, dtype=np.int64))


def _imputer(step: SimpleImputer) -> compiled.SimpleImputer:
    missing = step.missing_values
    if step.add_indicator or not isinstance(missing, (int, float)) or isinstance(missing, bool):
        raise UnsupportedTransformer("no numpy path for SimpleImputer with an indicator or non-numeric missing values")
    keep_empty = bool(getattr(step, "keep_empty_features", False))
    return compiled.SimpleImputer(float(missing), np.asarray(step.statistics_, dtype=np.float64), keep_empty)


def _one_hot(encoder: OneHotEncoder) -> compiled.OneHotEncoder:
    if encoder.drop is not None or encoder.max_categories is not None or encoder.min_frequency is not None:
        raise UnsupportedTransformer("no numpy path for OneHotEncoder with drop or infrequent categories")
    for categories in encoder.categories_:
        last = categories[-1]  # scikit-learn sorts a missing-value category last
        if last is None or (isinstance(last, float) and last != last):
            raise UnsupportedTransformer("no numpy path for OneHotEncoder with a missing-value category")
    auto = isinstance(encoder.categories, str) and encoder.categories == "auto"
    # Without infrequent categories, every setting but "error" encodes an unknown value as zeros.
    handle_unknown = "error" if encoder.handle_unknown == "error" else "ignore"
    return compiled.OneHotEncoder(list(encoder.categories_), handle_unknown, auto)


def _linear(estimator: Any) -> compiled.LinearModel:
    intercept = estimator.intercept_
    return compiled.LinearModel(np.asarray(estimator.coef_), intercept if np.ndim(intercept) else float(intercept))


def _covariance(estimator: EmpiricalCovariance) -> compiled.Covariance:
    return compiled.Covariance(np.asarray(estimator.location_), np.asarray(estimator.get_precision()))


_EXPORTERS: tuple[tuple[type | tuple[type, ...], Any], ...] = (
    (Pipeline, _pipeline),
    (ColumnTransformer, _column_transformer),
    (StandardScaler, _scaler),
    (FunctionTransformer, _function),
    (SplineTransformer, _splines),
    (PolynomialFeatures, _products),
    (SimpleImputer, _imputer),
    (OneHotEncoder, _one_hot),
    ((LinearModel, LinearClassifierMixin), _linear),
    (EmpiricalCovariance, _covariance),
)
