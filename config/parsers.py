"""JSON request parsing that refuses NUL characters.

PostgreSQL cannot store U+0000 in text or jsonb; without this check a JSON body with
"\\u0000" anywhere in a metadata or content value would fail at the database (a 500).
Refused at the edge instead, as a 422, on every endpoint.
"""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


def contains_nul(value) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if contains_nul(data):
            raise ParseError("NUL (\\u0000) characters are not allowed in JSON strings.")
        return data
