"""Pagination for list endpoints: `limit` + `offset`, or `limit` + `cursor`.

Query parameters are validated, never silently replaced: `limit` outside 1..500 or
`offset` below 0 or not a number is a 422.
"""

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

MAX_LIMIT = 500


def _bounded_int(request, name: str, *, default: int | None, minimum: int, maximum: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
        if str(value) != raw.strip().lstrip("+") or raw.strip() != raw:
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationError({name: ["A valid integer is required."]})
    if value < minimum:
        raise ValidationError({name: [f"Ensure this value is greater than or equal to {minimum}."]})
    if maximum is not None and value > maximum:
        raise ValidationError({name: [f"Ensure this value is less than or equal to {maximum}."]})
    return value


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 50
    max_limit = MAX_LIMIT
    max_offset = 2**31 - 1

    def get_limit(self, request):
        return _bounded_int(request, self.limit_query_param, default=self.default_limit, minimum=1,
                            maximum=self.max_limit)

    def get_offset(self, request):
        return _bounded_int(request, self.offset_query_param, default=0, minimum=0, maximum=self.max_offset)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_limit, "default": self.default_limit})
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"].update({"minimum": 0, "maximum": self.max_offset, "default": 0})
        return parameters


class CursorPagination(pagination.CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = MAX_LIMIT
    ordering = "-created_at"

    def get_page_size(self, request):
        return _bounded_int(request, self.page_size_query_param, default=self.page_size, minimum=1,
                            maximum=self.max_page_size)
