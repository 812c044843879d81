from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role, Tier
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a user and print it (once: only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="Username of the key's owner.")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--tier", default=Tier.STANDARD, choices=Tier.values)
        parser.add_argument("--name", help="What the key is for (default: '<user> <role> key').")
        parser.add_argument("--expires-in-days", type=int, help="Expire the key after this many days.")
        parser.add_argument("--quiet", action="store_true", help="Print only the key.")

    def handle(self, *args, **options):
        try:
            user = User.objects.get(username=options["user"])
        except User.DoesNotExist:
            raise CommandError(f"No user named {options['user']!r}.") from None
        days = options["expires_in_days"]
        if days is not None and days <= 0:
            raise CommandError("--expires-in-days must be a positive number of days.")
        try:
            api_key, raw_key = api_key_create(
                user=user,
                name=options["name"] or f"{user.username} {options['role']} key",
                role=options["role"],
                tier=options["tier"],
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        if options["quiet"]:
            self.stdout.write(raw_key)
            return
        self.stdout.write(f"API key {api_key.prefix} for {user.username} (role {api_key.role}, tier {api_key.tier}):")
        self.stdout.write(raw_key)
        self.stdout.write("Store it now: it is not shown again.")
