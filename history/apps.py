from django.apps import AppConfig
from django.db.backends.signals import connection_created


class HistoryConfig(AppConfig):
    name = "history"
    verbose_name = "Prediction history"

    def ready(self) -> None:
        from history.fields import json_loaded_as_text

        connection_created.connect(json_loaded_as_text, dispatch_uid="history.json_loaded_as_text")
