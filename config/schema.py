"""The OpenAPI schema generator: every operation documents its error responses.

`AutoSchema` (the `DEFAULT_SCHEMA_CLASS`) adds to what a view declares the errors
any operation of its kind can answer, with the error body of `config.errors`:

- 401 when the view requires authentication,
- 403 on writes (POST, PUT, PATCH, DELETE) that need a write role,
- 404 when the operation names an object (a path id, or an `*_id` in its query or body),
- 422 when it takes any input (path ids, query parameters, a body),
- 413 when it takes a body (over `DATA_UPLOAD_MAX_MEMORY_SIZE`),
- 429 when the view is throttled.

A view declares only its own errors (409, 402, 400...): `@extend_schema(responses={201:
X, **errors(409)})`. Path parameters named `id` or `*_id` are UUIDs. Operation ids
include the path's parameter names, so two operations never share one.
(`checkpoint_id` is LangGraph's, any string.)
"""

import re

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Path ids that are not UUIDs: LangGraph's checkpoint ids are any string.
NOT_UUIDS = {"checkpoint_id"}

DESCRIPTIONS = {
    400: "The object is protected.",
    401: "No or bad credentials.",
    402: "A plan limit is reached.",
    403: "Read-only access.",
    404: "Not found, or not visible to the caller.",
    409: "The object's state does not allow this.",
    413: "The request body is larger than the documented limit.",
    422: "Invalid input: `detail`, and `errors` by field where a field is at fault.",
    429: "Too many requests; retry after the `Retry-After` header's seconds.",
}


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a human.")


class ValidationErrorSerializer(ErrorSerializer):
    errors = serializers.DictField(
        required=False, child=serializers.JSONField(),
        help_text="Per field: a list of messages, or for nested input the same structure keyed by "
        "field name or list index.",
    )


def error_response(code: int) -> OpenApiResponse:
    serializer = ValidationErrorSerializer if code == 422 else ErrorSerializer
    return OpenApiResponse(response=serializer, description=DESCRIPTIONS.get(code, "Error."))


def errors(*codes: int) -> dict:
    """`responses={201: X, **errors(409, 402)}`: the operation's own error statuses."""
    return {code: error_response(code) for code in codes}


class AutoSchema(openapi.AutoSchema):
    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        names = re.findall(r"\{(\w+)\}", self.path)
        if not names:
            return operation_id
        # e.g. threads_runs_retrieve -> threads_by_thread_id_runs_by_run_id_retrieve
        tokens = []
        path = re.sub(self.path_prefix, "", self.path, flags=re.IGNORECASE)
        for part in path.strip("/").split("/"):
            match = re.fullmatch(r"\{(\w+)\}", part)
            tokens.append(f"by_{match.group(1)}" if match else part.replace("-", "_"))
        action = operation_id.rsplit("_", 1)[-1]
        if action == "update" and operation_id.endswith("partial_update"):
            action = "partial_update"
        return "_".join([*tokens, action])

    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            name, schema = parameter["name"], parameter["schema"]
            if (name in ("id", "pk") or name.endswith("_id")) and name not in NOT_UUIDS \
                    and schema.get("type") == "string" and "format" not in schema:
                schema["format"] = "uuid"
        return parameters

    def _requires_auth(self) -> bool:
        try:
            permissions = self.view.get_permissions()
        except Exception:
            return True
        return bool(permissions) and not all(isinstance(p, AllowAny) for p in permissions)

    def _is_throttled(self) -> bool:
        try:
            return bool(self.view.get_throttles())
        except Exception:
            return False

    def _standard_errors(self, operation) -> set[int]:
        codes = set()
        has_path_params = "{" in self.path
        params = operation.get("parameters", [])
        query = [p for p in params if p.get("in") == "query"]
        body = operation.get("requestBody")
        body_names = set()
        if body:
            for media in body.get("content", {}).values():
                body_names |= set(self._properties(media.get("schema", {})))
        if self._requires_auth():
            codes.add(401)
            if self.method in WRITE_METHODS:
                codes.add(403)
        names = {p["name"] for p in query} | body_names
        if has_path_params or any(n.endswith("_id") or n.endswith("_ids") for n in names):
            codes.add(404)
        if has_path_params or query or body or self.method in ("POST", "PUT", "PATCH"):
            codes.add(422)
        if self.method in ("POST", "PUT", "PATCH"):
            codes.add(413)
        if self._is_throttled():
            codes.add(429)
        return codes

    def _properties(self, schema) -> dict:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            component = self.registry._components.get((name, "schemas"))
            schema = component.schema if component is not None and component.schema else {}
        return schema.get("properties", {}) or {}

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for code in sorted(self._standard_errors(operation)):
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(error_response(code), str(code))
        operation["responses"] = dict(sorted(responses.items()))
        return operation


def selectable(serializer_class, name: str, **extra_fields):
    """A documentation-only copy of an output serializer for LangGraph's `select`: each
    field may be absent (read-only fields are otherwise required in a response), plus
    `extra_fields`. Responses are still rendered by `serializer_class`."""

    class Selectable(serializer_class):
        def get_fields(self):
            fields = super().get_fields()
            for field_name, field in extra_fields.items():
                fields[field_name] = field
            for field in fields.values():
                field.required = False
                field.read_only = False
            return fields

    Selectable.__name__ = Selectable.__qualname__ = f"{name}Serializer"
    Selectable.__doc__ = f"{serializer_class.__doc__ or ''}\n\nEvery field unless `select` names a subset.".strip()
    return Selectable
