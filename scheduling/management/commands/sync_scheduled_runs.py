from __future__ import annotations

from django.core.management.base import BaseCommand

from scheduling.services import scheduled_runs_sync_periodic_tasks


class Command(BaseCommand):
    help = (
        "Rewrite the beat entry (django-celery-beat PeriodicTask and CrontabSchedule) of every scheduled "
        "run from the run itself, and delete entries whose run is gone. Safe to run at any time."
    )

    def handle(self, *args, **options):
        synced, deleted = scheduled_runs_sync_periodic_tasks()
        self.stdout.write(f"Synced the beat entries of {synced} scheduled run(s); deleted {deleted} orphan entr(ies).")
