from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import APIKey, User
from accounts.roles import Role, Tier, role_allows

# last_used_at is for people ("is this key still in use?"): minute precision is plenty and
# saves a write on every request.
LAST_USED_PRECISION = timedelta(minutes=1)


def api_key_validate(*, user: User, role: str, tier: str, expires_at: datetime | None) -> None:
    errors = {}
    if role not in Role.values:
        errors["role"] = f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."
    elif not role_allows(user.effective_role, role):
        errors["role"] = f"A key cannot have more rights than its user ({user.username} is {user.effective_role})."
    if tier not in Tier.values:
        errors["tier"] = f"Unknown tier {tier!r}; choose one of {', '.join(Tier.values)}."
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = "The expiry must be in the future."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def api_key_create(
    *, user: User, name: str, role: str, tier: str = Tier.STANDARD, expires_at: datetime | None = None
) -> tuple[APIKey, str]:
    """Create a key; returns it with the plaintext, which is never stored and shown only now."""
    api_key_validate(user=user, role=role, tier=tier, expires_at=expires_at)
    return APIKey.objects.create_key(name=name, user=user, role=role, tier=tier, expiry_date=expires_at)


@transaction.atomic
def api_key_revoke(*, api_key: APIKey) -> APIKey:
    """Revoke for good: the next request with this key is refused (see accounts/key_cache.py)."""
    if api_key.revoked_at is None:
        api_key.revoked = True
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked", "revoked_at"])
    return api_key


def api_key_mark_used(*, api_key: APIKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_PRECISION:
        APIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


@transaction.atomic
def user_ensure(*, username: str, role: str, password: str | None = None, is_staff: bool = False) -> tuple[User, bool]:
    """Get or create a user with this role; returns (user, created)."""
    user, created = User.objects.get_or_create(username=username, defaults={"role": role, "is_staff": is_staff})
    if created:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    return user, created
