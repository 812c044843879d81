"""Revenue leakage: is money slipping out of this invoice, how much, and through which hole?

The answer for one invoice (one billing period of an engagement): a leak probability, the
money at stake, the probability-weighted expected loss, and the leak patterns present.

Synthetic world (``generate``)
------------------------------
One row is an invoice of a consultancy/agency. Inputs:

- ``engagement_type``: time_and_materials 55 %, fixed_fee 30 %, retainer 15 %.
- ``client_tier``: strategic 15 %, key 35 %, standard 50 %. Each tier has a discount policy
  (``DISCOUNT_POLICY_PCT``: strategic 20 %, key 12 %, standard 5 %); more needs an approval.
- ``hours_logged``: lognormal, median 120 h. ``hours_billed = hours_logged x (1 - gap)``
  where the gap is a small Beta(1.2, 40) write-off for most invoices, plus a shortfall of
  3-45 % on ~10 % of them (hourly work left off the invoice, or a fixed-fee overrun). For a
  fixed fee the billed hours are the hours the fee covers, so the gap can also be negative.
- ``rate_card`` (lognormal, median 140 EUR/h); ``billed_rate`` is the card rate +-3 %, except
  ~7 % of invoices billed at an outdated or mistyped 75-95 % of the card.
- ``discount_pct``: none on 45 % of invoices, Gamma(2, 3) capped at the policy otherwise, and
  on ~12 % a generous discount 2-20 points above the tier policy; ``discount_approved`` is true
  for half of those.
- ``change_requests`` (Poisson, more on fixed fees) and ``change_orders_signed`` (each request
  signed with probability 0.75): unsigned requests are work done for free.
- ``days_to_invoice``, ``timesheet_late_pct`` and ``manager_open_projects``: slow invoicing,
  late timesheets and overloaded managers make every leak more likely.

Leaks (truth): four patterns, each an event with its own probability computed from what is
observable (``x`` = the leak indicators of ``_indicators``):

- unbilled hours (hourly work): ``logit = -4.3 + 20 x excess_gap + 2.0 x late timesheets +
  0.12 x (manager load - 6) + 0.35 log1p(days to invoice / 7)``, where ``excess_gap`` is the
  unbilled share above the 5 % write-off tolerance. Amount: the excess hours at the card rate.
- discount abuse: ``logit = -4.6 + 0.35 x (points above policy, unapproved) + 0.08 x points
  above policy when approved + 0.08 x (manager load - 6)``. Amount: the excess discount.
- scope creep: ``logit = -4.4 + 0.9 x unsigned change requests + 12 x fixed-fee overrun above
  5 %``. Amount: 16 h per unsigned request plus the overrun hours, at the card rate.
- rate below card: ``logit = -4.6 + 25 x shortfall``, the billed rate's shortfall against
  the card beyond a 3 % tolerance. Amount: the shortfall on the billed hours.

``is_leak`` = any pattern happened (``truth_probability`` = 1 - prod(1 - p_k));
``truth_leak_amount`` sums the amounts of the patterns that happened (at least 2 % of the
invoice each: some leaks leave no visible trace); ``truth_<pattern>`` flags which happened.
The base rate is ~14 % (unbilled hours ~6.5 %, discount abuse ~3.7 %, rate below card ~2.6 %,
scope creep ~2.2 %).

Drift (0..1) shifts the inputs (timesheets later, managers busier, shortfalls on up to 18 %
of invoices, generous discounts on up to 20 %) and the relationship (each unapproved
discount point above policy weighs up to 40 % more).

Model (``fit``): the same leak indicators the reasons use (computed by ``_indicators`` and
fed, with the raw inputs, to a ``ColumnTransformer``: scaling, log1p, one-hot), then a
``LogisticRegression``. Reasons are the patterns present on the invoice (money at stake > 0),
strongest first: a reason's ``contribution`` is the log-odds its indicators add against the
same invoice without them. ``artifact["pipeline"]`` therefore expects ``_indicators(frame)``,
not the raw frame. ``predict`` evaluates the fitted pipeline with numpy (``fast.decision_function``,
held equal to scikit-learn by a test).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from predictions.catalog import compiled, fast
from predictions.catalog.base import CatalogModel, Feature, Target

ENGAGEMENT_TYPES = ("time_and_materials", "fixed_fee", "retainer")
CLIENT_TIERS = ("strategic", "key", "standard")
# Discount a manager may grant without approval, per client tier (percent of the invoice).
DISCOUNT_POLICY_PCT = {"strategic": 20.0, "key": 12.0, "standard": 5.0}
# Share of logged hours routinely written off (training, rework, rounding) before a gap is suspect.
WRITE_OFF_TOLERANCE = 0.05
# Billed rate may sit this far under the card (rounding, small negotiated deals) before it is suspect.
RATE_TOLERANCE = 0.03
# Typical effort behind one change request: what an unsigned one gives away.
CHANGE_REQUEST_HOURS = 16.0
PATTERNS = ("unbilled_hours", "discount_abuse", "scope_creep", "rate_below_card")

INDICATOR_COLUMNS = [
    "unbilled_share",
    "excess_gap_hourly",
    "excess_gap_fixed_fee",
    "discount_over_policy_unapproved",
    "discount_over_policy_approved",
    "unsigned_change_requests",
    "rate_shortfall",
]
# The indicators that are zero when a pattern is absent: a reason's contribution sums their log-odds.
PATTERN_INDICATORS = {
    "unbilled_hours": ["excess_gap_hourly"],
    "discount_abuse": ["discount_over_policy_unapproved"],
    "scope_creep": ["unsigned_change_requests", "excess_gap_fixed_fee"],
    "rate_below_card": ["rate_shortfall"],
}
LINEAR_COLUMNS = ["timesheet_late_pct", "manager_open_projects", "discount_pct"]
LOG_COLUMNS = ["days_to_invoice", "hours_logged", "rate_card"]
CATEGORY_COLUMNS = ["engagement_type", "client_tier"]


def _columns(frame: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    """The feature columns as numpy arrays: categories as they are, the rest as floats."""
    return {
        name: column if name in CATEGORY_COLUMNS else column.astype(np.float64)
        for name, column in fast.frame_columns(frame, names).items()
    }


def _indicators(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The raw inputs plus the leak indicators every pattern is judged on."""
    logged, billed, card, rate = c["hours_logged"], c["hours_billed"], c["rate_card"], c["billed_rate"]
    approved = c["discount_approved"]
    gap = np.clip(1.0 - billed / np.maximum(logged, 1e-9), -1.0, 1.0)
    excess_gap = np.maximum(gap - WRITE_OFF_TOLERANCE, 0.0)
    fixed_fee = c["engagement_type"] == "fixed_fee"
    limit = np.full(len(gap), min(DISCOUNT_POLICY_PCT.values()))  # unknown tier: the strictest policy
    for tier, policy in DISCOUNT_POLICY_PCT.items():
        limit[c["client_tier"] == tier] = policy
    over_policy = np.maximum(c["discount_pct"] - limit, 0.0)
    return {
        **c,
        "unbilled_share": gap,
        "excess_gap_hourly": np.where(fixed_fee, 0.0, excess_gap),
        "excess_gap_fixed_fee": np.where(fixed_fee, excess_gap, 0.0),
        "discount_over_policy_unapproved": over_policy * (1.0 - approved),
        "discount_over_policy_approved": over_policy * approved,
        "unsigned_change_requests": np.maximum(c["change_requests"] - c["change_orders_signed"], 0.0),
        "rate_shortfall": np.maximum(1.0 - rate / np.maximum(card, 1e-9) - RATE_TOLERANCE, 0.0),
    }


def _exposures(x: dict[str, np.ndarray]) -> np.ndarray:
    """Money at stake per pattern (rows x PATTERNS), from the indicators; 0 where absent."""
    logged, billed, card, rate = x["hours_logged"], x["hours_billed"], x["rate_card"], x["billed_rate"]
    unbilled = x["excess_gap_hourly"] * logged * card
    discount = x["discount_over_policy_unapproved"] / 100.0 * billed * rate
    scope = (x["unsigned_change_requests"] * CHANGE_REQUEST_HOURS + x["excess_gap_fixed_fee"] * logged) * card
    below_card = x["rate_shortfall"] * billed * card
    return np.column_stack([unbilled, discount, scope, below_card])


class RevenueLeakModel(CatalogModel):
    slug = "revenue-leak"
    title = "Revenue leakage"
    task = "classification"
    summary = "Probability that an invoice leaks revenue, the money at stake and the leak patterns behind it."
    entity_label = "invoice"
    main_score = "leak_probability"
    default_training_rows = 20_000
    target = Target(
        name="is_leak",
        kind="binary",
        description="1 if a billing audit found revenue missing from the invoice.",
    )
    features: ClassVar[tuple[Feature, ...]] = (
        Feature(
            "engagement_type",
            "category",
            "Commercial model of the engagement the invoice belongs to.",
            example="time_and_materials",
            categories=ENGAGEMENT_TYPES,
        ),
        Feature(
            "client_tier",
            "category",
            "Client tier; sets the discount a manager may grant without approval.",
            example="key",
            categories=CLIENT_TIERS,
        ),
        Feature(
            "hours_logged",
            "number",
            "Billable hours the team logged on timesheets for the invoiced period.",
            example=132.5,
            unit="hours",
            minimum=0.5,
            maximum=5000,
        ),
        Feature(
            "hours_billed",
            "number",
            "Hours on the invoice (for a fixed fee: the hours the invoiced fee covers).",
            example=128.0,
            unit="hours",
            minimum=0,
            maximum=10000,
        ),
        Feature(
            "rate_card",
            "number",
            "Card rate of the staff mix on the engagement.",
            example=145.0,
            unit="EUR/hour",
            minimum=20,
            maximum=1000,
        ),
        Feature(
            "billed_rate",
            "number",
            "Average hourly rate on the invoice, before discount.",
            example=145.0,
            unit="EUR/hour",
            minimum=0,
            maximum=1500,
        ),
        Feature(
            "discount_pct",
            "number",
            "Discount granted on the invoice.",
            example=5.0,
            unit="%",
            minimum=0,
            maximum=100,
        ),
        Feature(
            "discount_approved",
            "boolean",
            "Whether a discount above the tier policy has a recorded approval.",
            example=False,
            required=False,
            default=False,
        ),
        Feature(
            "change_requests",
            "integer",
            "Scope change requests the client raised in the period.",
            example=1,
            unit="requests",
            minimum=0,
            maximum=100,
        ),
        Feature(
            "change_orders_signed",
            "integer",
            "Change requests turned into signed, billable change orders.",
            example=1,
            unit="requests",
            minimum=0,
            maximum=100,
        ),
        Feature(
            "days_to_invoice",
            "integer",
            "Days between the end of the period and the invoice being issued.",
            example=5,
            unit="days",
            minimum=0,
            maximum=365,
        ),
        Feature(
            "timesheet_late_pct",
            "number",
            "Share of the period's timesheets submitted after the deadline.",
            example=12.0,
            unit="%",
            minimum=0,
            maximum=100,
        ),
        Feature(
            "manager_open_projects",
            "integer",
            "Projects the engagement manager runs at the same time.",
            example=6,
            unit="projects",
            minimum=1,
            maximum=60,
        ),
    )

    # --- Synthetic data --------------------------------------------------------------------

    def generate(self, n: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        d = float(np.clip(drift, 0.0, 1.0))

        kind = rng.choice(len(ENGAGEMENT_TYPES), size=n, p=[0.55, 0.30, 0.15])
        tier = rng.choice(len(CLIENT_TIERS), size=n, p=[0.15, 0.35, 0.50])
        fixed_fee = kind == 1
        logged = np.clip(np.round(rng.lognormal(np.log(120.0), 0.8, n), 1), 1.0, 3000.0)

        gap = rng.beta(1.2, 40.0, n)
        gap = np.where(fixed_fee, rng.normal(0.0, 0.06, n), gap)
        shortfall = rng.random(n) < 0.10 + 0.08 * d
        gap = gap + shortfall * rng.uniform(0.03, 0.45, n)
        billed = np.clip(np.round(logged * (1.0 - np.clip(gap, -0.4, 0.95)), 1), 0.0, 4500.0)

        card = np.clip(np.round(rng.lognormal(np.log(140.0), 0.3, n)), 50.0, 450.0)
        rate_factor = np.exp(rng.normal(0.01, 0.03, n))
        outdated = rng.random(n) < 0.07
        rate_factor = np.where(outdated, rng.uniform(0.75, 0.95, n), rate_factor)
        billed_rate = np.round(card * rate_factor, 2)

        limit = np.array([DISCOUNT_POLICY_PCT[t] for t in CLIENT_TIERS])[tier]
        discount = np.where(rng.random(n) < 0.45, 0.0, np.minimum(rng.gamma(2.0, 3.0, n), limit))
        generous = rng.random(n) < 0.12 + 0.08 * d
        discount = np.round(np.where(generous, limit + rng.uniform(2.0, 20.0, n), discount), 1)
        approved = np.where(generous, rng.random(n) < 0.5, rng.random(n) < 0.3)

        requests = rng.poisson(0.6 + 1.0 * fixed_fee)
        signed = rng.binomial(requests, 0.75)
        days = np.clip(np.round(rng.lognormal(np.log(6.0 + 4.0 * d), 0.8, n)), 0, 300).astype(np.int64)
        late = np.round(100.0 * rng.beta(1.5 + 1.0 * d, 8.0, n), 1)
        load = np.minimum(1 + rng.poisson(5.0 + 2.0 * d, n), 50)

        frame = pd.DataFrame(
            {
                "engagement_type": np.array(ENGAGEMENT_TYPES, dtype=object)[kind],
                "client_tier": np.array(CLIENT_TIERS, dtype=object)[tier],
                "hours_logged": logged,
                "hours_billed": billed,
                "rate_card": card,
                "billed_rate": billed_rate,
                "discount_pct": discount,
                "discount_approved": approved,
                "change_requests": requests.astype(np.int64),
                "change_orders_signed": signed.astype(np.int64),
                "days_to_invoice": days,
                "timesheet_late_pct": late,
                "manager_open_projects": load.astype(np.int64),
            }
        )

        x = _indicators(_columns(frame, self.feature_names()))
        pressure = 0.12 * (load - 6.0)
        logits = np.column_stack(
            [
                -4.3 + 20.0 * x["excess_gap_hourly"] + 2.0 * late / 100.0 + pressure + 0.35 * np.log1p(days / 7.0),
                -4.6
                + 0.35 * (1.0 + 0.4 * d) * x["discount_over_policy_unapproved"]
                + 0.08 * x["discount_over_policy_approved"]
                + 0.08 * (load - 6.0),
                -4.4 + 0.9 * x["unsigned_change_requests"] + 12.0 * x["excess_gap_fixed_fee"],
                -4.6 + 25.0 * x["rate_shortfall"],
            ]
        )
        p = fast.sigmoid(logits)
        happened = rng.random(p.shape) < p
        gross = billed * billed_rate
        amounts = np.maximum(_exposures(x), 0.02 * gross[:, None])
        frame["is_leak"] = happened.any(axis=1).astype(np.int64)
        frame["truth_probability"] = 1.0 - np.prod(1.0 - p, axis=1)
        frame["truth_leak_amount"] = np.round((happened * amounts).sum(axis=1), 2)
        for k, pattern in enumerate(PATTERNS):
            frame[f"truth_{pattern}"] = happened[:, k]
        return frame

    # --- Training --------------------------------------------------------------------------

    def _pipeline(self, seed: int) -> Any:
        """The scikit-learn pipeline to fit (imported here: serving never imports scikit-learn)."""
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

        preprocess = ColumnTransformer(
            [
                ("indicator", StandardScaler(), INDICATOR_COLUMNS),
                ("linear", StandardScaler(), LINEAR_COLUMNS),
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
                ("category", OneHotEncoder(handle_unknown="ignore"), CATEGORY_COLUMNS),
            ],
            sparse_threshold=0.0,
        )
        return Pipeline(
            [("preprocess", preprocess), ("classifier", LogisticRegression(C=1.0, max_iter=2000, random_state=seed))]
        )

    def fit(self, frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
        pipeline = self._pipeline(seed)
        inputs = pd.DataFrame(_indicators(_columns(frame, self.feature_names())))
        pipeline.fit(inputs, frame[self.target.name].to_numpy(dtype=np.int64))
        return {
            "pipeline": pipeline,
            "feature_names": self.feature_names(),
            "patterns": list(PATTERNS),
        }

    # --- Answers ---------------------------------------------------------------------------

    def _probability(self, artifact: dict[str, Any], x: dict[str, np.ndarray]) -> np.ndarray:
        return fast.sigmoid(fast.decision_function(artifact["pipeline"], x))

    def _pattern_weights(self, artifact: dict[str, Any], x: dict[str, np.ndarray]) -> np.ndarray:
        """Log-odds each pattern adds against the same invoice without it (rows x PATTERNS)."""
        pipeline: compiled.Pipeline = compiled.of(artifact["pipeline"])
        preprocess: compiled.ColumnTransformer = pipeline.named_steps["preprocess"]
        scaler: compiled.StandardScaler = preprocess.named_transformers_["indicator"]
        coef = pipeline.named_steps["classifier"].coef_[0][preprocess.output_indices_["indicator"]]
        per_unit = dict(zip(INDICATOR_COLUMNS, coef / scaler.scale_, strict=True))
        return np.column_stack(
            [sum(per_unit[column] * x[column] for column in PATTERN_INDICATORS[pattern]) for pattern in PATTERNS]
        )

    def predict(self, artifact: dict[str, Any], frame: pd.DataFrame) -> list[dict[str, Any]]:
        x = _indicators(_columns(frame, artifact["feature_names"]))
        probability = np.round(self._probability(artifact, x), 4)
        exposures = np.round(_exposures(x), 2)
        weights = self._pattern_weights(artifact, x)
        amount = np.round(exposures.sum(axis=1), 2)
        expected = np.round(probability * amount, 2)
        details = _details(x)
        patterns = artifact["patterns"]
        order = np.argsort(-weights, axis=1).tolist()
        exposure_rows = exposures.tolist()
        weight_rows = np.round(weights, 4).tolist()
        answers = []
        for i, score in enumerate(probability.tolist()):
            reasons = [
                {
                    "pattern": patterns[k],
                    "amount": exposure_rows[i][k],
                    "contribution": weight_rows[i][k],
                    "detail": details[k][i],
                }
                for k in order[i]
                if exposure_rows[i][k] > 0.0
            ]
            answers.append(
                {
                    "leak_probability": score,
                    "estimated_leaked_amount": float(amount[i]),
                    "expected_loss": float(expected[i]),
                    "currency": "EUR",
                    "reasons": reasons,
                }
            )
        return answers

    def evaluate(self, artifact: dict[str, Any], frame: pd.DataFrame) -> dict[str, float]:
        from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

        probability = self._probability(artifact, _indicators(_columns(frame, artifact["feature_names"])))
        y = frame[self.target.name].to_numpy(dtype=np.int64)
        top = np.argsort(-probability)[: max(1, len(y) // 10)]
        return {
            "average_precision": float(average_precision_score(y, probability)),
            "roc_auc": float(roc_auc_score(y, probability)),
            "log_loss": float(log_loss(y, probability, labels=[0, 1])),
            "brier": float(brier_score_loss(y, probability)),
            "base_rate": float(y.mean()),
            "lift_at_10pct": float(y[top].mean() / max(y.mean(), 1e-12)),
            "rows": float(len(y)),
        }


def _details(x: dict[str, np.ndarray]) -> list[list[str]]:
    """One human sentence per pattern and row, in PATTERNS order."""
    logged, billed, gap = x["hours_logged"].tolist(), x["hours_billed"].tolist(), x["unbilled_share"].tolist()
    discount, over = x["discount_pct"].tolist(), x["discount_over_policy_unapproved"].tolist()
    unsigned, overrun = x["unsigned_change_requests"].tolist(), x["excess_gap_fixed_fee"].tolist()
    rate, card = x["billed_rate"].tolist(), x["rate_card"].tolist()
    tolerance = f"{WRITE_OFF_TOLERANCE:.0%}"
    return [
        [
            f"{lg - bl:.1f} of {lg:.1f} logged hours not billed ({g:.0%}; tolerance {tolerance})"
            for lg, bl, g in zip(logged, billed, gap, strict=True)
        ],
        [
            f"{dc:.1f}% discount, {ov:.1f} points above the tier policy without approval"
            for dc, ov in zip(discount, over, strict=True)
        ],
        [
            f"{us:.0f} change requests without a signed change order; fixed-fee overrun {ovr:.0%} above tolerance"
            for us, ovr in zip(unsigned, overrun, strict=True)
        ],
        [f"billed at {rt:.2f}/h against a card rate of {cd:.2f}/h" for rt, cd in zip(rate, card, strict=True)],
    ]


MODEL = RevenueLeakModel()
