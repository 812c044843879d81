from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Access: users and API keys"

    def ready(self) -> None:
        from accounts import schema  # noqa: F401  registers the API-key security scheme

        check_every_tier_has_a_rate()


def check_every_tier_has_a_rate() -> None:
    """A tier left out of RATE_LIMIT_TIERS would silently mean "no limit": refuse to start."""
    from django.conf import settings

    from accounts.roles import Tier

    missing = sorted(set(Tier.values) - settings.RATE_LIMIT_TIERS.keys())
    if missing:
        raise ImproperlyConfigured(
            f"Environment variable RATE_LIMIT_TIERS has no rate for tier(s) {', '.join(missing)} "
            "(write tier=none for no limit)"
        )
