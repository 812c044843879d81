"""Permission classes per role, for every endpoint of every app.

Pick the class whose name says who may read and who may write, e.g.
``permission_classes = [ViewerReadsOperatorWrites]``.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import APIKey
from accounts.roles import Role, role_allows


def request_role(request) -> str | None:
    """The role a request acts with: its API key's, or the logged-in user's."""
    if isinstance(request.auth, APIKey):
        return request.auth.role
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user.effective_role
    return None


class RolePermission(BasePermission):
    read_role: str = Role.VIEWER
    write_role: str = Role.ADMIN

    def has_permission(self, request, view) -> bool:
        granted = request_role(request)
        if granted is None:
            return False  # DRF turns this into 401 for an anonymous request
        required = self.read_role if request.method in SAFE_METHODS else self.write_role
        if not role_allows(granted, required):
            self.message = f"This operation needs the '{required}' role; you have '{granted}'."
            return False
        return True


class IsViewer(RolePermission):
    """Any authenticated caller may read; writes need the admin role."""


class ViewerReadsPredictorWrites(RolePermission):
    write_role = Role.PREDICTOR


class ViewerReadsOperatorWrites(RolePermission):
    write_role = Role.OPERATOR


class IsPredictor(RolePermission):
    read_role = write_role = Role.PREDICTOR


class IsOperator(RolePermission):
    read_role = write_role = Role.OPERATOR


class IsAdmin(RolePermission):
    read_role = write_role = Role.ADMIN
