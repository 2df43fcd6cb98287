"""The reconcile command's creation side goes through every sandbox still creating,
page by page, as its deletion side does (`test_outbox`)."""

from io import StringIO

import pytest
from django.core.management import call_command

from projects.models import Project
from sandboxes.models import Sandbox, SandboxState

pytestmark = pytest.mark.django_db


def test_the_reconcile_command_creates_every_sandbox_still_creating_not_just_500(account, settings, tmp_path):
    settings.SANDBOX_ROOT = str(tmp_path / "sandboxes")
    projects = Project.objects.bulk_create(Project(account=account, name=f"p{i}") for i in range(1001))
    Sandbox.objects.bulk_create(Sandbox(provider="local", state=SandboxState.CREATING, project=p, account=account)
                                for p in projects)
    out = StringIO()
    call_command("reconcile_sandboxes", "--min-age", "0", stdout=out)
    assert Sandbox.objects.filter(state=SandboxState.READY).count() == 1001
    assert not Sandbox.objects.exclude(external_id__gt="").exists()  # each has its id at the provider
    lines = out.getvalue().splitlines()
    assert "500 sandboxes still creating looked at, 500 sent to the provider" in lines
    assert "1,001 sandboxes still creating looked at, 1,001 sent to the provider" in lines
    assert "1001 sandboxes still creating sent to the provider" in lines
    assert "Still waiting for the provider: 0 creating, 0 pending deletion" in lines
