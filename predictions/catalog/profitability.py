"""Client profitability: next year's margin and profit for a client, with an interval and a band.

What the user gets
------------------
For each client: the predicted contribution margin over the next twelve months (``margin_pct``,
the main score), the profit it implies on the client's expected revenue, an 80% interval for both,
the probability that the account loses money, and a band:

- ``loss_making``: predicted margin below 0%;
- ``thin``: 0% to 15% (covers delivery but not a fair share of company overhead);
- ``healthy``: 15% to 30%;
- ``strong``: 30% and above.

Profit is ``margin * annual_revenue``: ``annual_revenue`` is the client's expected billings for
the next twelve months (its run rate), taken as known, so the profit interval is the margin
interval times the revenue.

Generator (the synthetic world)
-------------------------------
One row per client. Inputs are drawn with realistic dependencies: revenue is log-normal (median
~350k); larger and older accounts are more often strategic and get bigger discounts; list rates
depend on the region and the industry; the loaded cost of a paid staff hour is ~46% of the rate;
public-sector clients buy more fixed-price work; new accounts overrun their estimates more.

The expected margin (``truth_margin_pct``) follows the services P&L per billed hour:

- realised rate = rate * (1 - discount) * (1 - write-off);
- delivery cost per billed hour = (employee share * cost rate / utilisation
  + subcontractor share * 0.80 * rate) * (1 + fixed-price share * max(overrun, -10%)):
  employees are paid for unbilled hours too, subcontractors only for the hours they bill, and
  overruns on fixed-price work are delivered but not billed;
- margin = 1 - cost / realised rate, minus financing of receivables (8% a year over the payment
  terms, plus 0.3% bad debt per 30 days of terms), minus onboarding (5% at age 0, fading with a
  0.75-year time constant), minus account management (9,000 a year, a heavy weight on small
  clients), minus 1.5 points of relationship investment on strategic accounts, plus a small
  industry effect (public sector -1.5 points for bid and compliance work, retail -1, financial
  services +1, energy +0.5).

The observed next-year margin (``margin_pct``, the target) adds noise whose standard deviation
(``truth_margin_sd_pct``) is 3 points plus 7 points per unit of fixed-price share plus a
small-client term: fixed-price books and small accounts are less predictable.
``truth_loss_probability`` is the chance that the observed margin falls below zero.

``drift`` (0..1) moves the world towards a downturn: wage inflation lifts cost rates relative to
list rates (+8 points of cost ratio), utilisation falls (-8 points), discounts and overruns grow,
clients get smaller and pay later, and the relationship shifts too: account management costs 50%
more and subcontractors cost 85% instead of 80% of the rate.

Model
-----
The accounting identities a finance team would use are computed from the features (the cost of
employees per realised hour, the subcontracted share per realised hour, the fixed-price overrun
load, 1/revenue); a ``Ridge`` regression learns how they combine (degree-2 interactions), with
splines on revenue, account age and overrun, and one-hot industry and region. A second ``Ridge``
on the same encoded features predicts the size of the error (fixed-price and small accounts are
noisier). The interval is split-conformal: 25% of the training rows are held out as a calibration
split; the errors there, divided by the predicted error size, give the 10% and 90% quantiles
(an 80% interval) and the distribution used for the loss probability.

Serving computes the linear pipeline directly from its fitted parameters with numpy
(``fast.encode``, identical to ``Pipeline.predict``, checked by the tests), because a one-row
call through scikit-learn's validation layers costs milliseconds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from predictions.catalog import compiled, fast
from predictions.catalog.base import CatalogModel, Feature, Target, split_conformal_levels, split_holdout

REGIONS = ("north_america", "europe", "uk", "apac", "latam")
REGION_SHARE = (0.35, 0.25, 0.15, 0.15, 0.10)
REGION_LIST_RATE = np.array([185.0, 150.0, 165.0, 115.0, 75.0])  # blended list rate per hour

INDUSTRIES = (
    "financial_services",
    "technology",
    "healthcare",
    "public_sector",
    "retail",
    "manufacturing",
    "energy",
)
INDUSTRY_SHARE = (0.20, 0.20, 0.12, 0.15, 0.13, 0.12, 0.08)
INDUSTRY_RATE_FACTOR = np.array([1.15, 1.05, 1.0, 0.85, 0.95, 0.95, 1.10])
INDUSTRY_MARGIN_EFFECT = np.array([0.01, 0.0, 0.0, -0.015, -0.01, 0.0, 0.005])
PUBLIC_SECTOR = INDUSTRIES.index("public_sector")
HIGH_WRITE_OFF = [INDUSTRIES.index("technology"), INDUSTRIES.index("retail")]

PAYMENT_TERMS = np.array([15, 30, 45, 60, 90])
COST_OF_CAPITAL = 0.08  # a year, financing receivables
BAD_DEBT_PER_30_DAYS = 0.003
ACCOUNT_MANAGEMENT_COST = 9_000.0  # a year per client, whatever its size
SUBCONTRACTOR_COST_SHARE = 0.80  # subcontractor cost per hour as a share of the list rate

INTERVAL_LEVEL = 0.80  # the interval holds the outcome four times out of five
BANDS = (  # (name, lower bound of the predicted margin in %), ascending
    ("loss_making", -math.inf),
    ("thin", 0.0),  # covers delivery, not a fair share of overhead
    ("healthy", 15.0),
    ("strong", 30.0),
)
BAND_LOWER_BOUNDS = np.array([lower for _, lower in BANDS[1:]])
MIN_ERROR_SCALE = 0.5  # margin points: floor of the predicted error size


def band_for(margin_pct: float) -> str:
    """The band a predicted margin (in %) falls in."""
    return BANDS[int(np.searchsorted(BAND_LOWER_BOUNDS, margin_pct, side="right"))][0]


class ProfitabilityModel(CatalogModel):
    slug = "profitability"
    title = "Client profitability"
    task = "regression"
    summary = "Next year's margin and profit for a client, with an 80% interval, a loss probability and a band."
    entity_label = "client"
    main_score = "margin_pct"
    target = Target(
        name="margin_pct",
        kind="number",
        unit="%",
        description="Contribution margin over the next twelve months: (revenue - delivery cost) / revenue.",
    )
    features = (
        Feature(
            "annual_revenue",
            "number",
            "Expected billings to the client over the next twelve months (its run rate).",
            example=420_000.0,
            unit="currency",
            minimum=10_000,
            maximum=50_000_000,
        ),
        Feature(
            "billable_utilisation_pct",
            "number",
            "Share of the paid hours of the client's team that are billed to it.",
            example=74.0,
            unit="%",
            minimum=10,
            maximum=100,
        ),
        Feature(
            "blended_rate",
            "number",
            "Average list rate per billed hour across the client's team, before discounts.",
            example=160.0,
            unit="currency per hour",
            minimum=20,
            maximum=1_000,
        ),
        Feature(
            "cost_rate",
            "number",
            "Average loaded cost per paid hour of the client's employed staff (salary, benefits, equipment).",
            example=72.0,
            unit="currency per hour",
            minimum=5,
            maximum=800,
        ),
        Feature(
            "discount_pct",
            "number",
            "Average discount off list rates granted to the client.",
            example=6.0,
            unit="%",
            minimum=0,
            maximum=60,
        ),
        Feature(
            "fixed_price_share_pct",
            "number",
            "Share of the client's revenue sold as fixed-price projects (the rest is time and materials).",
            example=35.0,
            unit="%",
            minimum=0,
            maximum=100,
        ),
        Feature(
            "estimate_overrun_pct",
            "number",
            "Average effort overrun on the client's past fixed-price projects (negative: finished under estimate).",
            example=8.0,
            unit="%",
            minimum=-50,
            maximum=200,
            required=False,
            default=8.0,
        ),
        Feature(
            "subcontractor_share_pct",
            "number",
            "Share of the client's billed hours delivered by subcontractors.",
            example=10.0,
            unit="%",
            minimum=0,
            maximum=100,
            required=False,
            default=0.0,
        ),
        Feature(
            "write_off_pct",
            "number",
            "Share of billed time written off or credited (disputes, goodwill).",
            example=2.0,
            unit="%",
            minimum=0,
            maximum=50,
            required=False,
            default=2.0,
        ),
        Feature(
            "payment_terms_days",
            "integer",
            "Contractual payment terms.",
            example=30,
            unit="days",
            minimum=0,
            maximum=180,
            required=False,
            default=30,
        ),
        Feature(
            "account_age_years",
            "number",
            "Time since the client's first engagement.",
            example=3.5,
            unit="years",
            minimum=0,
            maximum=60,
        ),
        Feature(
            "is_strategic_account",
            "boolean",
            "Whether the client is a named strategic account (extra unbilled relationship work).",
            example=False,
            required=False,
            default=False,
        ),
        Feature(
            "industry",
            "category",
            "The client's industry.",
            example="technology",
            categories=INDUSTRIES,
        ),
        Feature(
            "region",
            "category",
            "The region the client is served from.",
            example="europe",
            categories=REGIONS,
        ),
    )

    # --- Generator ------------------------------------------------------------------------

    def generate(self, n: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        d = float(np.clip(drift, 0.0, 1.0))
        region = rng.choice(len(REGIONS), n, p=REGION_SHARE)
        industry = rng.choice(len(INDUSTRIES), n, p=INDUSTRY_SHARE)
        public = industry == PUBLIC_SECTOR

        revenue = np.clip(np.exp(rng.normal(np.log(350_000.0) - 0.3 * d, 1.0, n)), 20_000, 20_000_000).round(2)
        size = np.log(revenue / 350_000.0)
        age = np.clip(rng.gamma(1.5, 3.0, n), 0.0, 40.0).round(1)
        strategic = rng.random(n) < 1.0 / (1.0 + np.exp(-(-2.5 + 1.2 * size + 0.1 * age)))
        rate = np.clip(
            REGION_LIST_RATE[region] * INDUSTRY_RATE_FACTOR[industry] * np.exp(rng.normal(0.0, 0.18, n)), 30, 600
        ).round(2)
        cost_ratio = np.clip(rng.normal(0.46 + 0.08 * d, 0.07, n), 0.25, 0.80)
        cost_rate = np.clip(rate * cost_ratio, 10, 450).round(2)
        utilisation = np.clip(100 * rng.beta(8.0, 3.0, n) - 8 * d, 30, 99).round(1)
        discount = np.clip(rng.gamma(2.0, 2.5, n) + 4 * strategic + 1.5 * size + 5 * d, 0, 50).round(1)
        fixed_share = np.clip(100 * rng.beta(1.3, 2.2, n) + 15 * public, 0, 100).round(1)
        overrun = np.clip(rng.normal(8 + 6 * d, 12, n) + 5 * (age < 1), -20, 80).round(1)
        subcontracted = np.clip(100 * rng.beta(0.8, 6.0, n), 0, 70).round(1)
        write_off = np.clip(rng.gamma(1.2, 1.5, n) + 1.0 * np.isin(industry, HIGH_WRITE_OFF), 0, 30).round(1)
        later = min(0.15 * d, 0.1)  # drift moves clients from 30-day to 60- and 90-day terms
        terms = rng.choice(PAYMENT_TERMS, n, p=[0.10, 0.40 - 2 * later, 0.20, 0.20 + later, 0.10 + later])
        terms = np.where(public & (terms < 45), 45, terms)

        u, disc, wo = utilisation / 100, discount / 100, write_off / 100
        fixed, over, sub = fixed_share / 100, overrun / 100, subcontracted / 100
        realised_rate = rate * (1 - disc) * (1 - wo)
        cost_per_billed_hour = ((1 - sub) * cost_rate / u + sub * (SUBCONTRACTOR_COST_SHARE + 0.05 * d) * rate) * (
            1 + fixed * np.maximum(over, -0.10)
        )
        margin = (
            1
            - cost_per_billed_hour / realised_rate
            - (COST_OF_CAPITAL * terms / 365 + BAD_DEBT_PER_30_DAYS * terms / 30)
            - 0.05 * np.exp(-age / 0.75)
            - ACCOUNT_MANAGEMENT_COST * (1 + 0.5 * d) / revenue
            - 0.015 * strategic
            + INDUSTRY_MARGIN_EFFECT[industry]
        )
        noise_sd = 0.03 + 0.07 * fixed + 0.02 * np.sqrt(100_000.0 / revenue)
        observed = np.clip(margin + noise_sd * rng.standard_normal(n), -1.5, 0.95)
        from scipy.special import ndtr  # the normal CDF; imported here, as serving never generates

        return pd.DataFrame(
            {
                "annual_revenue": revenue,
                "billable_utilisation_pct": utilisation,
                "blended_rate": rate,
                "cost_rate": cost_rate,
                "discount_pct": discount,
                "fixed_price_share_pct": fixed_share,
                "estimate_overrun_pct": overrun,
                "subcontractor_share_pct": subcontracted,
                "write_off_pct": write_off,
                "payment_terms_days": terms.astype(np.int64),
                "account_age_years": age,
                "is_strategic_account": strategic,
                "industry": np.asarray(INDUSTRIES, dtype=object)[industry],
                "region": np.asarray(REGIONS, dtype=object)[region],
                "margin_pct": (100 * observed).round(2),
                "truth_margin_pct": 100 * margin,
                "truth_margin_sd_pct": 100 * noise_sd,
                "truth_profit": margin * revenue,
                "truth_loss_probability": ndtr(-margin / noise_sd),
            }
        )

    # --- Training -------------------------------------------------------------------------

    def fit(self, frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
        columns = [*self.feature_names(), self.target.name]
        train, calibration = split_holdout(frame[columns], fraction=0.25, seed=seed)
        design = pd.DataFrame(_design(fast.frame_columns(train)))
        target = train[self.target.name].to_numpy(dtype=float)
        from sklearn.linear_model import Ridge  # training only: serving never imports scikit-learn

        pipeline = _pipeline().fit(design, target)
        encoded = pipeline[:-1].transform(design)
        # The error model learns the size of the in-sample error; the calibration split sets its level.
        error_model = Ridge(alpha=1.0).fit(encoded, np.abs(target - pipeline[-1].predict(encoded)))

        cal_pred, cal_scale = _linear_fast(pipeline, error_model, _design(fast.frame_columns(calibration)))
        score = (calibration[self.target.name].to_numpy(dtype=float) - cal_pred) / cal_scale
        n = len(score)
        lower_level, upper_level = split_conformal_levels(n, INTERVAL_LEVEL)
        return {
            "pipeline": pipeline,
            "error_model": error_model,
            "interval_level": INTERVAL_LEVEL,
            "score_lower": float(np.quantile(score, lower_level)),
            "score_upper": float(np.quantile(score, upper_level)),
            # Distribution of the normalised error on the calibration split, for the loss probability.
            "score_quantiles": np.quantile(score, np.linspace(0.0, 1.0, 201)),
            "calibration_rows": n,
        }

    # --- Answers --------------------------------------------------------------------------

    def predict(self, artifact: dict[str, Any], frame: pd.DataFrame) -> list[dict[str, Any]]:
        columns = fast.frame_columns(frame)
        margin, lower, upper, loss_probability = _predict_arrays(artifact, columns)
        revenue = np.asarray(columns["annual_revenue"], dtype=float)
        realised_rate = (
            np.asarray(columns["blended_rate"], dtype=float)
            * (1 - np.asarray(columns["discount_pct"], dtype=float) / 100)
            * (1 - np.asarray(columns["write_off_pct"], dtype=float) / 100)
        )
        band_index = np.searchsorted(BAND_LOWER_BOUNDS, np.round(margin, 2), side="right")
        answer_columns = {
            "margin_pct": np.round(margin, 2),
            "margin_lower_pct": np.round(lower, 2),
            "margin_upper_pct": np.round(upper, 2),
            "profit": np.round(margin / 100 * revenue, 2),
            "profit_lower": np.round(lower / 100 * revenue, 2),
            "profit_upper": np.round(upper / 100 * revenue, 2),
            "loss_probability": np.round(loss_probability, 4),
            "realised_rate": np.round(realised_rate, 2),
        }
        names = list(answer_columns)
        level = float(artifact["interval_level"])
        bands = [BANDS[i][0] for i in band_index.tolist()]
        return [
            {**dict(zip(names, values, strict=True)), "interval_level": level, "band": band}
            for *values, band in zip(*(answer_columns[name].tolist() for name in names), bands, strict=True)
        ]

    def evaluate(self, artifact: dict[str, Any], frame: pd.DataFrame) -> dict[str, float]:
        margin, lower, upper, _ = _predict_arrays(artifact, fast.frame_columns(frame))
        actual = frame[self.target.name].to_numpy(dtype=float)
        error = actual - margin
        revenue = frame["annual_revenue"].to_numpy(dtype=float)
        bands_true = np.searchsorted(BAND_LOWER_BOUNDS, actual, side="right")
        bands_pred = np.searchsorted(BAND_LOWER_BOUNDS, margin, side="right")
        return {
            "r2": float(1 - np.sum(error**2) / np.sum((actual - actual.mean()) ** 2)),
            "mae_points": float(np.mean(np.abs(error))),
            "rmse_points": float(np.sqrt(np.mean(error**2))),
            "profit_mae": float(np.mean(np.abs(error) / 100 * revenue)),
            "interval_coverage": float(np.mean((actual >= lower) & (actual <= upper))),
            "interval_width_points": float(np.mean(upper - lower)),
            "band_accuracy": float(np.mean(bands_true == bands_pred)),
            "rows": float(len(frame)),
        }


def _design(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The accounting ratios the pipeline learns from, computed from the feature columns."""

    def number(name: str) -> np.ndarray:
        return np.asarray(columns[name], dtype=float)

    utilisation = number("billable_utilisation_pct") / 100
    realised_share = (1 - number("discount_pct") / 100) * (1 - number("write_off_pct") / 100)
    subcontracted = number("subcontractor_share_pct") / 100
    revenue = number("annual_revenue")
    return {
        # Employee cost per realised hour: bench time is paid for, hence the utilisation.
        "employee_cost_ratio": (1 - subcontracted)
        * number("cost_rate")
        / (utilisation * number("blended_rate") * realised_share),
        "subcontract_ratio": subcontracted / realised_share,
        "overrun_load": number("fixed_price_share_pct") * number("estimate_overrun_pct") / 10_000,
        "revenue": revenue,
        "inverse_revenue": 100_000.0 / revenue,
        "account_age_years": number("account_age_years"),
        "payment_terms_days": number("payment_terms_days"),
        "fixed_price_share": number("fixed_price_share_pct") / 100,
        "strategic": number("is_strategic_account"),
        "industry": columns["industry"].astype(str).astype(object),
        "region": columns["region"].astype(str).astype(object),
    }


def _pipeline() -> Any:
    """The scikit-learn pipeline to fit (imported here: serving never imports scikit-learn)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        OneHotEncoder,
        PolynomialFeatures,
        SplineTransformer,
        StandardScaler,
    )

    features = ColumnTransformer(
        [
            (
                "ratios",
                Pipeline(
                    [("interactions", PolynomialFeatures(degree=2, include_bias=False)), ("scale", StandardScaler())]
                ),
                ["employee_cost_ratio", "subcontract_ratio", "overrun_load"],
            ),
            (
                "size",
                Pipeline([("log", FunctionTransformer(np.log)), ("spline", SplineTransformer(n_knots=6, degree=3))]),
                ["revenue"],
            ),
            ("curves", SplineTransformer(n_knots=6, degree=3), ["account_age_years", "overrun_load"]),
            ("linear", StandardScaler(), ["inverse_revenue", "payment_terms_days", "fixed_price_share", "strategic"]),
            ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["industry", "region"]),
        ]
    )
    return Pipeline([("features", features), ("model", Ridge(alpha=1.0))])


def _predict_arrays(artifact: dict[str, Any], columns: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Predicted margin, interval bounds (all in %) and loss probability, one per row."""
    margin, scale = _linear_fast(artifact["pipeline"], artifact["error_model"], _design(columns))
    lower = margin + artifact["score_lower"] * scale
    upper = margin + artifact["score_upper"] * scale
    quantiles = artifact["score_quantiles"]
    # P(margin < 0) = P(score < -margin / scale), read off the calibration distribution.
    loss_probability = np.interp(-margin / scale, quantiles, np.linspace(0.0, 1.0, len(quantiles)))
    return margin, lower, upper, loss_probability


def _linear_fast(
    pipeline: compiled.Pipeline, error_model: compiled.LinearModel, design: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Point prediction and error size, evaluated with numpy from the fitted parameters."""
    encoded = fast.encode(pipeline.named_steps["features"], design)
    prediction = fast.linear(pipeline.named_steps["model"], encoded)
    scale = np.maximum(fast.linear(error_model, encoded), MIN_ERROR_SCALE)
    return prediction, scale


MODEL = ProfitabilityModel()
