"""Demand forecast: billable hours clients will request from a service line, month by month.

What the user gets
------------------
For one series (a service line in a region) described by its recent history, the forecast of
billable hours requested in each of the next ``horizon`` months (1 to 24, default 6), each with
an 80% interval, plus the first month's forecast as the main score (``next_month_hours``), the
total over the horizon and the first month's change against the same month last year.

Generator (the synthetic world)
-------------------------------
Monthly series, one per (service line, region) business unit, four years long. Log demand is

    log(base) + month_index * log(1 + annual growth) / 12 + amplitude * season(line, region, month)
    + level random walk (0.015 a month) + AR(1) noise (rho 0.5)

- ``base``: typical monthly hours of the line (software engineering ~8,000, training ~500),
  scaled by region (North America 1.4 ... Latin America 0.35) and a log-normal unit size.
- annual growth ~ N(8%, 15%), clipped to [-50%, +80%].
- ``season``: a services calendar in log terms: a slow January, the Q1 close, the summer dip
  (August deepest in Europe), the autumn peak and the December holidays; training peaks in
  September-October and collapses in summer, cloud operations are nearly flat, APAC dips at
  Lunar New Year, Latin America in its January-February summer. Each series scales it by an
  amplitude drawn from [0.7, 1.3].
- noise: the fewer clients a series has, the lumpier it is: sd = 0.03 + 0.30 / sqrt(clients).

One row per (series, month) for the last two years: the features describe the history before
that month (12- and 3-month averages, the last month, the same month last year, the growth of
the last 12 months over the 12 before, active clients), ``start_month`` is the calendar month
of the row and the target ``demand_hours`` is the demand in it. ``horizon`` is drawn uniformly
(it is a request option, not a driver). Truth columns: ``truth_expected_hours`` (the expected
demand given the past, what a perfect forecaster would say), ``truth_series`` and
``truth_period`` (which series and which of its 24 months the row is, so that multi-month
forecasts can be checked against later rows of the same series), ``truth_annual_growth_pct``.

``drift`` (0..1) brings a downturn and a change of rhythm: growth falls by up to 15 points a
year, units are smaller (lumpier) and seasonal swings grow by up to 50% (the relationship
between month and demand changes).

Model
-----
Both models predict ``log1p(hours) - log1p(12-month average)``, the month against the recent
level, with ``Ridge`` on one-hot (service line x month) and (region x month) cells, the growth
and, for the first month only, the ratios of last month, the 3-month average and the same
month last year to the 12-month average (also weighted by 1/sqrt(clients), because a lumpy
series' last values say less).

- Month 1 (the main score) uses that lag-aware model: the request carries lags for it only.
- Months 2.. use the profile model (line x month, region x month, growth) evaluated for the
  month in question, plus the trend carried forward: (step - 1) * log(1 + growth) / 12. This
  is the direct-per-step scheme; nothing is fed back recursively.

Forecasts are medians (the exponent of a predicted log), which suits absolute-percentage
errors. Intervals are split-conformal: a quarter of the rows is held out; a second ``Ridge``
predicts the size of the log error (lumpy series get wider intervals) and the 10% and 90%
quantiles of the held-out errors over that size give the 80% interval. Beyond the first month
the interval widens like a random-walk level, ``sqrt(1 + 0.13 * (step - 1))`` times the
profile model's one-step width. The training rows are one month ahead, so this rate cannot be
learned from them: 0.13 was set so that the generator's series are covered at about 80% up to
a year ahead (the tests check months 2-12 against later rows of the same series); with real
data, check it the same way.

Serving evaluates the linear models with numpy from their fitted parameters
(``fast.linear_from_columns``: one-hot cells become coefficient look-ups), identical to
``Pipeline.predict`` (checked by the tests).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from predictions.catalog import compiled, fast
from predictions.catalog.base import CatalogModel, Feature, Target, split_conformal_levels, split_holdout

SERVICE_LINES = ("strategy", "software_engineering", "data_analytics", "design", "cloud_operations", "training")
SERVICE_LINE_SHARE = (0.15, 0.30, 0.20, 0.12, 0.13, 0.10)
SERVICE_LINE_HOURS = np.array([1_500.0, 8_000.0, 3_000.0, 1_200.0, 2_500.0, 500.0])  # typical month
REGIONS = ("north_america", "europe", "uk", "apac", "latam")
REGION_SHARE = (0.35, 0.25, 0.15, 0.15, 0.10)
REGION_SCALE = np.array([1.4, 1.0, 0.7, 0.6, 0.35])

# Seasonality in log terms, January..December: the services calendar shared by everyone,
# then what each service line and each region adds.
CALENDAR = np.array([-0.10, 0.00, 0.05, 0.00, 0.00, 0.03, -0.05, -0.12, 0.05, 0.08, 0.05, -0.20])
LINE_SEASON = np.array(
    [
        [0.05, 0.00, 0.00, 0.00, 0.00, 0.00, -0.05, -0.05, 0.00, 0.10, 0.10, 0.00],  # strategy: budget season
        [0.04, 0.00, -0.02, 0.00, 0.00, -0.01, 0.02, 0.05, -0.02, -0.03, -0.02, 0.08],  # engineering: flatter
        [0.08, 0.08, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],  # data: year-end reporting
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.10, 0.10, 0.10, -0.10],  # design: campaigns
        [0.08, 0.00, -0.04, 0.00, 0.00, -0.03, 0.04, 0.09, -0.04, -0.06, 0.00, 0.16],  # cloud: flat, Nov peak
        [0.15, 0.15, 0.10, 0.00, -0.05, -0.05, -0.30, -0.23, 0.20, 0.17, 0.00, -0.10],  # training: terms
    ]
)
REGION_SEASON = np.array(
    [
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, -0.03, 0.02, 0.00, 0.00, -0.04, -0.03],  # Thanksgiving
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, -0.03, -0.15, 0.00, 0.00, 0.00, 0.00],  # European August
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, -0.02, -0.05, 0.00, 0.00, 0.00, -0.05],
        [0.00, -0.12, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.05],  # Lunar New Year
        [-0.15, -0.10, 0.00, 0.00, 0.00, 0.00, -0.05, 0.05, 0.00, 0.00, 0.00, 0.00],  # southern summer
    ]
)
SEASON = CALENDAR + LINE_SEASON[:, None, :] + REGION_SEASON[None, :, :]
SEASON = SEASON - SEASON.mean(axis=2, keepdims=True)  # [line, region, month], averages to zero

HISTORY_MONTHS = 24  # months before the first row: the features need two years of history
ROWS_PER_SERIES = 24
AR_RHO = 0.5
LEVEL_WALK_SD = 0.015  # a month
MAX_HOURS = 2_000_000.0

INTERVAL_LEVEL = 0.80
WIDENING_PER_STEP = 0.13  # interval variance grows like a random-walk level beyond month 1
DEFAULT_HORIZON = 6
MAX_HORIZON = 24
MIN_ERROR_SCALE = 0.01  # log units: floor of the predicted error size

CATEGORY_COLUMNS = ["line_month", "region_month"]
LAG_COLUMNS = [
    "growth",
    "last_year_ratio",
    "last_month_ratio",
    "quarter_ratio",
    "lumpiness",
    "last_year_ratio_lumpy",
    "last_month_ratio_lumpy",
    "quarter_ratio_lumpy",
]
PROFILE_COLUMNS = ["growth", "lumpiness"]


class DemandModel(CatalogModel):
    slug = "demand"
    title = "Demand forecast"
    task = "forecast"
    summary = "Billable hours a service line will be asked for, month by month, with 80% intervals."
    entity_label = "service line"
    main_score = "next_month_hours"
    target = Target(
        name="demand_hours",
        kind="number",
        unit="hours",
        description="Billable hours clients requested from the service line in the region in the month.",
    )
    features = (
        Feature(
            "service_line",
            "category",
            "The service line whose demand is forecast.",
            example="data_analytics",
            categories=SERVICE_LINES,
        ),
        Feature(
            "region",
            "category",
            "The region the service line sells in.",
            example="europe",
            categories=REGIONS,
        ),
        Feature(
            "start_month",
            "integer",
            "Calendar month of the first forecast month (1 = January).",
            example=9,
            unit="month",
            minimum=1,
            maximum=12,
        ),
        Feature(
            "avg_monthly_hours_12m",
            "number",
            "Average monthly hours requested over the last 12 months.",
            example=3_200.0,
            unit="hours",
            minimum=0,
            maximum=MAX_HOURS,
        ),
        Feature(
            "avg_monthly_hours_3m",
            "number",
            "Average monthly hours requested over the last 3 months.",
            example=3_050.0,
            unit="hours",
            minimum=0,
            maximum=MAX_HOURS,
        ),
        Feature(
            "last_month_hours",
            "number",
            "Hours requested in the month just before the first forecast month.",
            example=2_700.0,
            unit="hours",
            minimum=0,
            maximum=MAX_HOURS,
        ),
        Feature(
            "same_month_last_year_hours",
            "number",
            "Hours requested in the first forecast month's calendar month one year earlier.",
            example=3_100.0,
            unit="hours",
            minimum=0,
            maximum=MAX_HOURS,
        ),
        Feature(
            "yoy_growth_pct",
            "number",
            "Hours of the last 12 months against the 12 months before, as a percent change.",
            example=9.0,
            unit="%",
            minimum=-100,
            maximum=1_000,
        ),
        Feature(
            "active_clients",
            "integer",
            "Clients who requested hours from the service line in the last 12 months.",
            example=25,
            unit="clients",
            minimum=1,
            maximum=10_000,
        ),
        Feature(
            "horizon",
            "integer",
            "How many months to forecast, starting with start_month.",
            example=6,
            unit="months",
            minimum=1,
            maximum=MAX_HORIZON,
            required=False,
            default=DEFAULT_HORIZON,
        ),
    )

    # --- Generator ------------------------------------------------------------------------

    def generate(self, n: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        d = float(np.clip(drift, 0.0, 1.0))
        series = -(-n // ROWS_PER_SERIES)
        months = HISTORY_MONTHS + ROWS_PER_SERIES

        line = rng.choice(len(SERVICE_LINES), series, p=SERVICE_LINE_SHARE)
        region = rng.choice(len(REGIONS), series, p=REGION_SHARE)
        base = SERVICE_LINE_HOURS[line] * REGION_SCALE[region] * np.exp(rng.normal(-0.4 * d, 0.7, series))
        hours_per_client = np.exp(rng.normal(np.log(120.0), 0.5, series))
        clients = np.clip(np.round(base / hours_per_client), 1, 5_000)
        noise_sd = 0.03 + 0.30 / np.sqrt(clients)
        growth = np.clip(rng.normal(0.08 - 0.15 * d, 0.15, series), -0.5, 0.8)
        amplitude = rng.uniform(0.7, 1.3, series) * (1 + 0.5 * d)
        first_month = rng.integers(0, 12, series)

        index = np.arange(months)
        month = (first_month[:, None] + index[None, :]) % 12
        walk = np.cumsum(rng.normal(0.0, LEVEL_WALK_SD, (series, months)), axis=1)
        mean_log = (
            np.log(base)[:, None]
            + index[None, :] * np.log1p(growth)[:, None] / 12
            + amplitude[:, None] * SEASON[line[:, None], region[:, None], month]
            + walk
        )
        innovation = rng.standard_normal((series, months)) * (noise_sd * math.sqrt(1 - AR_RHO**2))[:, None]
        noise = np.empty((series, months))
        noise[:, 0] = innovation[:, 0] / math.sqrt(1 - AR_RHO**2)
        for t in range(1, months):  # AR(1) across 48 months, vectorised over the series
            noise[:, t] = AR_RHO * noise[:, t - 1] + innovation[:, t]
        hours = np.minimum(np.round(np.exp(mean_log + noise), 1), MAX_HOURS)

        cumulative = np.concatenate([np.zeros((series, 1)), np.cumsum(hours, axis=1)], axis=1)
        rows = np.arange(HISTORY_MONTHS, months)
        sum_12 = cumulative[:, rows] - cumulative[:, rows - 12]
        sum_24 = cumulative[:, rows - 12] - cumulative[:, rows - 24]
        sum_3 = cumulative[:, rows] - cumulative[:, rows - 3]
        # What a perfect forecaster expects: the mean of a log-normal given the past.
        step_variance = (noise_sd**2)[:, None] * (1 - AR_RHO**2) + LEVEL_WALK_SD**2
        expected = np.exp(mean_log[:, rows] - walk[:, rows] + walk[:, rows - 1])  # this month's step unknown
        expected = expected * np.exp(AR_RHO * noise[:, rows - 1] + step_variance / 2)
        client_counts = np.clip(np.round(clients[:, None] * np.exp(rng.normal(0, 0.05, sum_12.shape))), 1, 10_000)

        frame = pd.DataFrame(
            {
                "service_line": np.repeat(np.asarray(SERVICE_LINES, dtype=object)[line], ROWS_PER_SERIES),
                "region": np.repeat(np.asarray(REGIONS, dtype=object)[region], ROWS_PER_SERIES),
                "start_month": (month[:, rows] + 1).ravel().astype(np.int64),
                "avg_monthly_hours_12m": np.round(sum_12 / 12, 1).ravel(),
                "avg_monthly_hours_3m": np.round(sum_3 / 3, 1).ravel(),
                "last_month_hours": hours[:, rows - 1].ravel(),
                "same_month_last_year_hours": hours[:, rows - 12].ravel(),
                "yoy_growth_pct": np.clip(np.round(100 * (sum_12 / sum_24 - 1), 2), -100, 1_000).ravel(),
                "active_clients": client_counts.ravel().astype(np.int64),
                "horizon": rng.integers(1, MAX_HORIZON + 1, series * ROWS_PER_SERIES),
                "demand_hours": hours[:, rows].ravel(),
                "truth_expected_hours": expected.ravel(),
                "truth_series": np.repeat(np.arange(series), ROWS_PER_SERIES),
                "truth_period": np.tile(np.arange(ROWS_PER_SERIES), series),
                "truth_annual_growth_pct": np.repeat(100 * growth, ROWS_PER_SERIES),
            }
        )
        return frame.iloc[:n].reset_index(drop=True)

    # --- Training -------------------------------------------------------------------------

    def fit(self, frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
        names = [*(name for name in self.feature_names() if name != "horizon"), self.target.name]
        train, calibration = split_holdout(frame[names], fraction=0.25, seed=seed)
        design = _design(fast.frame_columns(train))
        target = _log_ratio(train[self.target.name].to_numpy(dtype=float), design)
        table = pd.DataFrame(design)
        artifact: dict[str, Any] = {"interval_level": INTERVAL_LEVEL, "widening_per_step": WIDENING_PER_STEP}

        cal_design = _design(fast.frame_columns(calibration))
        cal_target = _log_ratio(calibration[self.target.name].to_numpy(dtype=float), cal_design)
        lower_level, upper_level = split_conformal_levels(len(cal_target), INTERVAL_LEVEL)
        from sklearn.linear_model import Ridge  # training only: serving never imports scikit-learn

        for name, numeric in (("first_month", LAG_COLUMNS), ("profile", PROFILE_COLUMNS)):
            pipeline = _pipeline(numeric).fit(table, target)
            encoded = pipeline[:-1].transform(table)
            # The error model learns the size of the in-sample error; the calibration split sets its level.
            error_model = Ridge(alpha=1.0).fit(encoded, np.abs(target - pipeline[-1].predict(encoded)))
            prediction, scale = _predict_log(pipeline, error_model, cal_design)
            score = (cal_target - prediction) / scale
            artifact[name] = {
                "pipeline": pipeline,
                "error_model": error_model,
                "score_lower": float(np.quantile(score, lower_level)),
                "score_upper": float(np.quantile(score, upper_level)),
            }
        return artifact

    # --- Answers --------------------------------------------------------------------------

    def predict(self, artifact: dict[str, Any], frame: pd.DataFrame) -> list[dict[str, Any]]:
        columns = fast.frame_columns(frame)
        forecast, lower, upper, horizon = _forecast(artifact, columns)
        start = np.asarray(columns["start_month"], dtype=np.int64)
        last_year = np.asarray(columns["same_month_last_year_hours"], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.where(last_year > 0, 100 * (forecast[:, 0] / last_year - 1), np.nan)
        forecast_list = np.round(forecast, 1).tolist()
        lower_list = np.round(lower, 1).tolist()
        upper_list = np.round(upper, 1).tolist()
        level = float(artifact["interval_level"])
        answers = []
        for row, (steps, first_month) in enumerate(zip(horizon.tolist(), start.tolist(), strict=True)):
            values, lows, highs = forecast_list[row][:steps], lower_list[row][:steps], upper_list[row][:steps]
            periods = [
                {
                    "offset": k + 1,
                    "month": (first_month - 1 + k) % 12 + 1,
                    "forecast_hours": values[k],
                    "lower_hours": lows[k],
                    "upper_hours": highs[k],
                }
                for k in range(steps)
            ]
            vs_last_year = float(change[row])
            answers.append(
                {
                    "next_month_hours": values[0],
                    "next_month_lower_hours": lows[0],
                    "next_month_upper_hours": highs[0],
                    "horizon": steps,
                    "total_hours": round(float(forecast[row, :steps].sum()), 1),
                    "vs_same_month_last_year_pct": round(vs_last_year, 2) if math.isfinite(vs_last_year) else None,
                    "interval_level": level,
                    "periods": periods,
                }
            )
        return answers

    def evaluate(self, artifact: dict[str, Any], frame: pd.DataFrame) -> dict[str, float]:
        columns = fast.frame_columns(frame.drop(columns=["horizon"], errors="ignore"))
        columns["horizon"] = np.ones(len(frame), dtype=np.int64)
        forecast, lower, upper, _ = _forecast(artifact, columns)
        first, low, high = forecast[:, 0], lower[:, 0], upper[:, 0]
        actual = frame[self.target.name].to_numpy(dtype=float)
        naive = frame["same_month_last_year_hours"].to_numpy(dtype=float)
        positive = actual > 0  # percentage errors are undefined on empty months
        mape = float(np.mean(np.abs(actual - first)[positive] / actual[positive]))
        naive_mape = float(np.mean(np.abs(actual - naive)[positive] / actual[positive]))
        return {
            "mape": mape,
            "seasonal_naive_mape": naive_mape,
            "mape_improvement_vs_seasonal_naive": 1 - mape / naive_mape if naive_mape > 0 else 0.0,
            "wape": float(np.sum(np.abs(actual - first)) / np.sum(np.abs(actual))),
            "mae_hours": float(np.mean(np.abs(actual - first))),
            "bias_pct": float(100 * (np.sum(first) / np.sum(actual) - 1)),
            "interval_coverage": float(np.mean((actual >= low) & (actual <= high))),
            "interval_relative_width": float(np.median((high - low) / np.maximum(first, 1.0))),
            "rows": float(len(frame)),
        }


# --- Features and models ----------------------------------------------------------------------

_LINE_CODE = {name: i for i, name in enumerate(SERVICE_LINES)}
_REGION_CODE = {name: i for i, name in enumerate(REGIONS)}


def _cell(codes: np.ndarray, month_index: np.ndarray) -> np.ndarray:
    """A (category, month) cell as one integer; -1 for a category the schema does not know."""
    return np.where(codes >= 0, codes * 12 + month_index, -1)


def _design(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model inputs: the month against the recent level, computed from the feature columns."""

    def number(name: str) -> np.ndarray:
        return np.asarray(columns[name], dtype=float)

    level = np.log1p(number("avg_monthly_hours_12m"))
    lumpiness = 1 / np.sqrt(np.maximum(number("active_clients"), 1.0))
    line = np.array([_LINE_CODE.get(value, -1) for value in columns["service_line"].tolist()], dtype=np.int64)
    region = np.array([_REGION_CODE.get(value, -1) for value in columns["region"].tolist()], dtype=np.int64)
    month_index = np.asarray(columns["start_month"], dtype=np.int64) - 1
    last_year = np.log1p(number("same_month_last_year_hours")) - level
    last_month = np.log1p(number("last_month_hours")) - level
    quarter = np.log1p(number("avg_monthly_hours_3m")) - level
    return {
        "level": level,
        "line": line,
        "region": region,
        "month_index": month_index,
        "line_month": _cell(line, month_index),
        "region_month": _cell(region, month_index),
        "growth": np.log1p(np.maximum(number("yoy_growth_pct"), -99.0) / 100),
        "last_year_ratio": last_year,
        "last_month_ratio": last_month,
        "quarter_ratio": quarter,
        "lumpiness": lumpiness,
        "last_year_ratio_lumpy": last_year * lumpiness,
        "last_month_ratio_lumpy": last_month * lumpiness,
        "quarter_ratio_lumpy": quarter * lumpiness,
    }


def _log_ratio(hours: np.ndarray, design: dict[str, np.ndarray]) -> np.ndarray:
    return np.log1p(hours) - design["level"]


def _pipeline(numeric: list[str]) -> Any:
    """The scikit-learn pipeline to fit (imported here: serving never imports scikit-learn)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = ColumnTransformer(
        [
            ("cells", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORY_COLUMNS),
            ("numbers", StandardScaler(), numeric),
        ]
    )
    return Pipeline([("features", features), ("model", Ridge(alpha=1.0))])


def _forecast(artifact: dict[str, Any], columns: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Forecast, lower and upper hours, each (rows x longest horizon), and each row's horizon."""
    design = _design(columns)
    rows = len(design["level"])
    raw_horizon = np.asarray(columns.get("horizon", np.full(rows, DEFAULT_HORIZON)), dtype=float)
    horizon = np.clip(np.nan_to_num(raw_horizon, nan=DEFAULT_HORIZON), 1, MAX_HORIZON).astype(np.int64)
    steps = int(horizon.max()) if rows else 1
    widening = float(artifact["widening_per_step"])

    first = artifact["first_month"]
    center, scale = _predict_log(first["pipeline"], first["error_model"], design)
    log_center = np.empty((rows, steps))
    log_lower = np.empty((rows, steps))
    log_upper = np.empty((rows, steps))
    log_center[:, 0] = center
    log_lower[:, 0] = center + first["score_lower"] * scale
    log_upper[:, 0] = center + first["score_upper"] * scale

    profile = artifact["profile"]
    # The profile depends on the calendar month only: evaluate it once per distinct month, all
    # rows and months in one vectorised call, then carry the trend forward per step.
    offsets = sorted({step % 12 for step in range(1, steps)})
    if offsets:
        month_index = np.concatenate([(design["month_index"] + offset) % 12 for offset in offsets])
        repeats = len(offsets)
        stacked = {name: np.tile(design[name], repeats) for name in ["level", *PROFILE_COLUMNS]}
        stacked["line_month"] = _cell(np.tile(design["line"], repeats), month_index)
        stacked["region_month"] = _cell(np.tile(design["region"], repeats), month_index)
        centers, scales = (
            values.reshape(repeats, rows)
            for values in _predict_log(profile["pipeline"], profile["error_model"], stacked)
        )
        monthly_trend = design["growth"] / 12
        for step in range(1, steps):
            slot = offsets.index(step % 12)
            carried = centers[slot] + step * monthly_trend
            width = math.sqrt(1 + widening * step)
            log_center[:, step] = carried
            log_lower[:, step] = carried + profile["score_lower"] * scales[slot] * width
            log_upper[:, step] = carried + profile["score_upper"] * scales[slot] * width

    level = design["level"][:, None]

    def hours(log_ratio: np.ndarray) -> np.ndarray:
        return np.clip(np.expm1(level + log_ratio), 0.0, None)

    return hours(log_center), hours(log_lower), hours(log_upper), horizon


def _predict_log(
    pipeline: compiled.Pipeline, error_model: compiled.LinearModel, design: dict[str, np.ndarray]
) -> tuple[np.ndarray, ...]:
    """Predicted log ratio and predicted error size, from the fitted parameters with numpy."""
    # One-hot cells become coefficient look-ups: nothing of the width of the encoding is built.
    pipeline = compiled.of(pipeline)
    features = pipeline.named_steps["features"]
    center = fast.linear_from_columns(features, pipeline.named_steps["model"], design)
    scale = np.maximum(fast.linear_from_columns(features, error_model, design), MIN_ERROR_SCALE)
    return center, scale


MODEL = DemandModel()
