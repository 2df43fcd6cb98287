"""Reads on sandboxes."""

from config.errors import NotFound

from .models import Sandbox


def sandbox_of(project) -> Sandbox:
    sandbox = Sandbox.objects.filter(project_id=project.pk).first()
    if sandbox is None:
        raise NotFound("The project has no sandbox.")
    return sandbox
