"""The OpenAPI schema tells the truth: schemathesis over the whole schema, against a
live server, with a fixed seed and a bounded number of examples per operation.

Every check runs (server errors, response schemas, documented status codes and
content types, invalid requests rejected, authentication not ignored...) except
`positive_data_acceptance`: some schema-valid requests are refused by a rule the
schema cannot express (a parent checkpoint that does not exist, a cron expression
that does not parse), with a documented 4xx; and `max_response_time`: time is
measured by the benchmarks, never asserted in a test.

Every operation of the schema is tested, the event streams, waits and joins too: a
real Celery worker runs the runs (as in production), so a stream or a wait ends when
its run does. Real ids of a seeded account are given for path parameters of reads and
POSTs, so the 200 shapes are checked, not only 404s. Run it alone with
`.venv/bin/pytest tests/test_schemathesis.py -q` (SCHEMATHESIS_EXAMPLES=N to widen).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings
from rest_framework_simplejwt.tokens import RefreshToken

from agents import services as agent_services
from projects import services as project_services
from threads import services as thread_services
from threads.models import Run

# On PostgreSQL (CI): the embedded SQLite serialises every write of the live server.
pytestmark = [pytest.mark.schemathesis, pytest.mark.postgres]

SEED = 20261123
# `all` but positive_data_acceptance and max_response_time (which `all` would switch on).
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
          "missing_required_header", "unsupported_method", "allow_header_conformance", "use_after_free",
          "ensure_resource_availability", "ignored_auth", "object_level_authorization")
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "5"))
ST = Path(sys.executable).with_name("st")


def _config(ids: dict) -> str:
    """schemathesis.toml: real ids for reads and POSTs (a DELETE gets generated ids)."""
    lines = ["[parameters]"]
    lines += [f'{name} = "{ids[name]}"' for name in ("thread_id", "agent_id", "project_id", "run_id")]
    for prefix, key in (("accounts", "account"), ("agents", "agent_id"), ("projects", "project_id"),
                        ("threads", "thread_id")):
        lines += [
            "", "[[operations]]", 'include-method-regex = "^(GET|POST)$"',
            f'include-path-regex = "^/api/{prefix}/\\\\{{id\\\\}}"', f'parameters = {{ id = "{ids[key]}" }}',
        ]
    return "\n".join(lines) + "\n"


@override_settings(DEBUG=False)
def test_schema_holds_under_schemathesis(live_server, celery_worker_process, tmp_path):
    owner = project_services.ensure_user(username="st-owner", password="st-password-1234")
    account = project_services.create_account(name="Schemathesis", owner=owner)
    project = project_services.create_project(account=account, name="Main")
    agent = agent_services.create_agent(account=account, name="agent", model="echo-1")
    thread = thread_services.create_thread(project=project, agent=agent, created_by=owner, title="t")
    thread_services.post_message(thread=thread, role="user", content=[{"type": "text", "text": "hello"}])
    run = Run.objects.create(thread=thread, seq=1, status="success")
    ids = {"account": account.pk, "project_id": project.pk, "agent_id": agent.pk, "thread_id": thread.pk,
           "run_id": run.pk}
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(ids))
    token = str(RefreshToken.for_user(owner).access_token)
    command = [
        str(ST), "--config-file", str(config), "run", f"{live_server.url}/api/schema/",
        "--checks", ",".join(CHECKS),
        "--phases", "examples,coverage,fuzzing",
        "-H", f"Authorization: Bearer {token}",
        "--seed", str(SEED), "--max-examples", str(EXAMPLES),
        "--generation-database", "none", "--no-shrink", "--workers", "2", "--request-timeout", "30",
        "--no-color", "--output-truncate", "true",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=2400, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    assert "Tested:" in output, output[-3000:]
