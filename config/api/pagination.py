from rest_framework.pagination import LimitOffsetPagination as DRFLimitOffsetPagination


class LimitOffsetPagination(DRFLimitOffsetPagination):
    """`?limit=&offset=`; limits above the maximum are clamped, invalid ones fall back to the default."""

    default_limit = 50
    max_limit = 500
