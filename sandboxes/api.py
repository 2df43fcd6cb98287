"""`/api/projects/{id}/sandbox`: provision (POST) and read (GET) a project's sandbox."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from projects import selectors as tenancy

from . import selectors, services
from .serializers import SandboxSerializer


class ProjectSandboxView(APIView):
    def _project(self, request, project_id):
        return tenancy.get_visible(tenancy.projects_for(request.user), request.user, project_id, name="project_id")

    @extend_schema(request=None, responses={200: SandboxSerializer, 201: SandboxSerializer})
    def post(self, request, project_id):
        project = self._project(request, project_id)
        tenancy.ensure_can_write(request.user, project)
        sandbox, created = services.provision_sandbox(project=project)
        sandbox.refresh_from_db()  # the creation task may already have run (in-process)
        return Response(SandboxSerializer(sandbox).data, status=201 if created else 200)

    @extend_schema(responses={200: SandboxSerializer})
    def get(self, request, project_id):
        project = self._project(request, project_id)
        return Response(SandboxSerializer(selectors.sandbox_of(project)).data)
