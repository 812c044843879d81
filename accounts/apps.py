from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Access: users and API keys"

    def ready(self) -> None:
        from accounts import schema  # noqa: F401  registers the API-key security scheme

        check_every_tier_has_a_rate()
        forget_verified_keys_on_change()


def forget_verified_keys_on_change() -> None:
    """Any saved or deleted key or user makes every process re-verify keys (key_cache.py).

    Signals rather than calls in the services, because keys and users also change through
    the admin's own forms and the shell, and a stale key must never be honoured.
    """
    from django.db.models.signals import post_delete, post_save

    from accounts.key_cache import key_generation_bump
    from accounts.models import APIKey, User

    def on_change(sender, **kwargs) -> None:
        key_generation_bump()

    for model in (APIKey, User):
        post_save.connect(on_change, sender=model, weak=False, dispatch_uid=f"key-generation-{model.__name__}")
        post_delete.connect(on_change, sender=model, weak=False, dispatch_uid=f"key-generation-del-{model.__name__}")


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
