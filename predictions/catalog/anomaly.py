"""Timesheet anomalies: which weekly timesheets look unlike the others, and why?

Unsupervised: there is no label to learn from, only the shape of normal timesheets. The answer
for one timesheet (one consultant, one week): an anomaly score, a flag, how unusual it is
against the training weeks, and the inputs that stand out most.

Synthetic world (``generate``)
------------------------------
One row is a consultant's week. A hidden seniority (junior 25 %, consultant 30 %, senior 25 %,
manager 15 %, partner 5 %) sets the card rate (70-280 EUR/h, +-10 %), the billable share
(85 % for juniors down to 45 % for partners) and the number of projects. Then:

- ``contracted_hours``: 40 (75 %), 32 (15 %) or 24 (10 %); ``hours_logged`` = contract x
  exp(N(0.04 + 0.02 seniority, 0.08)), to the quarter hour; ``days_worked`` = contract / 8,
  one day more or less for 10 % of weeks.
- ``billable_hours`` = logged x Beta(mean = the seniority's billable share, concentration 20).
- ``weekend_hours``: none for 88 % of weeks, Gamma(3, 1.2) otherwise.
- ``daily_hours_std``: Gamma(3, 0.3) hours of day-to-day variation.
- ``billed_rate`` = card x exp(N(0, 0.03)).
- ``expense_amount``: none for 45 % of weeks, lognormal (median 120 EUR, sigma 0.8) otherwise.
- ``edits_after_submit`` Poisson(0.3), ``submission_delay_days`` ~ lognormal (median 1.5),
  ``late_night_entries`` Poisson(0.3).

Injected anomalies (``truth_is_anomaly``, ``truth_anomaly_type``), 2 % of weeks, one of six kinds
with equal odds:

- ``padding``: hours x 1.4-2.1, nearly all billable, 6-16 weekend hours;
- ``billable_above_logged``: billable hours 15-60 % above the hours logged;
- ``rate_override``: billed rate 1.5-2.5x or 0.4-0.65x the card rate;
- ``expense_spike``: 3,000-20,000 EUR of expenses;
- ``backdated_edits``: 8-30 edits after submission and 20-75 days late;
- ``bulk_entry``: identical days (no day-to-day variation), 7 days, 6-20 late-night entries.

Drift (0..1) shifts the inputs (hours up 4 %, weekend work on up to 22 % of weeks, twice the
late-night entries, expenses up 30 %) and the anomaly rate (up to 3 %).

Model (``fit``): the inputs, with hours as three ratios (``_derived``: billable share, hours
against contract, billed rate against card), in a ``ColumnTransformer`` (log1p and scaling; for
weekend hours and expenses, zero most weeks, a zero is replaced by the median non-zero value so
only the size of a non-zero value can stand out), then a ``LedoitWolf`` covariance. The score is the
Mahalanobis distance from the training centre. The flag threshold is the training distance
that the expected contamination (``EXPECTED_CONTAMINATION``) of training weeks exceeds;
``percentile`` places a score among the training weeks. A contributor's ``z_score`` is a robust
z-score against the training weeks on the encoded scale, ``(value - median) / (1.4826 MAD)``
(for the mostly-zero inputs, against their non-zero weeks, so a zero never stands out); the
ratios make broken relationships (billable above logged, a rate far from the card) show up as
extreme values. A contributor is an input or one of the three ratios (``billable_share``,
``hours_vs_contract``, ``rate_vs_card``), with its value.

Why not an ``IsolationForest`` or a robust ``EllipticEnvelope``: on this data an
IsolationForest ranked far fewer true anomalies in its top k (precision ~0.4 against ~0.86)
and costs milliseconds per row; minimum-covariance-determinant subsets collapse on the many
zero and integer values of timesheets (singular covariance), and the reweighted full-data
variant scored lower (~0.7). ``predict`` evaluates the fitted transformers with numpy
(``fast.encode``, held equal to scikit-learn by a test).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from predictions.catalog import compiled, fast
from predictions.catalog.base import CatalogModel, Feature

SENIORITY_RATES = np.array([70.0, 100.0, 140.0, 190.0, 280.0])
SENIORITY_SHARES = np.array([0.25, 0.30, 0.25, 0.15, 0.05])
BILLABLE_SHARE = np.array([0.85, 0.80, 0.75, 0.60, 0.45])
PROJECTS_MEAN = np.array([0.5, 1.0, 1.5, 2.5, 3.5])
ANOMALY_TYPES = (
    "padding",
    "billable_above_logged",
    "rate_override",
    "expense_spike",
    "backdated_edits",
    "bulk_entry",
)
# Share of weeks expected to be anomalous: sets the flag threshold at fit time (the generator
# injects 2 % at drift 0; audits of real timesheets find a similar 1-3 %).
EXPECTED_CONTAMINATION = 0.02
# Contributors shown per answer.
TOP_CONTRIBUTORS = 3

# What the distance is computed on. Hours enter through their ratios (hours against contract,
# billable share): multiplicative quantities, close to normal once logged, where the raw hours
# of 24-, 32- and 40-hour contracts would form clusters a single Gaussian fits badly.
LINEAR_COLUMNS = ["billable_share"]
LOG_COLUMNS = [
    "contracted_hours",
    "days_worked",
    "daily_hours_std",
    "projects_count",
    "rate_card",
    "hours_vs_contract",
    "rate_vs_card",
    "edits_after_submit",
    "submission_delay_days",
    "late_night_entries",
]
# Inputs that are zero most weeks and continuous otherwise.
HURDLE_COLUMNS = ["weekend_hours", "expense_amount"]


class AnomalyModel(CatalogModel):
    slug = "anomaly"
    title = "Timesheet anomalies"
    task = "anomaly"
    summary = "How unusual a consultant's weekly timesheet is, whether to review it, and what stands out."
    entity_label = "timesheet"
    main_score = "anomaly_score"
    target = None
    default_training_rows = 20_000
    features: ClassVar[tuple[Feature, ...]] = (
        Feature(
            "contracted_hours",
            "integer",
            "Weekly hours in the consultant's contract.",
            example=40,
            unit="hours",
            minimum=1,
            maximum=60,
        ),
        Feature(
            "hours_logged",
            "number",
            "Hours logged on the timesheet for the week.",
            example=41.5,
            unit="hours",
            minimum=0,
            maximum=168,
        ),
        Feature(
            "billable_hours",
            "number",
            "Logged hours booked to billable client work.",
            example=33.0,
            unit="hours",
            minimum=0,
            maximum=168,
        ),
        Feature(
            "days_worked",
            "integer",
            "Days of the week with hours logged.",
            example=5,
            unit="days",
            minimum=0,
            maximum=7,
        ),
        Feature(
            "weekend_hours",
            "number",
            "Hours logged on Saturday and Sunday.",
            example=0.0,
            unit="hours",
            minimum=0,
            maximum=48,
        ),
        Feature(
            "daily_hours_std",
            "number",
            "Standard deviation of the hours logged per worked day.",
            example=0.8,
            unit="hours",
            minimum=0,
            maximum=24,
        ),
        Feature(
            "projects_count",
            "integer",
            "Projects the week's hours were booked to.",
            example=2,
            unit="projects",
            minimum=0,
            maximum=40,
        ),
        Feature(
            "rate_card",
            "number",
            "Card rate of the consultant's grade.",
            example=140.0,
            unit="EUR/hour",
            minimum=20,
            maximum=1000,
        ),
        Feature(
            "billed_rate",
            "number",
            "Average rate the billable hours were charged at.",
            example=142.0,
            unit="EUR/hour",
            minimum=0,
            maximum=3000,
        ),
        Feature(
            "expense_amount",
            "number",
            "Expenses claimed with the timesheet.",
            example=85.0,
            unit="EUR",
            minimum=0,
            maximum=100_000,
        ),
        Feature(
            "edits_after_submit",
            "integer",
            "Changes made to the timesheet after it was submitted.",
            example=0,
            unit="edits",
            minimum=0,
            maximum=500,
        ),
        Feature(
            "submission_delay_days",
            "integer",
            "Days between the end of the week and the timesheet's submission.",
            example=1,
            unit="days",
            minimum=0,
            maximum=365,
        ),
        Feature(
            "late_night_entries",
            "integer",
            "Entries logged between 22:00 and 05:00.",
            example=0,
            unit="entries",
            minimum=0,
            maximum=200,
        ),
    )

    # --- Synthetic data --------------------------------------------------------------------

    def generate(self, n: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        d = float(np.clip(drift, 0.0, 1.0))

        level = rng.choice(len(SENIORITY_RATES), size=n, p=SENIORITY_SHARES)
        card = np.round(SENIORITY_RATES[level] * np.exp(rng.normal(0.0, 0.1, n)), 0)
        contract = rng.choice([40, 32, 24], size=n, p=[0.75, 0.15, 0.10])
        logged = contract * np.exp(rng.normal(0.04 + 0.02 * level + 0.04 * d, 0.08, n))
        days = contract // 8 + (rng.random(n) < 0.10) * rng.choice([-1, 1], size=n)
        share = rng.beta(20.0 * BILLABLE_SHARE[level], 20.0 * (1.0 - BILLABLE_SHARE[level]))
        weekend = np.where(rng.random(n) < 0.12 + 0.10 * d, rng.gamma(3.0, 1.2, n), 0.0)
        spread = rng.gamma(3.0, 0.3, n)
        projects = 1 + rng.poisson(PROJECTS_MEAN[level])
        rate_factor = np.exp(rng.normal(0.0, 0.03, n))
        expense = np.where(rng.random(n) < 0.45, 0.0, rng.lognormal(np.log(120.0 * (1.0 + 0.3 * d)), 0.8, n))
        edits = rng.poisson(0.3, n)
        delay = np.floor(rng.lognormal(np.log(1.5), 0.9, n))
        night = rng.poisson(0.3 * (1.0 + d), n)

        anomalous = rng.random(n) < EXPECTED_CONTAMINATION + 0.01 * d
        kind = np.where(anomalous, rng.integers(0, len(ANOMALY_TYPES), n), -1)
        u = rng.random(n)
        padding = kind == 0
        logged = np.where(padding, logged * (1.4 + 0.7 * u), logged)
        share = np.where(padding, rng.uniform(0.92, 1.0, n), share)
        weekend = np.where(padding, rng.uniform(6.0, 16.0, n), weekend)
        share = np.where(kind == 1, 1.15 + 0.45 * u, share)
        cheap = rng.random(n) < 0.5
        rate_factor = np.where(kind == 2, np.where(cheap, 0.4 + 0.25 * u, 1.5 + u), rate_factor)
        expense = np.where(kind == 3, 3000.0 + 17_000.0 * u, expense)
        edits = np.where(kind == 4, rng.integers(8, 31, n), edits)
        delay = np.where(kind == 4, rng.integers(20, 76, n), delay)
        bulk = kind == 5
        spread = np.where(bulk, 0.0, spread)
        days = np.where(bulk, 7, days)
        night = np.where(bulk, rng.integers(6, 21, n), night)

        logged = np.clip(np.round(logged * 4.0) / 4.0, 0.25, 160.0)
        frame = pd.DataFrame(
            {
                "contracted_hours": contract.astype(np.int64),
                "hours_logged": logged,
                "billable_hours": np.clip(np.round(logged * share * 4.0) / 4.0, 0.0, 160.0),
                "days_worked": np.clip(days, 1, 7).astype(np.int64),
                "weekend_hours": np.round(np.minimum(weekend, 40.0) * 4.0) / 4.0,
                "daily_hours_std": np.round(np.minimum(spread, 20.0), 2),
                "projects_count": np.minimum(projects, 30).astype(np.int64),
                "rate_card": card,
                "billed_rate": np.round(card * rate_factor, 2),
                "expense_amount": np.round(expense, 2),
                "edits_after_submit": edits.astype(np.int64),
                "submission_delay_days": np.minimum(delay, 300).astype(np.int64),
                "late_night_entries": np.minimum(night, 150).astype(np.int64),
                "truth_is_anomaly": anomalous,
                "truth_anomaly_type": np.where(
                    anomalous, np.array(ANOMALY_TYPES, dtype=object)[np.maximum(kind, 0)], "none"
                ),
            }
        )
        return frame

    # --- Training --------------------------------------------------------------------------

    def _pipeline(self) -> Any:
        """The scikit-learn pipeline to fit (imported here: serving never imports scikit-learn)."""
        from sklearn.compose import ColumnTransformer
        from sklearn.covariance import LedoitWolf
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer, StandardScaler

        def log_scale() -> list[tuple[str, Any]]:
            return [
                ("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one")),
                ("scale", StandardScaler()),
            ]

        preprocess = ColumnTransformer(
            [
                ("linear", StandardScaler(), LINEAR_COLUMNS),
                ("log", Pipeline(log_scale()), LOG_COLUMNS),
                # Mostly-zero inputs: a zero is ordinary, so it is scored as the typical non-zero
                # value and only the size of a non-zero value can stand out.
                (
                    "hurdle",
                    Pipeline([("zero", SimpleImputer(missing_values=0.0, strategy="median")), *log_scale()]),
                    HURDLE_COLUMNS,
                ),
            ],
            sparse_threshold=0.0,
        )
        return Pipeline([("preprocess", preprocess), ("covariance", LedoitWolf())])

    def fit(self, frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
        names = self.feature_names()
        inputs = pd.DataFrame(_derived(fast.frame_columns(frame, names, dtype=np.float64)))
        pipeline = self._pipeline().fit(inputs)
        columns = [name.split("__", 1)[1] for name in pipeline.named_steps["preprocess"].get_feature_names_out()]
        artifact = {
            "pipeline": pipeline,
            "feature_names": names,
            "columns": columns,
            "expected_contamination": EXPECTED_CONTAMINATION,
        }
        x = _derived(fast.frame_columns(frame, names, dtype=np.float64))
        encoded = fast.encode(pipeline.named_steps["preprocess"], x)
        distance = _distance(artifact, encoded)
        # The flag threshold: the distance the expected share of training weeks exceeds.
        artifact["threshold"] = float(np.quantile(distance, 1.0 - EXPECTED_CONTAMINATION))
        artifact["distance_quantiles"] = np.quantile(distance, np.linspace(0.0, 1.0, 1001))
        artifact["z_center"], artifact["z_scale"] = _robust_reference(encoded, x, columns)
        return artifact

    # --- Answers ---------------------------------------------------------------------------

    def _score(
        self, artifact: dict[str, Any], frame: pd.DataFrame
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Inputs with ratios, Mahalanobis distances and per-column robust z-scores."""
        x = _derived(fast.frame_columns(frame, artifact["feature_names"], dtype=np.float64))
        encoded = fast.encode(artifact["pipeline"].named_steps["preprocess"], x)
        z = (encoded - artifact["z_center"]) / artifact["z_scale"]
        return x, _distance(artifact, encoded), z

    def predict(self, artifact: dict[str, Any], frame: pd.DataFrame) -> list[dict[str, Any]]:
        x, distance, z = self._score(artifact, frame)
        scores = np.round(distance, 4)
        threshold = round(float(artifact["threshold"]), 4)
        flags = (scores > threshold).tolist()  # as shown: a flag never contradicts score and threshold
        quantiles = artifact["distance_quantiles"]
        percentile = np.round(100.0 * np.interp(distance, quantiles, np.linspace(0.0, 1.0, len(quantiles))), 2).tolist()
        columns = artifact["columns"]
        order = np.argsort(-np.abs(z), axis=1)[:, :TOP_CONTRIBUTORS].tolist()
        z_rows = np.round(z, 2).tolist()
        integers = {feature.name for feature in self.features if feature.kind == "integer"}
        values = {
            column: (np.round(x[column]).astype(np.int64) if column in integers else np.round(x[column], 4)).tolist()
            for column in columns
        }
        answers = []
        for i, score in enumerate(scores.tolist()):
            contributors = [
                {
                    "feature": columns[j],
                    "value": values[columns[j]][i],
                    "z_score": z_rows[i][j],
                    "direction": "high" if z_rows[i][j] > 0 else "low",
                }
                for j in order[i]
            ]
            answers.append(
                {
                    "anomaly_score": score,
                    "is_anomaly": flags[i],
                    "threshold": threshold,
                    "percentile": percentile[i],
                    "top_contributors": contributors,
                }
            )
        return answers

    def evaluate(self, artifact: dict[str, Any], frame: pd.DataFrame) -> dict[str, float]:
        """Without labels, the checks are on the score distribution against training."""
        _, distance, _ = self._score(artifact, frame)
        flagged = distance > artifact["threshold"]
        quantiles = artifact["distance_quantiles"]
        return {
            "flagged_rate": float(flagged.mean()),
            "expected_contamination": float(artifact["expected_contamination"]),
            "flagged_rate_ratio": float(flagged.mean() / artifact["expected_contamination"]),
            "median_score": float(np.median(distance)),
            "training_median_score": float(quantiles[len(quantiles) // 2]),
            "p99_score": float(np.quantile(distance, 0.99)),
            "threshold": float(artifact["threshold"]),
            "rows": float(len(distance)),
        }


def _derived(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs plus the ratios that make broken relationships visible."""
    return {
        **c,
        "billable_share": c["billable_hours"] / np.maximum(c["hours_logged"], 0.25),
        "hours_vs_contract": c["hours_logged"] / np.maximum(c["contracted_hours"], 1.0),
        "rate_vs_card": c["billed_rate"] / np.maximum(c["rate_card"], 1.0),
    }


def _distance(artifact: dict[str, Any], encoded: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of encoded rows from the training centre."""
    covariance: compiled.Covariance = compiled.of(artifact["pipeline"].named_steps["covariance"])
    centred = encoded - covariance.location_
    return np.sqrt(np.maximum(np.einsum("ij,ij->i", centred @ covariance.get_precision(), centred), 0.0))


def _robust_reference(
    encoded: np.ndarray, x: dict[str, np.ndarray], columns: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust scale of each encoded column over the training rows.

    Scale: 1.4826 x MAD (the standard deviation, for normal data), falling back to IQR / 1.349
    and then to the standard deviation for columns with a dominant value (contracted hours).
    For the mostly-zero inputs the reference is their non-zero weeks: a zero is never unusual.
    """
    centers, scales = [], []
    for j, column in enumerate(columns):
        values = encoded[:, j]
        if column in HURDLE_COLUMNS and (x[column] != 0.0).any():
            values = values[x[column] != 0.0]
        center = np.median(values)
        q1, q3 = np.quantile(values, [0.25, 0.75])
        candidates = [1.4826 * np.median(np.abs(values - center)), (q3 - q1) / 1.349, values.std(), 1.0]
        centers.append(center)
        scales.append(next(c for c in candidates if c > 1e-9))
    return np.asarray(centers), np.asarray(scales)


MODEL = AnomalyModel()
