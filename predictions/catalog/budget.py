"""Budget: split a quarter's marketing/sales budget across channels for the highest return.

The model learns one response curve per channel (search, social, events, partners, email,
content), with diminishing returns, from historical plans: the spend per channel in a quarter,
the context (client segment the business unit sells to, quarter) and the return that followed.
For a request (total budget, per-channel minimum and maximum, context, last period's spend) it
allocates the budget to maximise the expected return under the limits, and returns the
allocation, its expected return and the alternatives a planner would compare it with.

Return (the target ``marketing_return``): gross profit (EUR) of the new business won in the
quarter that marketing and partner channels sourced, including a baseline the business earns
with no spend at all (referrals, brand). ``expected_return`` (the main score) is that whole
amount; ``incremental_return`` is the part the spend adds.

A row serves both as history and as request:

- ``spend_<channel>``: in history, what was spent in the quarter; in a request, last period's
  spend (used for the "proportional to last period" alternative).
- ``total_budget``: the budget to allocate (in history, the sum of the spends).
- ``min_<channel>`` / ``max_<channel>``: limits on a channel (contracts already signed, a
  team's capacity). Defaults: no minimum, no maximum (10M EUR, the schema's ceiling).

Generator (one row = one business unit's quarter):

- ``segment`` smb/mid_market/enterprise (40/35/25 %); ``quarter`` uniform.
- ``total_budget`` lognormal, median 40k/150k/500k EUR by segment (sd 0.45), split across
  channels by a Dirichlet around a typical mix (search 25 %, events 20 %, content 20 % ...),
  with ~10 % of channels unused in a quarter; limits drawn around the actual spend so the
  historical plan always respects them.
- True curves (``true_channel_returns``): g_c(s) = r0_c * K_c * (1 - exp(-s / K_c)) for search,
  partners and email (they saturate quickly), g_c(s) = r0_c * K_c * s / (s + K_c) for social,
  events and content (slow saturation); r0_c is the return of the first euro (search 3.6,
  social 2.1, events 2.7, partners 3.0, email 5.4, content 1.8 for mid-market), K_c the spend
  where saturation sets in (search 30k, social 60k, events 80k, partners 50k, email 8k,
  content 120k). Segment changes both: SMB curves saturate at half the spend and favour
  search/social/email, enterprise curves at twice the spend and favour events/partners/content.
  Quarter scales everything (Q1 0.95, Q2 1.0, Q3 0.85, Q4 1.1) and summer events return 25 %
  less. Baseline return 20k/40k/80k EUR by segment times the quarter factor.
- ``marketing_return`` = (baseline + sum of curves) * lognormal noise (sd 0.12, mean 1).
- ``drift`` shifts inputs (budgets up to +50 %, more enterprise units, spend moving from search
  to social) and the relationship (search's first-euro return down 35 %, social's up 40 %).

Truth columns: ``truth_expected_return``, ``truth_baseline_return``, ``truth_incremental_return``.

Model: each channel's curve is a non-negative mixture of saturating bases 1 - exp(-spend / k)
for ten scales k from 1k to 2M EUR (``FunctionTransformer`` steps on spend / k, then
``LinearRegression(positive=True)``), with separate terms per segment and per quarter, plus
context one-hots for the baseline. Non-negative weights make every learned curve increasing and
concave: diminishing returns hold by construction, not by luck of the noise, which is what
makes the optimum unique and the optimiser exact.

Optimisation: no term mixes two channels, so the model is additive across channels; ``fit``
evaluates it once on a grid of spends for each (segment, quarter, channel) and stores those
curves. ``predict`` maximises sum_c curve_c(x_c) subject to sum_c x_c = total_budget and
min_c <= x_c <= max_c by its KKT conditions: for a marginal return lambda, each channel spends
where its curve's slope falls to lambda (clipped to its limits), and lambda is found per request
(binary search over a precomputed lambda grid, then exact interpolation) so that the spends add
up to the budget. This is exact for concave curves and vectorised over requests: scipy's SLSQP
costs ~1-2 ms per request in a Python loop, too slow for one-row serving and 10k-row batches,
so the tests use SLSQP as the referee instead (on the learned curves, and on the true curves for
the quality bar). If the minimums exceed the budget they are scaled down to fit it; if the
maximums cannot absorb it, the remainder is reported as ``unallocated_budget``.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from predictions.catalog import fast
from predictions.catalog.base import CatalogModel, Feature, Target, rounded_list

CHANNELS = ("search", "social", "events", "partners", "email", "content")
SEGMENTS = ("smb", "mid_market", "enterprise")
QUARTERS = ("Q1", "Q2", "Q3", "Q4")

_MAX_MONEY = 10_000_000.0  # EUR per quarter: the schema's ceiling and the "no maximum" default

# True response curves (see the module docstring), channel order as CHANNELS.
_FIRST_EURO_RETURN = np.array([3.6, 2.1, 2.7, 3.0, 5.4, 1.8])
_SATURATION = np.array([30_000.0, 60_000.0, 80_000.0, 50_000.0, 8_000.0, 120_000.0])
_EXPONENTIAL = np.array([True, False, False, True, True, False])  # else hyperbolic (s / (s + K))
_SEGMENT_RETURN = np.array(  # rows: smb, mid_market, enterprise
    [
        [1.2, 1.4, 0.6, 0.8, 1.2, 1.0],
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        [0.7, 0.6, 1.5, 1.4, 0.8, 1.2],
    ]
)
_SEGMENT_SATURATION = np.array([0.5, 1.0, 2.0])
_QUARTER_FACTOR = np.array([0.95, 1.0, 0.85, 1.1])
_SUMMER_EVENTS = 0.75  # Q3 events factor
_BASELINE = np.array([20_000.0, 40_000.0, 80_000.0])
_NOISE_SD = 0.12

_SEGMENT_SHARE = np.array([0.40, 0.35, 0.25])
_SEGMENT_SHARE_DRIFTED = np.array([0.30, 0.35, 0.35])
_MEDIAN_BUDGET = np.array([40_000.0, 150_000.0, 500_000.0])
_TYPICAL_MIX = np.array([0.25, 0.15, 0.20, 0.15, 0.05, 0.20])
_TYPICAL_MIX_DRIFTED = np.array([0.15, 0.25, 0.20, 0.15, 0.05, 0.20])

# Saturation scales (EUR) of the learned curves' basis 1 - exp(-spend / scale): from a small
# email test to a large enterprise programme, a factor ~2.3 apart.
_SCALES = np.geomspace(1_000.0, 2_000_000.0, 10)
_GRID_POINTS = 241  # spend grid per curve: ~4% steps in spend
_LAMBDA_POINTS = 1_200  # marginal-return grid for the KKT search: ~0.5% steps
_LIMIT_TOLERANCE = 0.5  # EUR: a channel this close to a limit is reported as held by it


def _spend_columns(prefix: str) -> list[str]:
    return [f"{prefix}_{channel}" for channel in CHANNELS]


SPEND = _spend_columns("spend")
MINIMUM = _spend_columns("min")
MAXIMUM = _spend_columns("max")


# The columns predict reads, in the order it slices them.
_INPUT_COLUMNS = ("total_budget", *SPEND, *MINIMUM, *MAXIMUM, "segment", "quarter")


@functools.lru_cache(maxsize=16)
def _input_positions(columns: tuple[str, ...]) -> np.ndarray:
    """Where ``_INPUT_COLUMNS`` sit among a frame's ``columns``. Cached: pandas' ``get_indexer``
    builds two Index objects per call, ~80 us, a fifth of a one-row answer."""
    where = {name: position for position, name in enumerate(columns)}
    return np.array([where[name] for name in _INPUT_COLUMNS])


def _codes(values: Any, categories: tuple[str, ...], name: str) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    codes = np.full(len(values), -1, dtype=np.int64)
    for code, category in enumerate(categories):
        codes[values == category] = code
    if (codes < 0).any():
        raise ValueError(f"unknown {name}: expected one of {categories}")
    return codes


def true_channel_returns(frame: pd.DataFrame, spend: Any, drift: float = 0.0) -> np.ndarray:
    """The generator's true expected return of each channel (EUR), without the baseline.

    ``spend`` has shape ``(n, 6)`` (one allocation per row of ``frame``, channels in CHANNELS
    order) or ``(n, k, 6)`` (k allocations per row); the result has the same shape. Ground
    truth only the generator knows, for tests.
    """
    segment = _codes(frame["segment"], SEGMENTS, "segment")
    quarter = _codes(frame["quarter"], QUARTERS, "quarter")
    return _true_channel_returns(segment, quarter, np.asarray(spend, dtype=float), drift)


def _true_channel_returns(segment: np.ndarray, quarter: np.ndarray, spend: np.ndarray, drift: float) -> np.ndarray:
    first_euro = _FIRST_EURO_RETURN * _SEGMENT_RETURN[segment] * _QUARTER_FACTOR[quarter][:, None]
    first_euro[:, 2] *= np.where(quarter == 2, _SUMMER_EVENTS, 1.0)
    first_euro[:, 0] *= 1.0 - 0.35 * drift
    first_euro[:, 1] *= 1.0 + 0.4 * drift
    saturation = _SATURATION * _SEGMENT_SATURATION[segment][:, None]
    if spend.ndim == 3:
        first_euro, saturation = first_euro[:, None, :], saturation[:, None, :]
    ratio = spend / saturation
    shape = np.where(_EXPONENTIAL, -np.expm1(-ratio), ratio / (1.0 + ratio))
    return first_euro * saturation * shape


def true_expected_return(frame: pd.DataFrame, spend: Any, drift: float = 0.0) -> np.ndarray:
    """True expected ``marketing_return`` of each row at ``spend`` (baseline included)."""
    segment = _codes(frame["segment"], SEGMENTS, "segment")
    quarter = _codes(frame["quarter"], QUARTERS, "quarter")
    channels = _true_channel_returns(segment, quarter, np.asarray(spend, dtype=float), drift).sum(axis=-1)
    baseline = _true_baseline(segment, quarter, drift)
    return (baseline[:, None] if channels.ndim == 2 else baseline) + channels


def _true_baseline(segment: np.ndarray, quarter: np.ndarray, drift: float) -> np.ndarray:
    return _BASELINE[segment] * _QUARTER_FACTOR[quarter] * (1.0 + 0.1 * drift)


def _money_feature(name: str, description: str, example: float, *, required: bool, default: float) -> Feature:
    return Feature(
        name,
        "number",
        description,
        example,
        unit="EUR",
        minimum=0.0,
        maximum=_MAX_MONEY,
        required=required,
        default=None if required else default,
    )


_EXAMPLE_SPEND = (40_000.0, 20_000.0, 30_000.0, 25_000.0, 7_000.0, 28_000.0)
_EXAMPLE_MIN = (10_000.0, 0.0, 20_000.0, 0.0, 0.0, 0.0)
_EXAMPLE_MAX = (_MAX_MONEY, 40_000.0, _MAX_MONEY, _MAX_MONEY, _MAX_MONEY, _MAX_MONEY)


def _curve_ids(segment: np.ndarray, quarter: np.ndarray) -> np.ndarray:
    channels = len(CHANNELS)
    return (segment[:, None] * len(QUARTERS) + quarter[:, None]) * channels + np.arange(channels)[None, :]


class BudgetModel(CatalogModel):
    slug = "budget"
    title = "Marketing budget allocation"
    task = "optimisation"
    summary = "Split of a quarter's budget across channels under min/max limits, with its expected return."
    entity_label = "plan"
    main_score = "expected_return"
    target = Target(
        name="marketing_return",
        kind="number",
        description="Gross profit of the quarter's new business sourced by marketing and partners, baseline included.",
        unit="EUR",
    )
    features: ClassVar[tuple[Feature, ...]] = (
        Feature(
            "total_budget",
            "number",
            "Budget to allocate across the channels this quarter (in history: the amount spent).",
            150_000.0,
            unit="EUR",
            minimum=1_000.0,
            maximum=_MAX_MONEY,
        ),
        Feature(
            "segment",
            "category",
            "Client segment the business unit sells to.",
            "mid_market",
            categories=SEGMENTS,
        ),
        Feature(
            "quarter",
            "category",
            "Quarter the budget is spent in.",
            "Q2",
            categories=QUARTERS,
        ),
        *(
            _money_feature(
                f"spend_{channel}",
                f"Spend on {channel} last period (in history: this quarter's spend that produced the return).",
                example,
                required=True,
                default=0.0,
            )
            for channel, example in zip(CHANNELS, _EXAMPLE_SPEND, strict=True)
        ),
        *(
            _money_feature(
                f"min_{channel}",
                f"Least that must go to {channel} (committed contracts); 0 = no minimum.",
                example,
                required=False,
                default=0.0,
            )
            for channel, example in zip(CHANNELS, _EXAMPLE_MIN, strict=True)
        ),
        *(
            _money_feature(
                f"max_{channel}",
                f"Most {channel} may receive (capacity, policy); {_MAX_MONEY:,.0f} = no maximum.",
                example,
                required=False,
                default=_MAX_MONEY,
            )
            for channel, example in zip(CHANNELS, _EXAMPLE_MAX, strict=True)
        ),
    )

    # --- Generator ----------------------------------------------------------------------

    def generate(self, n: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        drift = float(np.clip(drift, 0.0, 1.0))
        segment = rng.choice(len(SEGMENTS), size=n, p=(1 - drift) * _SEGMENT_SHARE + drift * _SEGMENT_SHARE_DRIFTED)
        quarter = rng.integers(0, len(QUARTERS), size=n)
        total = _MEDIAN_BUDGET[segment] * (1.0 + 0.5 * drift) * np.exp(rng.normal(0.0, 0.45, n))
        total = np.clip(total, 5_000.0, 5_000_000.0)

        mix = (1 - drift) * _TYPICAL_MIX + drift * _TYPICAL_MIX_DRIFTED
        shares = rng.gamma(4.0 * mix, size=(n, len(CHANNELS)))  # Dirichlet(4 * mix), row by row
        shares *= rng.random((n, len(CHANNELS))) >= 0.10  # a channel left unused this quarter
        empty = shares.sum(axis=1) == 0
        shares[empty, 0] = 1.0
        shares /= shares.sum(axis=1, keepdims=True)
        spend = np.round(shares * total[:, None])

        has_min = rng.random((n, len(CHANNELS))) < 0.4
        minimum = np.where(has_min, np.floor(spend * rng.uniform(0.0, 0.9, spend.shape)), 0.0)
        has_max = rng.random((n, len(CHANNELS))) < 0.5
        cap = np.maximum(spend, 0.1 * total[:, None]) * rng.uniform(1.3, 4.0, spend.shape)
        maximum = np.where(has_max, np.minimum(np.ceil(cap), _MAX_MONEY), _MAX_MONEY)

        frame = pd.DataFrame(
            {
                "total_budget": spend.sum(axis=1),
                "segment": np.asarray(SEGMENTS, dtype=object)[segment],
                "quarter": np.asarray(QUARTERS, dtype=object)[quarter],
            }
        )
        for j in range(len(CHANNELS)):
            frame[SPEND[j]] = spend[:, j]
        for j in range(len(CHANNELS)):
            frame[MINIMUM[j]] = minimum[:, j]
        for j in range(len(CHANNELS)):
            frame[MAXIMUM[j]] = maximum[:, j]

        incremental = _true_channel_returns(segment, quarter, spend, drift).sum(axis=1)
        expected = _true_baseline(segment, quarter, drift) + incremental
        noise = np.exp(rng.normal(0.0, _NOISE_SD, n) - _NOISE_SD**2 / 2)
        frame[self.target.name] = np.round(expected * noise, 2)
        frame["truth_expected_return"] = expected
        frame["truth_baseline_return"] = expected - incremental
        frame["truth_incremental_return"] = incremental
        return frame

    # --- Training -----------------------------------------------------------------------

    @staticmethod
    def _design(spend: np.ndarray, segment: np.ndarray, quarter: np.ndarray) -> pd.DataFrame:
        """Pipeline input: each channel's spend / scale for every saturation scale, once per
        segment and once per quarter (zero outside it), so each context gets its own curve
        terms; plus the context itself."""
        spend = np.asarray(spend, dtype=float)
        contexts = [segment == s for s in range(len(SEGMENTS))] + [quarter == q for q in range(len(QUARTERS))]
        blocks = [
            np.where(inside[:, None], spend[:, [j]] / _SCALES[None, :], 0.0)
            for j in range(len(CHANNELS))
            for inside in contexts
        ]
        frame = pd.DataFrame(np.hstack(blocks), columns=BudgetModel._curve_columns())
        frame["segment"] = np.asarray(SEGMENTS, dtype=object)[segment]
        frame["quarter"] = np.asarray(QUARTERS, dtype=object)[quarter]
        return frame

    @staticmethod
    def _curve_columns() -> list[str]:
        return [
            f"{channel}__{context}__{k}"
            for channel in CHANNELS
            for context in (*SEGMENTS, *QUARTERS)
            for k in range(len(_SCALES))
        ]

    def _inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self._design(
            frame[SPEND].to_numpy(dtype=float),
            _codes(frame["segment"], SEGMENTS, "segment"),
            _codes(frame["quarter"], QUARTERS, "quarter"),
        )

    def fit(self, frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
        # Curves are non-negative mixtures of 1 - exp(-spend / scale): increasing and concave
        # (diminishing returns) by construction, whatever the noise in the history.
        # scikit-learn is imported here: serving never imports it (see compiled.py).
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LinearRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

        saturation = Pipeline(
            [
                ("negate", FunctionTransformer(np.negative)),
                ("exp", FunctionTransformer(np.expm1)),
                ("flip", FunctionTransformer(np.negative)),
            ]
        )
        pipeline = Pipeline(
            [
                (
                    "encode",
                    ColumnTransformer(
                        [
                            ("curves", saturation, self._curve_columns()),
                            (
                                "context",
                                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                                ["segment", "quarter"],
                            ),
                        ]
                    ),
                ),
                ("regressor", LinearRegression(positive=True)),
            ]
        )
        pipeline.fit(self._inputs(frame), frame[self.target.name].to_numpy(dtype=float))
        return {"pipeline": pipeline, **self._tables(pipeline), "training_rows": len(frame)}

    def _tables(self, pipeline: Any) -> dict[str, Any]:
        """The fitted model as curves per (segment, quarter, channel) on a spend grid, and for
        each curve the spend it chooses at each marginal return."""
        grid = 1_000.0 * np.expm1(np.linspace(0.0, np.log1p(_MAX_MONEY / 1_000.0), _GRID_POINTS))
        grid[0] = 0.0
        n_seg, n_q, n_c, n_g = len(SEGMENTS), len(QUARTERS), len(CHANNELS), _GRID_POINTS
        segment, quarter, channel, point = (
            a.ravel()
            for a in np.meshgrid(np.arange(n_seg), np.arange(n_q), np.arange(n_c), np.arange(n_g), indexing="ij")
        )
        spend = np.zeros((len(point), n_c))
        spend[np.arange(len(point)), channel] = grid[point]
        values = pipeline.predict(self._design(spend, segment, quarter)).reshape(n_seg, n_q, n_c, n_g)
        baseline = values[..., 0].mean(axis=2)  # every channel at 0: the same prediction
        curves = values - values[..., :1]

        # Each curve's best response to a marginal return lambda: argmax_g curve(g) - lambda *
        # grid[g], the grid point whose neighbouring slopes bracket lambda (the curves are
        # concave; were one not, this would pick a vertex of its concave envelope).
        slopes = np.diff(curves, axis=-1) / np.diff(grid)
        top = max(float(slopes.max()), 1.0) * 1.05
        lambdas = np.sinh(np.linspace(np.arcsinh(-1.0), np.arcsinh(top), _LAMBDA_POINTS))
        flat = curves.reshape(-1, n_g)
        choice = np.empty((flat.shape[0], _LAMBDA_POINTS))
        for k in range(flat.shape[0]):
            objective = flat[k][None, :] - lambdas[:, None] * grid[None, :]
            choice[k] = grid[objective.argmax(axis=1)]
        return {
            "spend_grid": grid,
            "log_spend_grid": np.log1p(grid / 1_000.0),
            "curves": curves,
            "baseline": baseline,
            "lambdas": lambdas,
            "spend_at_lambda": choice.reshape(n_seg, n_q, n_c, _LAMBDA_POINTS),
        }

    # --- Optimisation -------------------------------------------------------------------

    @staticmethod
    def _curve_ids(frame: pd.DataFrame) -> np.ndarray:
        """Per row and channel, the learned curve of its (segment, quarter): shape (n, 6)."""
        segment = _codes(frame["segment"].to_numpy(), SEGMENTS, "segment")
        return _curve_ids(segment, _codes(frame["quarter"].to_numpy(), QUARTERS, "quarter"))

    @staticmethod
    def _curve_value(artifact: dict[str, Any], curve: np.ndarray, spend: np.ndarray) -> np.ndarray:
        """Learned return of each channel at ``spend`` (n, 6); ``curve`` (n, 6) indexes the
        artifact's curves flattened to (segment, quarter, channel) rows."""
        x = np.log1p(np.maximum(spend, 0.0) / 1_000.0)
        knots = artifact["log_spend_grid"]
        table = artifact["curves"].reshape(-1, len(knots))
        right = np.clip(np.searchsorted(knots, x, side="right"), 1, len(knots) - 1)
        left = right - 1
        weight = np.clip((x - knots[left]) / (knots[right] - knots[left]), 0.0, 1.0)
        at_left, at_right = table[curve, left], table[curve, right]
        return at_left + weight * (at_right - at_left)

    @staticmethod
    def _allocate(
        artifact: dict[str, Any], curve: np.ndarray, total: np.ndarray, low: np.ndarray, high: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """KKT allocation: per row the marginal return lambda at which the channels' chosen
        spends (clipped to [low, high]) add up to ``total``. Returns (spend, lambda).

        Each curve's spend at each lambda (non-increasing in lambda) comes from the artifact.
        Rows whose limits cannot take exactly ``total`` get the nearest limit (all at max).
        """
        n = len(total)
        lambdas = artifact["lambdas"]
        table = artifact["spend_at_lambda"].reshape(-1, len(lambdas))

        def spent(index: np.ndarray) -> np.ndarray:
            return np.minimum(np.maximum(table[curve, index[:, None]], low), high)

        # Binary search for the last lambda index whose spends still cover the total.
        first, last = np.zeros(n, dtype=np.int64), np.full(n, len(lambdas) - 1, dtype=np.int64)
        for _ in range(int(np.ceil(np.log2(len(lambdas))))):
            middle = (first + last) // 2
            covers = spent(middle).sum(axis=1) >= total
            first = np.where(covers, middle, first)
            last = np.where(covers, last, middle)
        upper, lower = spent(first), spent(last)  # spends at the lower and the higher lambda
        above, below = upper.sum(axis=1), lower.sum(axis=1)
        weight = np.where(above > below, (total - below) / np.where(above > below, above - below, 1.0), 1.0)
        weight = np.clip(weight, 0.0, 1.0)[:, None]
        spend = lower + weight * (upper - lower)
        marginal = lambdas[last] + weight[:, 0] * (lambdas[first] - lambdas[last])
        return spend, marginal

    @staticmethod
    def _project(target: np.ndarray, total: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """The plan within [low, high] adding up to ``total`` nearest to ``target`` (Euclidean):
        clip(target + tau, low, high) with tau solved exactly on its breakpoints."""
        breakpoints = np.sort(np.concatenate([low - target, high - target], axis=1), axis=1)
        sums = np.clip(target[:, None, :] + breakpoints[:, :, None], low[:, None, :], high[:, None, :]).sum(axis=2)
        index = np.clip((sums < total[:, None]).sum(axis=1), 1, breakpoints.shape[1] - 1)
        rows = np.arange(len(total))
        s0, s1 = sums[rows, index - 1], sums[rows, index]
        t0, t1 = breakpoints[rows, index - 1], breakpoints[rows, index]
        tau = np.where(s1 > s0, t0 + (total - s0) * (t1 - t0) / np.where(s1 > s0, s1 - s0, 1.0), t1)
        tau = np.where(total <= sums[:, 0], breakpoints[:, 0], np.where(total >= sums[:, -1], breakpoints[:, -1], tau))
        return np.clip(target + tau[:, None], low, high)

    # --- Answers ------------------------------------------------------------------------

    def predict(self, artifact: dict[str, Any], frame: pd.DataFrame) -> list[dict[str, Any]]:
        if len(frame) == 0:
            return []
        n, channels = len(frame), len(CHANNELS)
        # One conversion of the whole frame: selecting columns costs ~15 us each on one row.
        values = frame.to_numpy()
        position = _input_positions(tuple(frame.columns))
        amounts = values[:, position[:-2]].astype(float)
        total = amounts[:, 0]
        last_period = np.nan_to_num(amounts[:, 1 : 1 + channels])
        minimum = np.nan_to_num(amounts[:, 1 + channels : 1 + 2 * channels])
        maximum = np.nan_to_num(amounts[:, 1 + 2 * channels :], nan=_MAX_MONEY)
        segment = _codes(values[:, position[-2]], SEGMENTS, "segment")
        quarter = _codes(values[:, position[-1]], QUARTERS, "quarter")
        maximum = np.maximum(maximum, minimum)  # a minimum above the maximum wins

        # Minimums beyond the budget are scaled down to fit it; the budget is capped by the maximums.
        committed = minimum.sum(axis=1)
        low = minimum * np.where(committed > total, total / np.where(committed > 0, committed, 1.0), 1.0)[:, None]
        high = np.minimum(maximum, total[:, None])
        allocatable = np.minimum(total, high.sum(axis=1))
        feasible = (committed <= total) & (maximum.sum(axis=1) >= total)

        curves = _curve_ids(segment, quarter)
        baseline = artifact["baseline"][segment, quarter]

        # The recommendation and the best plan ignoring the limits, in one vectorised search.
        budget_only = (np.zeros_like(low), np.repeat(total[:, None], channels, axis=1))
        searched, marginal = self._allocate(
            artifact,
            np.vstack([curves, curves]),
            np.concatenate([allocatable, total]),
            np.vstack([low, budget_only[0]]),
            np.vstack([high, budget_only[1]]),
        )
        spend, free, marginal = searched[:n], searched[n:], marginal[:n]
        # The plans a planner would otherwise pick, moved to the nearest plan within the limits.
        spent_before = last_period.sum(axis=1, keepdims=True)
        shares = np.where(spent_before > 0, last_period / np.where(spent_before > 0, spent_before, 1.0), 1.0 / channels)
        projected = self._project(
            np.vstack([np.repeat(total[:, None] / channels, channels, axis=1), shares * total[:, None]]),
            np.concatenate([allocatable, allocatable]),
            np.vstack([low, low]),
            np.vstack([high, high]),
        )
        plans = {"equal_split": projected[:n], "proportional_to_last_period": projected[n:], "unconstrained_best": free}

        values = self._curve_value(artifact, np.vstack([curves] * 4), np.vstack([spend, *plans.values()]))
        channel_return = values[:n]
        expected = baseline + channel_return.sum(axis=1)
        plan_return = {name: baseline + values[(k + 1) * n : (k + 2) * n].sum(axis=1) for k, name in enumerate(plans)}
        plan_within = {
            name: ((plan >= low - _LIMIT_TOLERANCE) & (plan <= high + _LIMIT_TOLERANCE)).all(axis=1)
            for name, plan in plans.items()
        }

        at_min = (minimum > 0) & (spend <= low + _LIMIT_TOLERANCE)
        at_max = (maximum < total[:, None]) & (spend >= high - _LIMIT_TOLERANCE)
        incremental = expected - baseline
        allocated = spend.sum(axis=1)

        # Money in cents, shares and ratios to 4 decimals.
        spend_l, channel_l = rounded_list(spend, 2), rounded_list(channel_return, 2)
        share_l = rounded_list(spend / np.maximum(allocated, 1e-9)[:, None], 4)
        expected_l, baseline_l = rounded_list(expected, 2), rounded_list(baseline, 2)
        incremental_l = rounded_list(incremental, 2)
        roi_l = rounded_list(incremental / np.maximum(allocated, 1e-9), 4)
        marginal_l = rounded_list(marginal, 4)
        unallocated_l = rounded_list(np.maximum(total - allocated, 0.0), 2)
        feasible_l, at_min_l, at_max_l = feasible.tolist(), at_min.tolist(), at_max.tolist()
        plans_l = {name: rounded_list(plan, 2) for name, plan in plans.items()}
        returns_l = {name: rounded_list(value, 2) for name, value in plan_return.items()}
        gaps_l = {name: rounded_list(value - expected, 2) for name, value in plan_return.items()}
        within_l = {name: value.tolist() for name, value in plan_within.items()}

        answers = []
        for i in range(n):
            answers.append(
                {
                    "expected_return": expected_l[i],
                    "baseline_return": baseline_l[i],
                    "incremental_return": incremental_l[i],
                    "return_on_spend": roi_l[i],
                    "marginal_return": marginal_l[i],
                    "allocation": dict(zip(CHANNELS, spend_l[i], strict=True)),
                    "allocation_share": dict(zip(CHANNELS, share_l[i], strict=True)),
                    "channel_returns": dict(zip(CHANNELS, channel_l[i], strict=True)),
                    "limits_reached": {
                        channel: ("min" if at_min_l[i][j] else "max")
                        for j, channel in enumerate(CHANNELS)
                        if at_min_l[i][j] or at_max_l[i][j]
                    },
                    "unallocated_budget": unallocated_l[i],
                    "feasible": feasible_l[i],
                    "alternatives": [
                        {
                            "name": name,
                            "allocation": dict(zip(CHANNELS, plans_l[name][i], strict=True)),
                            "expected_return": returns_l[name][i],
                            "vs_recommended": gaps_l[name][i],
                            "within_limits": within_l[name][i],
                        }
                        for name in plans
                    ],
                }
            )
        return answers

    def evaluate(self, artifact: dict[str, Any], frame: pd.DataFrame) -> dict[str, float]:
        from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, r2_score

        actual = frame[self.target.name].to_numpy(dtype=float)
        predicted = fast.decision_function(artifact["pipeline"], self._inputs(frame))
        return {
            "r2": float(r2_score(actual, predicted)),
            "mae": float(mean_absolute_error(actual, predicted)),
            "mape": float(mean_absolute_percentage_error(actual, predicted)),
            "mean_actual": float(actual.mean()),
            "mean_predicted": float(predicted.mean()),
            "rows": float(len(frame)),
        }


MODEL = BudgetModel()
