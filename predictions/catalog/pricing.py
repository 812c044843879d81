"""Pricing: the quote price that maximises expected margin (or revenue) on a deal.

Not a plain regression. The model learns the *win probability* of a quote as a function of
its price relative to the list price and of the deal (service, client segment, size in hours,
competition, urgency, relationship, formal tender), from historical quotes labelled won/lost.
For a request it then searches a price grid and returns the price with the highest expected
value, the expected win rate and value there, the range of near-optimal prices, and the
alternatives it considered.

Objective (``objective`` feature, default ``margin``):

- ``margin``: expected margin = P(win | price) * (price - cost). The default: a services firm
  is paid for its margin, and revenue bought below cost is a loss.
- ``revenue``: expected revenue = P(win | price) * price (e.g. filling a bench).

Whatever the objective, the recommended price is never below the delivery cost nor the
``price_floor``; a ``price_ceiling`` is honoured unless it is below the floor or the cost (the
floor and the cost win). Prices outside the range of historical discounts (the central 99%
of quoted/list ratios seen in training) are not searched, because the model has not seen
what happens there; a floor or ceiling outside that range pins the price to it.

Generator (one row = one historical quote of a consultancy/agency):

- ``service`` sets the list hourly rate (strategy 240 EUR/h ... training 120 EUR/h, times a
  seniority-mix factor); ``list_price`` = ``estimated_hours`` * list rate; ``cost`` = hours *
  list rate * U(0.45, 0.68) (delivery staff mix).
- ``estimated_hours`` is lognormal by segment (startup ~120 h ... enterprise ~1,200 h).
- ``competitors`` is Poisson, higher for public sector, enterprise and formal tenders.
- Reps quote ``quoted_price`` = list * exp(N(mu, 0.2)), discounting more under competition
  and for enterprise/tenders, less when urgent or for existing clients; quotes respect the
  ``price_floor``/``price_ceiling`` policy recorded on ~30%/~20% of deals.
- True win probability (``true_win_probability``): logit = a(deal) - b(deal) * log(price/list),
  where a rises with an existing relationship (saturating in years), urgency and smaller
  competition, and falls for tenders, bigger deals and public-sector buyers; the price
  sensitivity b = 5 * segment factor (startup 1.35 ... enterprise 0.8) * (1 + 0.1 * competitors)
  * urgency factor (high 0.7, low 1.2) * 1.2 for tenders * 0.85 for existing clients.
- ``drift`` shifts inputs (more competitors, more enterprise/public buyers, smaller deals,
  deeper discounts) and the relationship: buyers become more price sensitive (b * (1 + 0.3
  drift)) and win rates at list fall (a - 0.3 drift).

Truth columns: ``truth_win_probability`` (at the quoted price), ``truth_base_logit`` (a) and
``truth_price_sensitivity`` (b).

Model (``fit``): a ``ColumnTransformer`` (one-hot service, segment and urgency; log1p + scaling
of hours and relationship years; scaled competitors; the two flags; log(quoted/list) passed
through), all pairwise products (``PolynomialFeatures(interaction_only=True)``) and a
``LogisticRegression``. The price term has no square, so every deal's learned win curve is
logit = A(deal) + B(deal) * log(price/list), the generator's own functional form with A and B
learned as functions of the deal. ``predict`` computes A and B per deal with numpy from the
fitted parameters (``fit`` checks this fast path against the pipeline to 1e-6: a
ColumnTransformer call costs milliseconds even for one row), then values a 121-point price grid
for all deals at once. ``evaluate`` uses the pipeline itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from predictions.catalog import compiled, fast
from predictions.catalog.base import CatalogModel, Feature, Target, rounded_list

SERVICES = ("strategy", "software_development", "data_analytics", "design", "cloud_operations", "training")
SEGMENTS = ("startup", "smb", "mid_market", "enterprise", "public_sector")
URGENCIES = ("low", "normal", "high")
OBJECTIVES = ("margin", "revenue")

# List hourly rates (EUR/h) of a mid-sized European consultancy, by service.
_LIST_RATE = dict(zip(SERVICES, (240.0, 150.0, 170.0, 130.0, 140.0, 120.0), strict=True))
_SERVICE_SHARE = np.array([0.12, 0.30, 0.20, 0.14, 0.14, 0.10])
_SERVICE_SHARE_DRIFTED = np.array([0.10, 0.24, 0.28, 0.10, 0.20, 0.08])
_SEGMENT_SHARE = np.array([0.15, 0.30, 0.27, 0.20, 0.08])
_SEGMENT_SHARE_DRIFTED = np.array([0.10, 0.22, 0.25, 0.28, 0.15])
_MEDIAN_HOURS = np.array([120.0, 200.0, 450.0, 1200.0, 800.0])  # by segment
_TENDER_RATE = np.array([0.02, 0.05, 0.15, 0.35, 0.70])  # formal RFP share by segment

# True win-curve coefficients (see the module docstring).
_SEGMENT_INTERCEPT = np.array([0.2, 0.3, 0.0, -0.2, -0.4])
_SERVICE_INTERCEPT = np.array([-0.2, 0.0, 0.1, 0.15, 0.05, 0.4])
_URGENCY_INTERCEPT = np.array([-0.3, 0.0, 0.35])
_SEGMENT_SENSITIVITY = np.array([1.35, 1.2, 1.0, 0.8, 1.3])
_URGENCY_SENSITIVITY = np.array([1.2, 1.0, 0.7])
_BASE_SENSITIVITY = 5.0

_GRID_POINTS = 121  # ~0.6% price steps over the widest search range: finer than any quote is rounded
_RANGE_TOLERANCE = 0.02  # prices within 2% of the best expected value form the "price range"
_ALTERNATIVES = 6  # evenly spaced grid prices shown next to the recommendation
_SUPPORT_QUANTILES = (0.005, 0.995)  # the price ratios the model has seen enough of to trust

_MAX_MONEY = 20_000_000.0  # EUR; the largest quote the schema accepts

_CATEGORICAL = ["service", "client_segment", "urgency"]
_LOG_NUMERIC = ["estimated_hours", "relationship_years"]
_NUMERIC = ["competitors"]
_FLAGS = ["existing_client", "formal_tender"]
_PRICE = "log_price_ratio"


def _codes(values: pd.Series, categories: tuple[str, ...]) -> np.ndarray:
    codes = pd.Categorical(values.astype(str), categories=list(categories)).codes
    if (codes < 0).any():
        raise ValueError(f"unknown category in {values.name}: expected one of {categories}")
    return np.asarray(codes)


def _deal_terms(frame: pd.DataFrame, drift: float) -> tuple[np.ndarray, np.ndarray]:
    """The true intercept a(deal) and price sensitivity b(deal) of the win curve."""
    segment = _codes(frame["client_segment"], SEGMENTS)
    service = _codes(frame["service"], SERVICES)
    urgency = _codes(frame["urgency"], URGENCIES)
    competitors = frame["competitors"].to_numpy(dtype=float)
    existing = frame["existing_client"].to_numpy(dtype=float)
    tender = frame["formal_tender"].to_numpy(dtype=float)
    years = frame["relationship_years"].to_numpy(dtype=float)
    hours = frame["estimated_hours"].to_numpy(dtype=float)
    intercept = (
        0.1
        + _SEGMENT_INTERCEPT[segment]
        + _SERVICE_INTERCEPT[service]
        + _URGENCY_INTERCEPT[urgency]
        + 0.6 * existing
        + 0.5 * (1.0 - np.exp(-years / 4.0))
        - 0.28 * competitors
        - 0.35 * tender
        - 0.12 * np.log(hours / 300.0)
        - 0.3 * drift
    )
    sensitivity = (
        _BASE_SENSITIVITY
        * _SEGMENT_SENSITIVITY[segment]
        * (1.0 + 0.1 * competitors)
        * _URGENCY_SENSITIVITY[urgency]
        * np.where(tender > 0, 1.2, 1.0)
        * np.where(existing > 0, 0.85, 1.0)
        * (1.0 + 0.3 * drift)
    )
    return intercept, sensitivity


def true_win_probability(frame: pd.DataFrame, price: Any, drift: float = 0.0) -> np.ndarray:
    """The generator's true P(win) of each deal of ``frame`` quoted at ``price`` (EUR).

    ``price`` is a scalar, an array of one price per row (shape ``(n,)``), or a grid of prices
    per row (shape ``(n, k)``). Ground truth only the generator knows, for tests.
    """
    intercept, sensitivity = _deal_terms(frame, drift)
    list_price = frame["list_price"].to_numpy(dtype=float)
    price = np.asarray(price, dtype=float)
    if price.ndim == 2:
        intercept, sensitivity, list_price = intercept[:, None], sensitivity[:, None], list_price[:, None]
    return fast.sigmoid(intercept - sensitivity * np.log(price / list_price))


# --- Fast path ------------------------------------------------------------------------------
# A ColumnTransformer costs milliseconds per call whatever the row count; serving answers one
# deal at a time, so predict computes the same logit from the fitted pipeline's parameters
# with numpy (``fast``; fit checks that both agree to 1e-6).


def _design_columns(data: Any, log_price_ratio: np.ndarray) -> dict[str, np.ndarray]:
    """The pipeline's input columns from ``data`` (a frame or arrays by name): deal features
    plus log(price / list price)."""
    columns = {name: np.asarray(data[name]).astype(str).astype(object) for name in _CATEGORICAL}
    for name in [*_LOG_NUMERIC, *_NUMERIC, *_FLAGS]:
        columns[name] = np.asarray(data[name], dtype=float)
    columns[_PRICE] = np.asarray(log_price_ratio, dtype=float)
    return columns


def _win_curve(pipeline: compiled.Pipeline, design: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per deal, (A, B) with logit P(win) = A + B * log(price / list price); ``design`` holds
    log(price / list price) = 0. The pipeline's steps: encode, interactions, classifier."""
    encoder, interactions, classifier = (step for _, step in compiled.of(pipeline).steps)
    encoded = fast.encode(encoder, design)
    at_list = fast.linear(classifier, fast.transform(interactions, encoded))
    encoded[:, -1] = 1.0  # log(price / list price), passed through last
    return at_list, fast.linear(classifier, fast.transform(interactions, encoded)) - at_list


class PricingModel(CatalogModel):
    slug = "pricing"
    title = "Quote pricing"
    task = "optimisation"
    summary = "Recommended quote price with its win rate, expected margin and near-optimal price range."
    entity_label = "deal"
    main_score = "recommended_price"
    target = Target(
        name="won",
        kind="binary",
        description="1 if the client accepted the quote at quoted_price, 0 if the deal was lost.",
    )
    features: ClassVar[tuple[Feature, ...]] = (
        Feature(
            "service",
            "category",
            "Service line quoted.",
            "software_development",
            categories=SERVICES,
        ),
        Feature(
            "client_segment",
            "category",
            "Client segment of the buyer.",
            "mid_market",
            categories=SEGMENTS,
        ),
        Feature(
            "estimated_hours",
            "number",
            "Size of the deal: hours of work in the scope.",
            450.0,
            unit="hours",
            minimum=1.0,
            maximum=50_000.0,
        ),
        Feature(
            "list_price",
            "number",
            "Price of the scope at list rates (hours times list hourly rates): the reference for discounts.",
            67_500.0,
            unit="EUR",
            minimum=1.0,
            maximum=_MAX_MONEY,
        ),
        Feature(
            "cost",
            "number",
            "Estimated delivery cost of the scope (loaded staff cost). The price is never recommended below it.",
            37_000.0,
            unit="EUR",
            minimum=0.0,
            maximum=_MAX_MONEY,
        ),
        Feature(
            "competitors",
            "integer",
            "Number of competing firms known to be bidding.",
            2,
            minimum=0,
            maximum=20,
        ),
        Feature(
            "urgency",
            "category",
            "How urgently the client needs the work started.",
            "normal",
            categories=URGENCIES,
        ),
        Feature(
            "existing_client",
            "boolean",
            "The client has bought from us before.",
            True,
        ),
        Feature(
            "relationship_years",
            "number",
            "Years since the first project with this client (0 for a new client).",
            3.5,
            unit="years",
            minimum=0.0,
            maximum=50.0,
        ),
        Feature(
            "formal_tender",
            "boolean",
            "The deal is a formal tender / RFP process.",
            False,
        ),
        Feature(
            "quoted_price",
            "number",
            "Price quoted (historical data: the price the outcome refers to). In a request, an optional "
            "price you are considering: its win rate and expected value are returned too. 0 = none.",
            62_000.0,
            unit="EUR",
            minimum=0.0,
            maximum=_MAX_MONEY,
            required=False,
            default=0.0,
        ),
        Feature(
            "price_floor",
            "number",
            "Lowest price allowed by policy (0 = no floor besides the cost).",
            0.0,
            unit="EUR",
            minimum=0.0,
            maximum=_MAX_MONEY,
            required=False,
            default=0.0,
        ),
        Feature(
            "price_ceiling",
            "number",
            "Highest price allowed, e.g. the client's stated budget (0 = no ceiling).",
            0.0,
            unit="EUR",
            minimum=0.0,
            maximum=_MAX_MONEY,
            required=False,
            default=0.0,
        ),
        Feature(
            "objective",
            "category",
            "What the recommended price maximises: expected margin (price - cost) or expected revenue.",
            "margin",
            categories=OBJECTIVES,
            required=False,
            default="margin",
        ),
    )

    # --- Generator ----------------------------------------------------------------------

    def generate(self, n: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        drift = float(np.clip(drift, 0.0, 1.0))
        service_share = (1 - drift) * _SERVICE_SHARE + drift * _SERVICE_SHARE_DRIFTED
        segment_share = (1 - drift) * _SEGMENT_SHARE + drift * _SEGMENT_SHARE_DRIFTED
        service = rng.choice(len(SERVICES), size=n, p=service_share)
        segment = rng.choice(len(SEGMENTS), size=n, p=segment_share)
        urgency = rng.choice(len(URGENCIES), size=n, p=[0.25, 0.55, 0.20])

        hours = np.exp(np.log(_MEDIAN_HOURS[segment] * (1 - 0.25 * drift)) + rng.normal(0.0, 0.8, n))
        hours = np.round(np.clip(hours, 8.0, 20_000.0))
        list_rates = np.array([_LIST_RATE[s] for s in SERVICES])
        list_rate = list_rates[service] * np.exp(rng.normal(0.0, 0.1, n))
        list_price = np.round(hours * list_rate)
        cost = np.round(list_price * rng.uniform(0.45, 0.68, n))

        existing = rng.random(n) < 0.45
        years = np.where(existing, np.clip(np.round(rng.gamma(2.0, 2.5, n), 1), 0.5, 30.0), 0.0)
        tender = rng.random(n) < _TENDER_RATE[segment]
        competitor_rate = 1.5 + 1.0 * (segment == 4) + 0.5 * (segment == 3) + 0.8 * tender + 1.0 * drift
        competitors = np.clip(rng.poisson(competitor_rate), 0, 10)

        floor = np.where(rng.random(n) < 0.3, np.round(cost * rng.uniform(1.05, 1.3, n)), 0.0)
        ceiling = np.where(rng.random(n) < 0.2, np.round(list_price * rng.uniform(1.05, 1.4, n)), 0.0)
        ceiling = np.where((ceiling > 0) & (ceiling < floor * 1.05), np.round(floor * 1.05), ceiling)

        mu = (
            -0.02
            - 0.025 * competitors
            + 0.06 * (urgency == 2)
            - 0.04 * (segment == 3)
            - 0.03 * tender
            + 0.03 * existing
            - 0.05 * drift
        )
        ratio = np.clip(np.exp(mu + rng.normal(0.0, 0.2, n)), 0.5, 1.8)
        quoted = np.round(ratio * list_price)
        quoted = np.maximum(quoted, floor)
        quoted = np.where(ceiling > 0, np.minimum(quoted, ceiling), quoted)

        objective = np.where(rng.random(n) < 0.8, "margin", "revenue")
        frame = pd.DataFrame(
            {
                "service": np.asarray(SERVICES, dtype=object)[service],
                "client_segment": np.asarray(SEGMENTS, dtype=object)[segment],
                "estimated_hours": hours,
                "list_price": list_price,
                "cost": cost,
                "competitors": competitors.astype(np.int64),
                "urgency": np.asarray(URGENCIES, dtype=object)[urgency],
                "existing_client": existing,
                "relationship_years": years,
                "formal_tender": tender,
                "quoted_price": quoted,
                "price_floor": floor,
                "price_ceiling": ceiling,
                "objective": objective.astype(object),
            }
        )
        intercept, sensitivity = _deal_terms(frame, drift)
        probability = fast.sigmoid(intercept - sensitivity * np.log(quoted / list_price))
        frame["won"] = (rng.random(n) < probability).astype(np.int64)
        frame["truth_win_probability"] = probability
        frame["truth_base_logit"] = intercept
        frame["truth_price_sensitivity"] = sensitivity
        return frame

    # --- Training -----------------------------------------------------------------------

    @staticmethod
    def _design(frame: pd.DataFrame, log_price_ratio: np.ndarray) -> pd.DataFrame:
        """The pipeline's input: deal features plus log(price / list price)."""
        return pd.DataFrame(_design_columns(frame, log_price_ratio))

    def fit(self, frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
        usable = frame[(frame["quoted_price"] > 0) & (frame["list_price"] > 0)]
        log_ratio = np.log(usable["quoted_price"].to_numpy(dtype=float) / usable["list_price"].to_numpy(dtype=float))
        design = self._design(usable, log_ratio)
        # The price term enters linearly and only in pairwise products with deal features
        # (interaction_only), so logit = A(deal) + B(deal) * log(price/list): a constant-
        # elasticity win curve per deal that predict evaluates on a whole grid at once.
        # scikit-learn is imported here: serving never imports it (see compiled.py).
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, PolynomialFeatures, StandardScaler

        encoder = ColumnTransformer(
            [
                ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), _CATEGORICAL),
                (
                    "log_numeric",
                    Pipeline([("log", FunctionTransformer(np.log1p)), ("scale", StandardScaler())]),
                    _LOG_NUMERIC,
                ),
                ("numeric", StandardScaler(), _NUMERIC),
                ("flags", "passthrough", [*_FLAGS, _PRICE]),
            ]
        )
        pipeline = Pipeline(
            [
                ("encode", encoder),
                ("interactions", PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)),
                ("classifier", LogisticRegression(C=1.0, max_iter=3000, random_state=seed)),
            ]
        )
        pipeline.fit(design, usable[self.target.name].to_numpy(dtype=int))
        low, high = np.quantile(log_ratio, _SUPPORT_QUANTILES)
        artifact = {
            "pipeline": pipeline,
            "log_ratio_support": [float(low), float(high)],
            "training_rows": len(usable),
            "training_win_rate": float(usable[self.target.name].mean()),
        }
        check = design.iloc[: min(len(design), 500)]
        gap = np.abs(fast.decision_function(pipeline, check) - pipeline.decision_function(check)).max()
        if not gap < 1e-6:  # the fast path must be the pipeline, only cheaper per call
            raise RuntimeError(f"pricing fast path disagrees with the pipeline by {gap}")
        return artifact

    # --- Answers ------------------------------------------------------------------------

    def _curve(self, artifact: dict[str, Any], data: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per deal, (A, B) with logit P(win) = A + B * log(price / list price)."""
        return _win_curve(artifact["pipeline"], _design_columns(data, np.zeros(n)))

    def predict(self, artifact: dict[str, Any], frame: pd.DataFrame) -> list[dict[str, Any]]:
        if len(frame) == 0:
            return []
        data = fast.frame_columns(frame, self.feature_names())
        intercept, slope = self._curve(artifact, data, len(frame))
        list_price = data["list_price"].astype(float)
        cost = data["cost"].astype(float)
        hours = data["estimated_hours"].astype(float)
        quoted = np.nan_to_num(data["quoted_price"].astype(float))
        floor = np.maximum(np.nan_to_num(data["price_floor"].astype(float)), cost)
        ceiling = np.nan_to_num(data["price_ceiling"].astype(float))
        ceiling = np.where(ceiling > 0, np.maximum(ceiling, floor), np.inf)
        margin_objective = data["objective"].astype(str) != "revenue"

        # Search the historical price ratios the model knows, inside the allowed interval.
        support_low, support_high = artifact["log_ratio_support"]
        low = np.clip(list_price * np.exp(support_low), floor, ceiling)
        high = np.clip(list_price * np.exp(support_high), floor, ceiling)
        steps = np.linspace(0.0, 1.0, _GRID_POINTS)
        grid = np.exp(np.log(low)[:, None] + np.log(high / low)[:, None] * steps[None, :])
        win = fast.sigmoid(intercept[:, None] + slope[:, None] * np.log(grid / list_price[:, None]))
        revenue = win * grid
        margin = win * (grid - cost[:, None])
        value = np.where(margin_objective[:, None], margin, revenue)

        rows = np.arange(len(frame))
        best = value.argmax(axis=1)
        best_value = value[rows, best]
        near = value >= (best_value - _RANGE_TOLERANCE * np.abs(best_value))[:, None]
        range_low = np.where(near, grid, np.inf).min(axis=1)
        range_high = np.where(near, grid, -np.inf).max(axis=1)
        price = grid[rows, best]
        p_best = win[rows, best]
        elasticity = slope * (1.0 - p_best)  # d log P(win) / d log price at the recommendation

        alt_index = np.unique(np.linspace(0, _GRID_POINTS - 1, _ALTERNATIVES).round().astype(int))
        alt_price, alt_win = grid[:, alt_index], win[:, alt_index]

        quoted_win = fast.sigmoid(intercept + slope * np.log(np.where(quoted > 0, quoted, list_price) / list_price))
        quoted_value = np.where(margin_objective, quoted_win * (quoted - cost), quoted_win * quoted)

        columns = {
            "price": rounded_list(price, 2),
            "win": rounded_list(p_best, 4),
            "revenue": rounded_list(p_best * price, 2),
            "margin": rounded_list(p_best * (price - cost), 2),
            "margin_if_won": rounded_list(price - cost, 2),
            "margin_pct": rounded_list(np.where(price > 0, (price - cost) / price, 0.0), 4),
            "discount": rounded_list(1.0 - price / list_price, 4),
            "rate": rounded_list(price / hours, 2),
            "elasticity": rounded_list(elasticity, 4),
            "range_low": rounded_list(range_low, 2),
            "range_high": rounded_list(range_high, 2),
            "search_low": rounded_list(low, 2),
            "search_high": rounded_list(high, 2),
            "quoted_win": rounded_list(quoted_win, 4),
            "quoted_value": rounded_list(quoted_value, 2),
            "quoted_gap": rounded_list(quoted_value - best_value, 2),
        }
        alt_prices = rounded_list(alt_price, 2)
        alt_wins = rounded_list(alt_win, 4)
        alt_revenue = rounded_list(alt_win * alt_price, 2)
        alt_margin = rounded_list(alt_win * (alt_price - cost[:, None]), 2)
        alt_discount = rounded_list(1.0 - alt_price / list_price[:, None], 4)
        objectives = np.where(margin_objective, "margin", "revenue").tolist()
        has_quote = (quoted > 0).tolist()

        answers = []
        for i in range(len(frame)):
            objective = objectives[i]
            alternatives = [
                {
                    "price": alt_prices[i][j],
                    "discount_vs_list": alt_discount[i][j],
                    "win_probability": alt_wins[i][j],
                    "expected_revenue": alt_revenue[i][j],
                    "expected_margin": alt_margin[i][j],
                    "expected_value": alt_margin[i][j] if objective == "margin" else alt_revenue[i][j],
                }
                for j in range(len(alt_index))
            ]
            answers.append(
                {
                    "recommended_price": columns["price"][i],
                    "objective": objective,
                    "expected_win_rate": columns["win"][i],
                    "expected_revenue": columns["revenue"][i],
                    "expected_margin": columns["margin"][i],
                    "expected_value": columns["margin"][i] if objective == "margin" else columns["revenue"][i],
                    "margin_if_won": columns["margin_if_won"][i],
                    "margin_pct_if_won": columns["margin_pct"][i],
                    "discount_vs_list": columns["discount"][i],
                    "effective_hourly_rate": columns["rate"][i],
                    "win_rate_elasticity": columns["elasticity"][i],
                    "price_range": {
                        "low": columns["range_low"][i],
                        "high": columns["range_high"][i],
                        "tolerance": _RANGE_TOLERANCE,
                    },
                    "search_range": {"low": columns["search_low"][i], "high": columns["search_high"][i]},
                    "alternatives": alternatives,
                    "at_quoted_price": (
                        {
                            "price": float(quoted[i]),
                            "win_probability": columns["quoted_win"][i],
                            "expected_value": columns["quoted_value"][i],
                            "expected_value_vs_recommended": columns["quoted_gap"][i],
                        }
                        if has_quote[i]
                        else None
                    ),
                }
            )
        return answers

    def evaluate(self, artifact: dict[str, Any], frame: pd.DataFrame) -> dict[str, float]:
        usable = frame[(frame["quoted_price"] > 0) & (frame["list_price"] > 0)]
        log_ratio = np.log(usable["quoted_price"].to_numpy(dtype=float) / usable["list_price"].to_numpy(dtype=float))
        from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

        probability = fast.sigmoid(fast.decision_function(artifact["pipeline"], self._design(usable, log_ratio)))
        won = usable[self.target.name].to_numpy(dtype=int)
        metrics = {
            "log_loss": float(log_loss(won, probability, labels=[0, 1])),
            "brier": float(brier_score_loss(won, probability)),
            "observed_win_rate": float(won.mean()),
            "predicted_win_rate": float(probability.mean()),
            "rows": float(len(usable)),
        }
        metrics["roc_auc"] = float(roc_auc_score(won, probability)) if 0 < won.sum() < len(won) else float("nan")
        # Price response: logit slope per unit log(price/list), averaged over the holdout deals.
        _, slope = self._curve(artifact, usable, len(usable))
        metrics["mean_price_slope"] = float(slope.mean())
        return metrics


MODEL = PricingModel()
