"""Strict input types for every serializer of the API, installed at start-up.

DRF coerces by default: a JSON `0` is accepted as the string "0" or as `false`,
"5" and 5.0 as the integer 5, and an empty query parameter (`?status=`) is treated
as absent. The schema documents types and enums, so the API holds to them: in a JSON
body a string field takes a string, a boolean a boolean, an integer an integer, a
number a number, a UUID a string; in a query string every value is text and is
validated as given (an empty `status=` is a 422, not "no filter").
"""

from django.http import QueryDict
from rest_framework import fields


def _from_query(field) -> bool:
    root = field.root
    return isinstance(getattr(root, "initial_data", None), QueryDict)


def _strict(field_class, accepts):
    original = field_class.to_internal_value

    def to_internal_value(self, data):
        if not _from_query(self) and not accepts(data):
            self.fail("invalid") if "invalid" in self.error_messages else self.fail("required")
        return original(self, data)

    to_internal_value.strict = True
    field_class.to_internal_value = to_internal_value


def _is_str(data):
    return isinstance(data, str)


def _is_int(data):
    return isinstance(data, int) and not isinstance(data, bool)


def _is_number(data):
    return isinstance(data, int | float) and not isinstance(data, bool)


def _is_bool(data):
    return isinstance(data, bool)


def _query_get_value(original):
    def get_value(self, dictionary):
        if isinstance(dictionary, QueryDict) and self.field_name in dictionary and dictionary[self.field_name] == "":
            return ""
        return original(self, dictionary)

    return get_value


def install() -> None:
    if getattr(fields.CharField.to_internal_value, "strict", False):
        return
    _strict(fields.CharField, _is_str)
    _strict(fields.UUIDField, _is_str)
    _strict(fields.IntegerField, _is_int)
    _strict(fields.FloatField, _is_number)
    _strict(fields.DecimalField, _is_number)
    _strict(fields.BooleanField, _is_bool)
    fields.Field.get_value = _query_get_value(fields.Field.get_value)
