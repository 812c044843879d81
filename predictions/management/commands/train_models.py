from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from predictions.catalog import CATALOG
from predictions.models import Dataset
from predictions.selectors import active_pointer
from predictions.services import (
    mlmodels_sync_catalog,
    model_train,
    training_data_from_dataset,
    training_data_generated,
)


class Command(BaseCommand):
    help = (
        "Train models from their data generator or an uploaded dataset. A model's first version "
        "becomes active; later ones stay candidates until promoted."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", choices=sorted(CATALOG), help="Train one model (default: all seven).")
        parser.add_argument("--rows", type=int, help="Generated rows (default: each model's own).")
        parser.add_argument("--dataset", type=int, help="Train on this uploaded dataset id instead.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--drift", type=float, default=0.0, help="Generator drift, 0 to 1.")
        parser.add_argument("--if-none-active", action="store_true", help="Skip models that have an active version.")

    def handle(self, *args, **options):
        mlmodels_sync_catalog()
        if options["dataset"] is not None:
            ignored = [f"--{name}" for name in ("model", "rows") if options[name] is not None]
            if ignored or options["drift"] or options["if_none_active"]:
                raise CommandError("--dataset trains the dataset's own model on its rows; drop the other options.")
            self._train_dataset(options)
            return
        if options["rows"] is not None and options["rows"] < 100:
            raise CommandError("--rows must be at least 100.")
        if not 0 <= options["drift"] <= 1:
            raise CommandError("--drift must be between 0 and 1.")
        for slug in [options["model"]] if options["model"] else list(CATALOG):
            spec = CATALOG[slug]
            if options["if_none_active"] and active_pointer(slug) is not None:
                self.stdout.write(f"{slug}: an active version exists, skipped")
                continue
            data = training_data_generated(
                spec=spec,
                rows=options["rows"] or spec.default_training_rows,
                seed=options["seed"],
                drift=options["drift"],
            )
            self._report(model_train(slug=slug, data=data, created_by="manage.py train_models", seed=options["seed"]))

    def _train_dataset(self, options) -> None:
        try:
            dataset = Dataset.objects.select_related("model").get(pk=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"No dataset {options['dataset']}.") from None
        data = training_data_from_dataset(dataset=dataset)
        version = model_train(
            slug=dataset.model.slug, data=data, created_by="manage.py train_models", seed=options["seed"]
        )
        self._report(version)

    def _report(self, version) -> None:
        metrics = ", ".join(f"{name}={value:.4g}" for name, value in version.metrics.items())
        self.stdout.write(
            f"{version.model.slug} v{version.number} ({version.status}) in {version.training_seconds:.1f}s: {metrics}"
        )
