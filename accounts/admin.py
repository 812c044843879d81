from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from rest_framework_api_key.models import APIKey as LibraryAPIKey

from accounts.models import APIKey, User
from accounts.services import api_key_create, api_key_revoke, api_key_validate

# The library registers its own concrete key model; this service uses accounts.APIKey only.
admin.site.unregister(LibraryAPIKey)


@admin.register(User)
class ServiceUserAdmin(UserAdmin):
    list_display = ("username", "email", "role", "is_staff", "is_active", "last_login")
    list_filter = ("role", "is_staff", "is_active")
    fieldsets = (*UserAdmin.fieldsets, ("Service role", {"fields": ("role",)}))
    add_fieldsets = (*UserAdmin.add_fieldsets, ("Service role", {"fields": ("role",)}))


class APIKeyAdminForm(forms.ModelForm):
    class Meta:
        model = APIKey
        fields = ["name", "user", "role", "tier", "expiry_date", "revoked"]

    def clean(self):
        data = super().clean()
        user = data.get("user") or getattr(self.instance, "user", None)
        if user is None or not data.get("role") or not data.get("tier"):
            return data
        expiry_changed = "expiry_date" in self.changed_data
        try:
            api_key_validate(
                user=user,
                role=data["role"],
                tier=data["tier"],
                expires_at=data.get("expiry_date") if expiry_changed else None,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error("expiry_date" if field == "expires_at" else field, errors)
        return data


@admin.register(APIKey)
class ServiceAPIKeyAdmin(admin.ModelAdmin):
    """Keys are created here or with `manage.py create_api_key`; the key is shown once."""

    form = APIKeyAdminForm
    list_display = (
        "prefix",
        "name",
        "user",
        "role",
        "tier",
        "created",
        "expiry_date",
        "_has_expired",
        "revoked",
        "last_used_at",
    )
    list_filter = ("role", "tier", "revoked", "created")
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    actions = ["revoke_selected"]

    def get_fields(self, request, obj=None):
        fields = ["name", "user", "role", "tier", "expiry_date"]
        if obj is None:
            return fields
        return ["prefix", *fields, "revoked", "revoked_at", "created", "last_used_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        readonly = ["prefix", "user", "revoked_at", "created", "last_used_at"]
        if obj.revoked:  # a revoked key is history: nothing about it changes any more
            readonly += ["name", "role", "tier", "expiry_date", "revoked"]
        return readonly

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            if obj.revoked:
                api_key_revoke(api_key=obj)
            return
        api_key, raw_key = api_key_create(
            user=obj.user, name=obj.name, role=obj.role, tier=obj.tier, expires_at=obj.expiry_date
        )
        # The admin goes on to log and redirect using `obj`; point it at the created key.
        obj.pk, obj.prefix, obj.created = api_key.pk, api_key.prefix, api_key.created
        obj._state.adding = False
        messages.warning(
            request, f"The API key for '{api_key.name}' is {raw_key} — store it now, it is not shown again."
        )

    @admin.action(description="Revoke selected keys (cannot be undone)")
    def revoke_selected(self, request, queryset):
        keys = list(queryset.filter(revoked=False))
        for api_key in keys:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {len(keys)} key(s).")
