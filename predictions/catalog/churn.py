"""Client churn: will a client stop buying from us in the next six months?

The answer for one client: a churn probability, a risk band, and the drivers that push this
client's risk up the most compared with an average client.

Synthetic world (``generate``)
------------------------------
One row is a client of a consultancy/agency that sells hours and projects. Inputs:

- ``tenure_months``: lognormal, median ~26 months, clipped to [1, 240].
- ``contract_type``: monthly ~33 %, annual ~46 %, multi_year ~21 %; newer clients are more often monthly.
- ``service_line`` and ``company_size``: categorical mix; enterprise clients pay more.
- ``monthly_revenue``: lognormal, median ~12k EUR, x2.5 for enterprise, x0.4 for small.
- ``hours_utilisation_pct``: hours consumed against hours contracted/planned, ~N(85, 22) %.
- ``usage_trend_pct``: change in billed hours, last quarter vs the one before, ~N(2, 18) %.
- ``support_tickets_90d``: Poisson, more for clients whose usage is falling and who are unhappy.
- ``late_payments_12m``: Poisson(0.8), clipped to 12.
- ``nps_score``: last survey answer 0-10, correlated with tickets (negatively).
- ``account_manager_changes_12m``, ``days_since_last_meeting``, ``active_projects``,
  ``discount_pct``, ``has_executive_sponsor``.

Churn (truth): ``logit = -2.3 - 0.8 log(tenure / 12) + contract effect (monthly +0.95,
annual 0, multi-year -1.05) + 2.6 max(0, 0.7 - utilisation) - 0.9 (utilisation - 0.85)
- 4.0 trend + 0.85 log1p(tickets) + 0.5 late payments - 0.38 (nps - 7)
+ 0.35 account-manager changes - 0.75 sponsor + 0.45 log1p(days since meeting / 30)
- 0.35 log1p(active projects) + 0.015 discount + service-line effect`` (utilisation and
trend as fractions). The realised label ``churned`` is drawn from Bernoulli(sigmoid(logit));
``truth_probability`` holds the exact probability and ``truth_logit`` the logit. The base
rate is ~26 % at drift 0 (the best possible ROC AUC, scoring with the truth, is ~0.86).

Drift (0..1) shifts the inputs (utilisation down by up to 6 points, usage trending down by up
to 12 points, NPS down by 1.2, more tickets and late payments, fewer executive sponsors) and
the relationship itself (support tickets weigh up to 60 % more; a multi-year contract
protects up to 40 % less). At drift 1 the churn rate is ~64 %.

Model (``fit``): cubic splines (tenure, utilisation, trend, NPS), log1p + scaling (revenue,
tickets, days since meeting, projects), scaling (the rest) and one-hot categories in a
``ColumnTransformer``, then a ``LogisticRegression``. ``predict`` evaluates the fitted
transformers with numpy (``fast.encode``, held equal to scikit-learn by a test): a one-row answer
costs a fraction of a millisecond instead of several. Driver contributions are
``coef x (encoded value - training mean of the encoded value)`` summed per input feature: the
change in log-odds this client's value causes against an average client. The risk band is
read from the rounded probability the answer shows, so the two never disagree.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from predictions.catalog import compiled, fast
from predictions.catalog.base import CatalogModel, Feature, Target

CONTRACT_TYPES = ("monthly", "annual", "multi_year")
SERVICE_LINES = ("strategy", "software_development", "design", "marketing", "managed_services")
COMPANY_SIZES = ("small", "mid_market", "enterprise")

# Risk bands: below 20 % a client needs nothing special (roughly the base rate); from 50 %
# churn is more likely than not and the account manager should act now.
BAND_THRESHOLDS = (0.20, 0.50)
# Drivers shown per answer: enough to act on, few enough to read.
TOP_DRIVERS = 3

SPLINE_COLUMNS = ["tenure_months", "hours_utilisation_pct", "usage_trend_pct", "nps_score"]
LOG_COLUMNS = [
    "monthly_revenue",
    "support_tickets_90d",
    "days_since_last_meeting",
    "active_projects",
]
LINEAR_COLUMNS = ["late_payments_12m", "account_manager_changes_12m", "discount_pct", "has_executive_sponsor"]
CATEGORY_COLUMNS = ["contract_type", "service_line", "company_size"]


class ChurnModel(CatalogModel):
    slug = "churn"
    title = "Client churn"
    task = "classification"
    summary = "Probability that a client stops buying within six months, with a risk band and its drivers."
    entity_label = "client"
    main_score = "churn_probability"
    default_training_rows = 20_000
    target = Target(
        name="churned",
        kind="binary",
        description="1 if the client stopped buying (no new work, contract ended) within six months.",
    )
    features: ClassVar[tuple[Feature, ...]] = (
        Feature(
            "tenure_months",
            "integer",
            "Months since the client's first signed engagement.",
            example=18,
            unit="months",
            minimum=1,
            maximum=240,
        ),
        Feature(
            "contract_type",
            "category",
            "Commercial frame of the current relationship.",
            example="annual",
            categories=CONTRACT_TYPES,
        ),
        Feature(
            "service_line",
            "category",
            "Main service line the client buys.",
            example="software_development",
            categories=SERVICE_LINES,
        ),
        Feature(
            "company_size",
            "category",
            "Size segment of the client company.",
            example="mid_market",
            categories=COMPANY_SIZES,
        ),
        Feature(
            "monthly_revenue",
            "number",
            "Average monthly revenue from the client over the last quarter.",
            example=14500.0,
            unit="EUR",
            minimum=0,
            maximum=2_000_000,
        ),
        Feature(
            "hours_utilisation_pct",
            "number",
            "Hours consumed in the last quarter against the hours contracted or planned.",
            example=82.0,
            unit="%",
            minimum=0,
            maximum=250,
        ),
        Feature(
            "usage_trend_pct",
            "number",
            "Change in billed hours, last quarter against the quarter before.",
            example=-4.0,
            unit="%",
            minimum=-100,
            maximum=300,
        ),
        Feature(
            "support_tickets_90d",
            "integer",
            "Support tickets and escalations raised by the client in the last 90 days.",
            example=3,
            unit="tickets",
            minimum=0,
            maximum=200,
        ),
        Feature(
            "late_payments_12m",
            "integer",
            "Invoices paid after their due date in the last 12 months.",
            example=1,
            unit="invoices",
            minimum=0,
            maximum=12,
        ),
        Feature(
            "nps_score",
            "integer",
            "Client's answer to the last 'would you recommend us' survey (0-10).",
            example=8,
            minimum=0,
            maximum=10,
        ),
        Feature(
            "account_manager_changes_12m",
            "integer",
            "Times the client's account manager changed in the last 12 months.",
            example=0,
            minimum=0,
            maximum=12,
        ),
        Feature(
            "days_since_last_meeting",
            "integer",
            "Days since the last meeting with a decision maker at the client.",
            example=21,
            unit="days",
            minimum=0,
            maximum=730,
        ),
        Feature(
            "active_projects",
            "integer",
            "Projects currently running for the client.",
            example=2,
            unit="projects",
            minimum=0,
            maximum=100,
        ),
        Feature(
            "discount_pct",
            "number",
            "Average discount granted on the client's invoices.",
            example=5.0,
            unit="%",
            minimum=0,
            maximum=60,
        ),
        Feature(
            "has_executive_sponsor",
            "boolean",
            "Whether a client executive sponsors the relationship.",
            example=True,
            required=False,
            default=False,
        ),
    )

    # --- Synthetic data --------------------------------------------------------------------

    def generate(self, n: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        d = float(np.clip(drift, 0.0, 1.0))

        tenure = np.clip(np.round(rng.lognormal(np.log(26.0), 0.85, n)), 1, 240).astype(np.int64)
        # Newer clients start on monthly terms more often.
        new = tenure < 12
        u = rng.random(n)
        p_monthly = np.where(new, 0.50, 0.29)
        p_annual = np.where(new, 0.40, 0.47)
        contract = np.where(u < p_monthly, 0, np.where(u < p_monthly + p_annual, 1, 2))
        service = rng.choice(len(SERVICE_LINES), size=n, p=[0.15, 0.30, 0.15, 0.20, 0.20])
        size = rng.choice(len(COMPANY_SIZES), size=n, p=[0.40, 0.40, 0.20])

        size_factor = np.array([0.4, 1.0, 2.5])[size]
        revenue = np.clip(np.round(rng.lognormal(np.log(12_000.0), 0.7, n) * size_factor, 2), 200.0, 1_500_000.0)
        utilisation = np.clip(rng.normal(85.0 - 6.0 * d, 22.0, n), 0.0, 220.0)
        trend = np.clip(rng.normal(2.0 - 12.0 * d, 18.0, n), -95.0, 250.0)
        mood = rng.normal(0.0, 1.0, n)  # hidden client satisfaction, drives tickets and NPS
        ticket_rate = np.exp(0.7 + 0.35 * d - 0.45 * mood + 0.012 * np.maximum(-trend, 0.0))
        tickets = np.minimum(rng.poisson(ticket_rate), 150)
        late = np.minimum(rng.poisson(0.8 + 0.8 * d, n), 12)
        nps = np.clip(np.round(7.0 - 1.2 * d + 1.6 * mood + rng.normal(0.0, 1.0, n)), 0, 10).astype(np.int64)
        am_changes = np.minimum(rng.poisson(0.4, n), 12)
        meeting = np.clip(np.round(rng.lognormal(np.log(25.0), 0.8, n)), 0, 700).astype(np.int64)
        projects = np.minimum(rng.poisson(0.4 + 1.2 * size_factor, n), 90)
        discount = np.clip(np.round(rng.gamma(1.2, 4.0, n), 1), 0.0, 50.0)
        sponsor = rng.random(n) < (0.45 - 0.15 * d + 0.15 * (size == 2))

        ticket_weight = 0.85 * (1.0 + 0.6 * d)
        multi_year_effect = -1.05 * (1.0 - 0.4 * d)
        contract_effect = np.array([0.95, 0.0, multi_year_effect])[contract]
        service_effect = np.array([0.10, -0.10, 0.15, 0.25, -0.30])[service]
        util = utilisation / 100.0
        logit = (
            -2.3
            - 0.8 * np.log(tenure / 12.0)
            + contract_effect
            + 2.6 * np.maximum(0.0, 0.7 - util)
            - 0.9 * (util - 0.85)
            - 4.0 * trend / 100.0
            + ticket_weight * np.log1p(tickets)
            + 0.5 * late
            - 0.38 * (nps - 7.0)
            + 0.35 * am_changes
            - 0.75 * sponsor
            + 0.45 * np.log1p(meeting / 30.0)
            - 0.35 * np.log1p(projects)
            + 0.015 * discount
            + service_effect
        )
        probability = fast.sigmoid(logit)
        churned = (rng.random(n) < probability).astype(np.int64)

        return pd.DataFrame(
            {
                "tenure_months": tenure,
                "contract_type": np.array(CONTRACT_TYPES, dtype=object)[contract],
                "service_line": np.array(SERVICE_LINES, dtype=object)[service],
                "company_size": np.array(COMPANY_SIZES, dtype=object)[size],
                "monthly_revenue": revenue,
                "hours_utilisation_pct": np.round(utilisation, 1),
                "usage_trend_pct": np.round(trend, 1),
                "support_tickets_90d": tickets.astype(np.int64),
                "late_payments_12m": late.astype(np.int64),
                "nps_score": nps,
                "account_manager_changes_12m": am_changes.astype(np.int64),
                "days_since_last_meeting": meeting,
                "active_projects": projects.astype(np.int64),
                "discount_pct": discount,
                "has_executive_sponsor": sponsor,
                "churned": churned,
                "truth_probability": probability,
                "truth_logit": logit,
            }
        )

    # --- Training --------------------------------------------------------------------------

    def _pipeline(self, seed: int) -> Any:
        """The scikit-learn pipeline to fit (imported here: serving never imports scikit-learn)."""
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, SplineTransformer, StandardScaler

        preprocess = ColumnTransformer(
            [
                ("spline", SplineTransformer(n_knots=5, degree=3, knots="quantile"), SPLINE_COLUMNS),
                (
                    "log",
                    Pipeline(
                        [
                            ("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one")),
                            ("scale", StandardScaler()),
                        ]
                    ),
                    LOG_COLUMNS,
                ),
                ("linear", StandardScaler(), LINEAR_COLUMNS),
                ("category", OneHotEncoder(handle_unknown="ignore"), CATEGORY_COLUMNS),
            ],
            sparse_threshold=0.0,
        )
        return Pipeline(
            [("preprocess", preprocess), ("classifier", LogisticRegression(C=1.0, max_iter=1000, random_state=seed))]
        )

    def _inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        inputs = frame[self.feature_names()].copy()
        inputs["has_executive_sponsor"] = inputs["has_executive_sponsor"].astype(np.float64)
        return inputs

    def fit(self, frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
        pipeline = self._pipeline(seed)
        pipeline.fit(self._inputs(frame), frame[self.target.name].to_numpy(dtype=np.int64))
        preprocess = pipeline.named_steps["preprocess"]
        encoded = preprocess.transform(self._inputs(frame))
        # Which input feature each encoded column comes from, to sum contributions back.
        owners = [
            self.feature_names().index(_owner(name, self.feature_names()))
            for name in preprocess.get_feature_names_out()
        ]
        return {
            "pipeline": pipeline,
            "encoded_mean": encoded.mean(axis=0),
            "column_owner": np.asarray(owners, dtype=np.int64),
            "feature_names": self.feature_names(),
            "band_thresholds": list(BAND_THRESHOLDS),
        }

    # --- Answers ---------------------------------------------------------------------------

    def _scores(self, artifact: dict[str, Any], columns: fast.Columns) -> tuple[np.ndarray, np.ndarray]:
        """Churn probabilities and per-feature log-odds contributions for columns of inputs."""
        pipeline: compiled.Pipeline = artifact["pipeline"]
        encoded = fast.encode(pipeline.named_steps["preprocess"], columns)
        classifier: compiled.LinearModel = pipeline.named_steps["classifier"]
        logit = fast.linear(classifier, encoded)
        per_column = (encoded - artifact["encoded_mean"]) * classifier.coef_[0]
        contributions = np.zeros((len(logit), len(artifact["feature_names"])))
        np.add.at(contributions.T, artifact["column_owner"], per_column.T)
        return fast.sigmoid(logit), contributions

    def predict(self, artifact: dict[str, Any], frame: pd.DataFrame) -> list[dict[str, Any]]:
        names = artifact["feature_names"]
        columns = fast.frame_columns(frame, names)
        probability, contributions = self._scores(artifact, columns)
        probability = np.round(probability, 4)
        low, high = artifact["band_thresholds"]
        bands = np.where(probability >= high, "high", np.where(probability >= low, "medium", "low")).tolist()
        # Only the top drivers' names, values and contributions become Python objects, not
        # whole rows of them (~1 µs per row less on a 10,000-row chunk).
        order = np.argsort(-contributions, axis=1)[:, :TOP_DRIVERS]
        top_names = np.asarray(names, dtype=object)[order].tolist()
        top_values = np.take_along_axis(np.column_stack([columns[name] for name in names]), order, axis=1).tolist()
        top_contributions = np.round(np.take_along_axis(contributions, order, axis=1), 4).tolist()
        return [
            {
                "churn_probability": score,
                "risk_band": band,
                "top_drivers": [
                    {"feature": name, "value": value, "contribution": contribution}
                    for name, value, contribution in zip(row_names, row_values, row_contributions, strict=True)
                    if contribution > 0.0
                ],
            }
            for score, band, row_names, row_values, row_contributions in zip(
                probability.tolist(), bands, top_names, top_values, top_contributions, strict=True
            )
        ]

    def evaluate(self, artifact: dict[str, Any], frame: pd.DataFrame) -> dict[str, float]:
        from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

        probability, _ = self._scores(artifact, fast.frame_columns(frame, artifact["feature_names"]))
        y = frame[self.target.name].to_numpy(dtype=np.int64)
        high_band = probability >= artifact["band_thresholds"][1]
        return {
            "roc_auc": float(roc_auc_score(y, probability)),
            "average_precision": float(average_precision_score(y, probability)),
            "log_loss": float(log_loss(y, probability, labels=[0, 1])),
            "brier": float(brier_score_loss(y, probability)),
            "base_rate": float(y.mean()),
            "mean_probability": float(probability.mean()),
            "high_band_share": float(high_band.mean()),
            "high_band_churn_rate": float(y[high_band].mean()) if high_band.any() else 0.0,
            "rows": float(len(y)),
        }


def _owner(encoded_name: str, features: list[str]) -> str:
    """The input feature behind an encoded column name such as ``spline__tenure_months_sp_0``."""
    bare = encoded_name.split("__", 1)[1]
    return max((f for f in features if bare == f or bare.startswith(f + "_")), key=len)


MODEL = ChurnModel()
