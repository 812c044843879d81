"""The numpy serving path: the same numbers as scikit-learn, or a clear refusal."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    OneHotEncoder,
    PolynomialFeatures,
    QuantileTransformer,
    SplineTransformer,
    StandardScaler,
)

from predictions.catalog import fast

NUMBERS = ["amount", "count", "ratio"]


def _training(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(8.0, 1.0, n), 2),
            "count": rng.poisson(3.0, n).astype(np.int64),
            "ratio": rng.normal(0.0, 1.0, n),
            "expense": np.where(rng.random(n) < 0.5, 0.0, rng.gamma(2.0, 50.0, n)),
            "flag": rng.random(n) < 0.3,
            "colour": rng.choice(["red", "green", "blue"], n).astype(object),
            "size": rng.choice(["s", "m", "l", "xl"], n).astype(object),
            "cell": rng.integers(0, 24, n).astype(np.int64),
        }
    )


def _requests() -> pd.DataFrame:
    """Rows the training never saw: unknown categories, values far below and above its range."""
    frame = _training(60, seed=1)
    frame.loc[0, "colour"] = "purple"  # unknown category
    frame.loc[1, "size"] = "xxl"  # unknown category
    frame.loc[2, "cell"] = 99  # unknown integer category
    frame.loc[3, ["amount", "count", "ratio"]] = [1e7, 500, 25.0]  # far above the training range
    frame.loc[4, ["amount", "count", "ratio"]] = [0.01, 0, -25.0]  # far below it
    frame.loc[5, "expense"] = 0.0
    frame.loc[6, "expense"] = 1e6
    return frame


def _dense(values) -> np.ndarray:
    return values.toarray() if sparse.issparse(values) else np.asarray(values, dtype=np.float64)


def _assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal to 1e-9, or to 1e-12 of the value for the large products of extreme inputs."""
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-9)


def _log_scale() -> Pipeline:
    return Pipeline([("log1p", FunctionTransformer(np.log1p)), ("scale", StandardScaler())])


# One ColumnTransformer per kind of step the catalog models use (and a few settings around them).
KINDS = {
    "standard_scaler": [("scale", StandardScaler(), NUMBERS)],
    "scaler_without_mean": [("scale", StandardScaler(with_mean=False), NUMBERS)],
    "function_log1p_then_scale": [("log", _log_scale(), ["amount", "count"])],
    "function_with_kw_args": [("round", FunctionTransformer(np.round, kw_args={"decimals": 1}), ["ratio"])],
    "spline_constant_quantile": [("spline", SplineTransformer(n_knots=5, knots="quantile"), NUMBERS)],
    "spline_constant_uniform_after_log": [
        ("spline", Pipeline([("log", FunctionTransformer(np.log)), ("spline", SplineTransformer())]), ["amount"])
    ],
    "spline_continue_without_bias": [
        ("spline", SplineTransformer(extrapolation="continue", include_bias=False), ["ratio", "count"])
    ],
    "polynomial_degree_2_then_scale": [
        (
            "poly",
            Pipeline([("poly", PolynomialFeatures(degree=2, include_bias=False)), ("scale", StandardScaler())]),
            NUMBERS,
        )
    ],
    "polynomial_degree_3_with_bias": [("poly", PolynomialFeatures(degree=3), ["ratio", "count"])],
    "imputer_zero_to_median_then_log": [
        (
            "hurdle",
            Pipeline([("zero", SimpleImputer(missing_values=0.0, strategy="median")), *_log_scale().steps]),
            ["expense"],
        )
    ],
    "one_hot_ignore": [("category", OneHotEncoder(handle_unknown="ignore"), ["colour", "size"])],
    "one_hot_integer_cells": [("cells", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["cell"])],
    "one_hot_given_categories": [
        ("category", OneHotEncoder(categories=[["red", "blue", "green"]], handle_unknown="ignore"), ["colour"])
    ],
    "passthrough": [("flags", "passthrough", ["flag", "ratio"])],
    "drop": [("gone", "drop", ["amount"]), ("scale", StandardScaler(), ["count"])],
}


def _fitted(transformers: list, **options) -> ColumnTransformer:
    return ColumnTransformer(transformers, **options).fit(_training())


@pytest.mark.parametrize("kind", KINDS)
def test_encode_equals_scikit_learn_for_each_supported_kind(kind):
    # Given a ColumnTransformer fitted on training rows
    encoder = _fitted(KINDS[kind])
    requests = _requests()

    # When rows with unknown categories and out-of-range values are encoded both ways
    expected = _dense(encoder.transform(requests))

    # Then the numpy path gives scikit-learn's numbers, from a frame or from columns by name
    _assert_same(fast.encode(encoder, requests), expected)
    _assert_same(fast.encode(encoder, fast.frame_columns(requests)), expected)


def test_encode_equals_scikit_learn_for_all_kinds_at_once_with_weights_and_a_remainder():
    # Given every kind in one ColumnTransformer, two of them weighted, and one passing the rest through
    kinds = itertools.chain.from_iterable(KINDS.values())
    steps = [(f"{name}_{i}", step, columns) for i, (name, step, columns) in enumerate(kinds)]
    weights = {steps[0][0]: 2.0, next(name for name, *_ in steps if name.startswith("category")): 0.5}
    everything = _fitted(steps, transformer_weights=weights)
    numbers = ["amount", "count", "ratio", "expense", "flag"]
    rest = ColumnTransformer([("scale", StandardScaler(), ["amount"])], remainder="passthrough")
    rest.fit(_training()[numbers])
    requests = _requests()

    # Then both encode as scikit-learn does
    _assert_same(fast.encode(everything, requests), _dense(everything.transform(requests)))
    _assert_same(fast.encode(rest, requests[numbers]), _dense(rest.transform(requests[numbers])))


def test_unknown_categories_encode_as_zeros():
    encoder = _fitted(KINDS["one_hot_ignore"])

    encoded = fast.encode(encoder, _requests().head(2))

    assert encoded[0, :3].sum() == 0.0  # "purple": no colour column set
    assert encoded[1, 3:].sum() == 0.0  # "xxl": no size column set
    assert encoded[0, 3:].sum() == encoded[1, :3].sum() == 1.0


def test_out_of_range_values_follow_constant_extrapolation():
    encoder = _fitted([("spline", SplineTransformer(n_knots=4), ["ratio"])])
    edges = pd.DataFrame({"ratio": [-1e6, _training()["ratio"].min(), _training()["ratio"].max(), 1e6]})

    encoded = fast.encode(encoder, edges)

    np.testing.assert_allclose(encoded[0], encoded[1], atol=1e-12)  # below the knots: the first knot's basis
    np.testing.assert_allclose(encoded[3], encoded[2], atol=1e-12)  # above them: the last knot's basis


def test_an_unknown_category_is_refused_when_the_encoder_refuses_it():
    encoder = _fitted([("category", OneHotEncoder(handle_unknown="error"), ["colour"])])
    with pytest.raises(ValueError):
        encoder.transform(_requests())

    with pytest.raises(ValueError, match="unknown categories"):
        fast.encode(encoder, _requests())


@pytest.mark.parametrize(
    ("transformers", "message"),
    [
        ([("q", QuantileTransformer(n_quantiles=10), ["amount"])], "QuantileTransformer"),
        ([("bins", KBinsDiscretizer(n_bins=3, encode="ordinal"), ["amount"])], "KBinsDiscretizer"),
        ([("spline", SplineTransformer(extrapolation="periodic"), ["ratio"])], "periodic"),
        ([("category", OneHotEncoder(drop="first"), ["colour"])], "drop"),
        ([("category", OneHotEncoder(min_frequency=5), ["colour"])], "infrequent"),
        ([("impute", SimpleImputer(add_indicator=True), ["amount"])], "indicator"),
    ],
    ids=["quantile", "kbins", "periodic_spline", "one_hot_drop", "one_hot_infrequent", "imputer_indicator"],
)
def test_an_unsupported_step_is_refused_with_a_clear_error(transformers, message):
    encoder = _fitted(transformers)

    with pytest.raises(fast.UnsupportedTransformer, match=message):
        fast.encode(encoder, _requests())


def test_a_model_that_is_not_linear_is_refused():
    model = HistGradientBoostingRegressor(max_iter=5).fit(np.random.default_rng(0).random((50, 2)), np.arange(50))

    with pytest.raises(fast.UnsupportedTransformer, match="not a linear model"):
        fast.linear(model, np.zeros((1, 2)))


def _classifier_pipeline() -> Pipeline:
    encoder = ColumnTransformer(
        [
            ("category", OneHotEncoder(handle_unknown="ignore"), ["colour", "size"]),
            ("log", _log_scale(), ["amount", "count"]),
            ("flags", "passthrough", ["flag", "ratio"]),
        ]
    )
    steps = [("encode", encoder), ("interactions", PolynomialFeatures(interaction_only=True, include_bias=False))]
    return Pipeline([*steps, ("classifier", LogisticRegression(max_iter=2000))])


def test_decision_function_equals_the_pipelines_for_a_classifier_and_a_regressor():
    training, requests = _training(), _requests()
    label = (training["ratio"] + (training["colour"] == "red") > 0.3).to_numpy(dtype=int)
    classifier = _classifier_pipeline().fit(training, label)
    regressor = Pipeline([("encode", ColumnTransformer(KINDS["spline_constant_quantile"])), ("model", Ridge())])
    regressor.fit(training, training["ratio"])

    _assert_same(fast.decision_function(classifier, requests), classifier.decision_function(requests))
    _assert_same(fast.decision_function(regressor, requests), regressor.predict(requests))
    probability = fast.sigmoid(fast.decision_function(classifier, requests))
    _assert_same(probability, classifier.predict_proba(requests)[:, 1])


def test_linear_from_columns_equals_the_encoded_model_without_building_the_one_hot_columns():
    # Given a linear model on wide one-hot cells (integer and string categories, some given out of order)
    training, requests = _training(), _requests()
    encoder = ColumnTransformer(
        [
            ("cells", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["cell", "colour"]),
            ("size", OneHotEncoder(categories=[["xl", "s", "m", "l"]], handle_unknown="ignore"), ["size"]),
            ("numbers", StandardScaler(), NUMBERS),
        ],
        transformer_weights={"numbers": 3.0},
    )
    pipeline = Pipeline([("encode", encoder), ("model", Ridge())]).fit(training, training["ratio"])

    # Then the look-up evaluation is the pipeline's prediction, unknown categories adding nothing
    fitted = pipeline.named_steps["encode"]
    result = fast.linear_from_columns(fitted, pipeline.named_steps["model"], fast.frame_columns(requests))
    _assert_same(result, pipeline.predict(requests))
    assert result[2] == pytest.approx(  # cell 99 is unknown: the row without any cell coefficient
        pipeline.predict(requests.iloc[[2]].assign(cell=-1))[0], abs=1e-9
    )


def test_frame_columns_reads_the_named_columns_as_arrays():
    frame = _training(5)

    columns = fast.frame_columns(frame, ["size", "amount"])
    numbers = fast.frame_columns(frame, ["count", "amount"], dtype=np.float64)

    assert list(columns) == ["size", "amount"]
    assert columns["size"].tolist() == frame["size"].tolist()
    assert numbers["count"].dtype == np.float64
    np.testing.assert_array_equal(numbers["amount"], frame["amount"].to_numpy())
    with pytest.raises(KeyError, match="missing"):
        fast.frame_columns(frame, ["missing"])


@pytest.mark.parametrize("extrapolation", ["constant", "continue"])
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_splines_on_tied_values_equal_scikit_learn_at_and_beyond_the_repeated_knots(degree, extrapolation):
    # Given quantile knots on columns with many tied values at their minimum and their maximum
    # (a floor of 1.0 on one column, a cap of 9.0 on the other): knots repeat at both ends
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, (500, 2))
    x[:, 0] = np.maximum(x[:, 0], 1.0)
    x[:300, 0] = 1.0
    x[:, 1] = np.minimum(x[:, 1], 9.0)
    x[100:400, 1] = 9.0
    spline = SplineTransformer(n_knots=5, degree=degree, knots="quantile", extrapolation=extrapolation).fit(x)
    assert all(len(np.unique(s.t)) < len(s.t) for s in spline.bsplines_)  # knots repeat in both columns

    # When rows at, below and above those knots are encoded
    requests = np.vstack([x[:50], [[1.0, 9.0], [-3.0, 20.0], [20.0, -3.0], [1.0, 1.0], [9.0, 9.0]]])

    # Then the numpy path gives scikit-learn's (finite) values
    _assert_same(fast.transform(spline, requests), spline.transform(requests))
