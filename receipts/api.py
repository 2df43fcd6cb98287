"""GET /api/accounts/{id}/deletions: the account's deletion receipts, for its owners
and admins."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from config.errors import Forbidden, NotFound
from config.pagination import LimitOffsetPagination
from projects.models import Role
from projects.selectors import parse_uuid, role_in

from . import selectors
from .serializers import DeletionQuerySerializer, DeletionReceiptPageSerializer, DeletionReceiptSerializer

READ_ROLES = (Role.OWNER, Role.ADMIN)


def _error(name: str, description: str) -> OpenApiResponse:
    return OpenApiResponse(
        response=inline_serializer(name, {"detail": serializers.CharField()}), description=description
    )


class AccountDeletionsView(APIView):
    @extend_schema(
        operation_id="accounts_deletions_list",
        summary="The account's deletion receipts",
        parameters=[DeletionQuerySerializer],
        responses={
            200: DeletionReceiptPageSerializer,
            401: _error("DeletionsUnauthorized", "No or bad token."),
            403: _error("DeletionsForbidden", "Only the account's owners and admins read its receipts."),
            404: _error("DeletionsNotFound", "No such account, or not a member of it."),
            422: OpenApiResponse(
                response=inline_serializer("DeletionsInvalid", {
                    "detail": serializers.CharField(),
                    "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
                }),
                description="A malformed account id or query parameter.",
            ),
        },
    )
    def get(self, request, account_id):
        account_id = parse_uuid(account_id, name="account_id")
        role = role_in(request.user, account_id)
        if role is None:
            raise NotFound("Account not found.")
        if role not in READ_ROLES:
            raise Forbidden("Only the account's owners and admins can read its deletion receipts.")
        query = DeletionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = {k: v for k, v in query.validated_data.items() if k not in ("limit", "offset")}
        receipts = selectors.receipts_of(account_id=account_id, **filters)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(receipts, request, view=self)
        return paginator.get_paginated_response(DeletionReceiptSerializer(page, many=True).data)
