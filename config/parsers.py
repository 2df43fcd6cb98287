"""JSON request parsing with the API's input limits, refused at the edge as 4xx.

- A body larger than `DATA_UPLOAD_MAX_MEMORY_SIZE` bytes is a 413 (whatever its
  declared length: the stream is read at most one byte past the limit).
- JSON nested deeper than `API_MAX_JSON_DEPTH` levels is a 422 (any field:
  metadata, checkpoint, input...).
- NUL characters (U+0000) and lone surrogates (e.g. "\\ud800") in any string or key
  are a 422: PostgreSQL cannot store either in text or jsonb.
- Integers outside the signed 64-bit range are a 422; fields stored as 32-bit
  integers have their own bounds in their serializers.
- A body that is JSON `null` (or any bare scalar) is a 422: every operation takes an
  object, or for batches an array; an absent body is not `null`.
"""

import json
import math
import re

from django.conf import settings
from rest_framework import parsers, status
from rest_framework.exceptions import APIException, ParseError

MAX_INT64 = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "too_large"


def max_body_bytes() -> int:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large() -> RequestTooLarge:
    return RequestTooLarge(f"Request body too large: the limit is {max_body_bytes()} bytes.")


def check_json_value(data) -> str | None:
    """The first reason `data` may not be stored, or None. Iterative: no recursion limit."""
    max_depth = settings.API_MAX_JSON_DEPTH
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "NUL (\\u0000) characters are not allowed in JSON strings."
            if _SURROGATE.search(item):
                return "Unpaired surrogate characters (\\ud800-\\udfff) are not allowed in JSON strings."
        elif isinstance(item, float):
            if not math.isfinite(item):  # 1e309 parses to infinity: no JSON column takes it
                return "Numbers must be finite (1e309 and the like overflow to infinity)."
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -MAX_INT64 - 1 <= item <= MAX_INT64:
                return "Integers must fit in 64 bits."
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth} levels."
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item.keys())
                stack.extend((value, depth + 1) for value in item.values())
            else:
                stack.extend((value, depth + 1) for value in item)
    return None


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = max_body_bytes()
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise too_large()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_no_constants)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {settings.API_MAX_JSON_DEPTH} levels.")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}")
        if not isinstance(data, dict | list):
            raise ParseError("The request body must be a JSON object (or, for a batch, an array), "
                             f"not {'null' if data is None else type(data).__name__}.")
        problem = check_json_value(data)
        if problem:
            raise ParseError(problem)
        return data


def _no_constants(name):
    raise ValueError(f"{name} is not valid JSON.")
