from __future__ import annotations

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.roles import Role, Tier
from accounts.services import api_key_create, user_ensure

OWNER_USERNAME = "operator"


class Command(BaseCommand):
    help = (
        "First start of a local installation: create the 'operator' login (a superuser) and an "
        "API key, keep them in var/first-run.txt (readable only by you) and print them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="Where the web server listens.")

    def handle(self, *args, **options):
        credentials_file = settings.VAR_DIR / "first-run.txt"
        password = secrets.token_urlsafe(12)
        user, created = user_ensure(username=OWNER_USERNAME, role=Role.ADMIN, password=password, is_staff=True)
        if created:
            user.is_superuser = True
            user.save(update_fields=["is_superuser"])
            _, raw_key = api_key_create(user=user, name="first-run key", role=Role.ADMIN, tier=Tier.PREMIUM)
            credentials_file.write_text(f"login: {OWNER_USERNAME}\npassword: {password}\napi key: {raw_key}\n")
            credentials_file.chmod(0o600)
        if credentials_file.exists():
            self.stdout.write(_banner(options["base_url"], credentials_file.read_text(), credentials_file))
        else:
            self.stdout.write(
                f"The '{OWNER_USERNAME}' login exists already; its first-run credentials were removed. "
                f"Use `manage.py changepassword {OWNER_USERNAME}` and `manage.py create_api_key`."
            )


def _banner(base_url: str, credentials: str, credentials_path) -> str:
    api_key = credentials.split("api key:")[-1].strip()
    return f"""
================================================================================
 Model operations service
   API docs (Swagger UI)  {base_url}/api/docs/
   ReDoc                  {base_url}/api/redoc/
   Admin                  {base_url}/admin/
   Readiness              {base_url}/api/health/ready
   Metrics                {base_url}/metrics
 {credentials.strip().replace(chr(10), chr(10) + " ")}
 First calls:
   curl -H "X-API-Key: {api_key}" {base_url}/api/me
   curl -H "X-API-Key: {api_key}" {base_url}/api/models
   curl -H "X-API-Key: {api_key}" {base_url}/api/models/churn/info   (schema and example request)
 (kept in {credentials_path}; Ctrl-C stops the web server, worker and beat)
================================================================================
"""
