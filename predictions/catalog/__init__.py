"""The seven business models, by URL slug. Pure Python: nothing here imports Django."""

from __future__ import annotations

from importlib import import_module

from predictions.catalog.base import CatalogModel

_MODULES = ("profitability", "churn", "revenue_leak", "pricing", "budget", "demand", "anomaly")

CATALOG: dict[str, CatalogModel] = {
    model.slug: model for model in (import_module(f"predictions.catalog.{name}").MODEL for name in _MODULES)
}


class UnknownModel(KeyError):
    pass


def get_catalog_model(slug: str) -> CatalogModel:
    try:
        return CATALOG[slug]
    except KeyError:
        raise UnknownModel(slug) from None
