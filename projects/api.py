"""Accounts and projects. Thin views: parse, authorise, call a service, render."""

from django.db.models import OuterRef, Subquery
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from . import caches, selectors, services
from .models import Membership
from .serializers import AccountSerializer, ProjectSerializer, ProjectUpdateSerializer


class AccountViewSet(viewsets.GenericViewSet):
    serializer_class = AccountSerializer

    def get_queryset(self):
        role = Membership.objects.filter(account=OuterRef("pk"), user_id=self.request.user.pk).values("role")[:1]
        return selectors.accounts_for(self.request.user).annotate(role=Subquery(role))

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        account = selectors.get_visible(self.get_queryset(), request.user, pk, account_field="id")
        return Response(self.get_serializer(account).data)

    @extend_schema(
        responses={
            200: inline_serializer(
                "AccountUsage",
                {
                    "thread_count": serializers.IntegerField(),
                    "project_count": serializers.IntegerField(),
                    "agent_count": serializers.IntegerField(),
                    "limits": serializers.DictField(child=serializers.IntegerField()),
                },
            )
        }
    )
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        """Served from the account-state cache (rebuilt from the database when missing)."""
        account = selectors.get_visible(self.get_queryset(), request.user, pk, account_field="id")
        return Response(caches.account_state(account))


class ProjectFilterSerializer(serializers.Serializer):
    account = serializers.UUIDField(required=False, help_text="Only this account's projects.")


class ProjectViewSet(viewsets.GenericViewSet):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return selectors.projects_for(self.request.user)

    @extend_schema(parameters=[ProjectFilterSerializer], responses=ProjectSerializer(many=True))
    def list(self, request):
        filters = ProjectFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = self.get_queryset()
        if "account" in filters.validated_data:
            qs = qs.filter(account_id=filters.validated_data["account"])
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(ProjectSerializer(page, many=True).data)

    def create(self, request):
        data = ProjectSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = selectors.ensure_account_writable(request.user, data.validated_data["account_id"])
        project = services.create_project(
            account=account, name=data.validated_data["name"], description=data.validated_data.get("description", "")
        )
        return Response(ProjectSerializer(project).data, status=201)

    def retrieve(self, request, pk=None):
        project = selectors.get_visible(self.get_queryset(), request.user, pk)
        return Response(ProjectSerializer(project).data)

    @extend_schema(request=ProjectUpdateSerializer)
    def partial_update(self, request, pk=None):
        project = selectors.get_visible(self.get_queryset(), request.user, pk)
        selectors.ensure_can_write(request.user, project)
        data = ProjectUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        project = services.update_project(project=project, **data.validated_data)
        return Response(ProjectSerializer(project).data)

    @extend_schema(responses={200: inline_serializer(
        "ProjectDeleted", {"message": serializers.CharField(), "id": serializers.UUIDField()})})
    def destroy(self, request, pk=None):
        project = selectors.get_visible(self.get_queryset(), request.user, pk)
        selectors.ensure_can_write(request.user, project)
        project_id = project.pk
        services.delete_project(project=project)
        return Response({"message": "Project deleted successfully", "id": str(project_id)})
