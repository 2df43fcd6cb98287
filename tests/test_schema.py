"""The OpenAPI schema: generated without warnings (every view's types are known),
unique operation ids, and every operation documents its errors with the `detail` shape."""

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_schema_generates_without_guesses(tmp_path, capsys):
    """No view is left out of the schema (drf-spectacular skips a view it cannot type)."""
    call_command("spectacular", "--validate", "--file", str(tmp_path / "schema.yaml"))
    err = capsys.readouterr().err
    for sign in ("Error [", "unable to guess"):  # a view skipped from the schema
        assert sign not in err, err


def test_operation_ids_are_unique(schema):
    ids = [op["operationId"] for _, _, op in operations(schema)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_every_operation_documents_its_errors(schema):
    for path, method, op in operations(schema):
        codes = set(op["responses"])
        if op.get("security") and {} not in op["security"]:
            assert "401" in codes, (method, path)
            if method != "get":
                assert "403" in codes, (method, path)
        if "{" in path:
            assert {"404", "422"} <= codes, (method, path)
        if method in ("post", "put", "patch"):
            assert {"413", "422"} <= codes, (method, path)
        for code in codes:
            if code.startswith("4"):
                ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                component = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
                assert "detail" in component["properties"], (method, path, code)


def test_the_schema_states_what_the_api_rejects(schema):
    """What the API refuses, the schema says: an empty `stream_mode` list or message
    `content`, a cursor that is not a thread id."""
    parts = schema["components"]["schemas"]
    modes = parts["RunCreateRequest"]["properties"]["stream_mode"]["oneOf"][1]
    assert modes["minItems"] == 1
    assert parts["MessageCreateRequest"]["properties"]["content"]["minItems"] == 1
    listing = schema["paths"]["/api/agents/{agent_id}/threads/"]["get"]["parameters"]
    assert next(p for p in listing if p["name"] == "cursor")["schema"]["format"] == "uuid"


def test_invalid_pagination_is_422(api):
    for query in ("limit=-1", "limit=0", "limit=501", "limit=abc", "offset=abc", "offset=-1", "limit="):
        r = api.get(f"/api/threads?{query}")
        assert r.status_code == 422, (query, r.status_code)
        assert isinstance(r.json()["detail"], str)
    assert api.get("/api/threads?limit=500&offset=0").status_code == 200


@pytest.mark.django_db
def test_empty_or_unknown_enum_is_422(api):
    for query in ("status=", "status=zzz"):
        assert api.get(f"/api/threads?{query}").status_code == 422, query


def test_api_docs_pages_use_local_assets_only(client):
    """Swagger UI and ReDoc work with no internet: every script and stylesheet they load
    is one of our static files (drf-spectacular-sidecar), and each of those is served."""
    import re

    from django.contrib.staticfiles import finders

    assert client.get("/api/schema/").status_code == 200
    for page in ("/api/docs/", "/api/redoc/"):
        response = client.get(page)
        assert response.status_code == 200
        html = response.content.decode()
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
        assert assets, page
        for asset in assets:
            assert asset.startswith("/static/"), (page, asset)
            assert finders.find(asset.removeprefix("/static/")), asset
        assert "cdn.jsdelivr" not in html and "unpkg.com" not in html


def declares(schema, method, url, code) -> bool:
    """Whether the schema's operation for this request (its path template matched)
    lists the status `code`."""
    import re

    for template, item in sorted(schema["paths"].items(), key=lambda pair: pair[0].count("{")):  # literal first
        if method in item and re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", template.rstrip("/")) + "/?", url.split("?")[0]):
            return str(code) in item[method]["responses"]
    raise AssertionError(f"no operation for {method} {url}")


def test_the_limit_and_protection_errors_the_api_answers_are_in_the_schema(schema, api, account, project, owner):
    """Each request below really answers the code (an account at its thread and agent
    limits; the default assistant; a default agent), and the schema declares it."""
    import uuid

    from agents import services as agents
    from threads import services as threads

    thread = threads.create_thread(project=project, created_by=owner)
    default = agents.create_agent(account=account, name="Default", model="m", is_default=True)
    account.thread_limit = account.agent_limit = 1
    account.save()
    run = {"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "hi"}]}}
    new = {**run, "if_not_exists": "create"}
    requests = [
        (402, "post", "/api/assistants", {"graph_id": "echo"}),
        (402, "post", f"/api/threads/{thread.pk}/copy", None),
        *((402, "post", f"/api/threads/{uuid.uuid4()}/runs{tail}", new) for tail in ("", "/wait", "/stream")),
        *((402, "post", f"/api/runs{tail}", run) for tail in ("", "/wait", "/stream")),
        (402, "post", "/api/runs/batch", [run]),
        (409, "patch", "/api/assistants/echo", {"metadata": {"a": 1}}),
        (409, "delete", "/api/assistants/echo", None),
        (409, "post", "/api/assistants/echo/latest", {"version": 1}),
        (400, "delete", f"/api/assistants/{default.pk}", None),
    ]
    for code, method, url, body in requests:
        answer = getattr(api, method)(url, body, format="json")
        assert answer.status_code == code and answer.json()["detail"], (method, url, answer.status_code, answer.content)
        assert declares(schema, method, url, code), (method, url, code)
