from django.urls import re_path

from .api import ProjectSandboxView

urlpatterns = [
    re_path(r"^projects/(?P<project_id>[^/]+)/sandbox/?$", ProjectSandboxView.as_view(), name="project-sandbox"),
]
