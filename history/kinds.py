"""What history needs to know about each catalog model beyond the catalog itself.

- the kind of outcome a model takes: a class label (0/1) or a number, from its target;
- whether ``main score - outcome`` is a meaningful error (the main score estimates the
  target: a probability of a binary target, or the number itself);
- which answer field is a class, for the class shares of trends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from predictions.catalog import get_catalog_model

OutcomeKind = Literal["label", "number"]


@dataclass(frozen=True)
class ClassRule:
    """How a prediction's class is read: an answer field, or the main score against a threshold."""

    field: str | None = None
    threshold: float | None = None
    boolean: bool = False  # the field holds true/false (SQLite reads JSON booleans as 1/0)


# Models whose answers carry a class. Classifiers without a class field get the predicted
# label at 0.5; the rest (prices, amounts, hours) have no class and no shares.
CLASS_RULES: dict[str, ClassRule] = {
    "churn": ClassRule(field="risk_band"),
    "profitability": ClassRule(field="band"),
    "anomaly": ClassRule(field="is_anomaly", boolean=True),
    "revenue-leak": ClassRule(threshold=0.5),
}


def outcome_kind(slug: str) -> OutcomeKind:
    """Binary targets, and the unsupervised anomaly model (a confirmed anomaly or not), take labels."""
    target = get_catalog_model(slug).target
    return "number" if target is not None and target.kind == "number" else "label"


def error_applies(slug: str) -> bool:
    """True where the main score estimates the outcome: classifiers' probabilities, regressors' numbers.

    Pricing's main score is a price and its outcome whether the deal was won; anomaly scores are
    not probabilities: neither has an error, only outcome coverage.
    """
    spec = get_catalog_model(slug)
    if spec.target is None:
        return False
    if spec.target.kind == "number":
        return True
    return spec.task == "classification"


def class_label(rule: ClassRule, raw: object) -> str:
    """The label a class query returned, the same on every database."""
    if rule.boolean:
        return "true" if raw in (True, 1, "1", "true") else "false"
    return str(raw)
