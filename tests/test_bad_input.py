"""Bad input is refused cleanly: an oversized body, out-of-range integers, a lone
surrogate, deeply nested JSON and a malformed prune list each answer a 4xx whose
`detail` is a string, and nothing is written."""

import json
import uuid

import pytest
from django.conf import settings

from threads import services as thread_services
from threads.models import Checkpoint, CheckpointWrite, Message, Run, Thread

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(project, owner):
    return thread_services.create_thread(project=project, created_by=owner)


def counts():
    return {model.__name__: model.objects.count() for model in (Thread, Message, Checkpoint, CheckpointWrite, Run)}


def post_raw(client, path, raw: bytes):
    return client.post(path, data=raw, content_type="application/json")


def assert_refused(response, status):
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    return body


# 1. Bodies over the limit

def test_message_over_the_body_limit_is_413(api, thread):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert limit == 2_621_440
    text = "x" * (3 * 1024 * 1024)
    before = counts()
    response = api.post(f"/api/threads/{thread.pk}/messages",
                        {"role": "user", "content": [{"type": "text", "text": text}]}, format="json")
    body = assert_refused(response, 413)
    assert str(limit) in body["detail"]
    assert counts() == before


def test_prune_with_100000_ids_is_refused(api, thread):
    ids = [str(uuid.uuid4()) for _ in range(100_000)]
    raw = json.dumps({"thread_ids": ids + [str(thread.pk)]}).encode()
    assert len(raw) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # 100,000 quoted UUIDs: about 4 MB
    before = counts()
    response = post_raw(api, "/api/threads/prune", raw)
    assert_refused(response, 413)
    assert counts() == before
    assert Thread.objects.filter(pk=thread.pk).exists()


def test_prune_with_more_than_1000_ids_under_the_byte_limit_is_422(api, thread):
    ids = [str(uuid.uuid4()) for _ in range(1000)] + [str(thread.pk)]
    raw = json.dumps({"thread_ids": ids}).encode()
    assert len(raw) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    before = counts()
    body = assert_refused(post_raw(api, "/api/threads/prune", raw), 422)
    assert "thread_ids" in body["errors"]
    assert counts() == before
    assert Thread.objects.filter(pk=thread.pk).exists()


# 2. Integers out of range

@pytest.mark.parametrize("ttl", [2**31, 2**31 + 1, 2**63 - 1, {"ttl": 2**31, "strategy": "delete"}])
def test_thread_ttl_out_of_range_is_422(api, project, ttl):
    before = counts()
    response = api.post("/api/threads", {"project_id": str(project.pk), "ttl": ttl}, format="json")
    body = assert_refused(response, 422)
    assert "ttl" in body["errors"]
    assert counts() == before


@pytest.mark.parametrize("ttl", [2**31 - 1, {"ttl": 2**31 - 1, "strategy": "keep_latest"}])
def test_thread_ttl_up_to_the_32_bit_bound_is_taken_as_the_schema_says(api, project, ttl):
    """The schema (and the limits guide) bound `ttl` by the 32-bit column: what they
    allow is stored, not refused with a bound they never state."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    body = schema["components"]["schemas"]["ThreadCreateRequest"]["properties"]["ttl"]
    assert [part.get("maximum") for part in body["oneOf"][:1]] == [2**31 - 1]
    assert body["oneOf"][1]["properties"]["ttl"]["maximum"] == 2**31 - 1
    response = api.post("/api/threads", {"project_id": str(project.pk), "ttl": ttl}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["ttl"] == 2**31 - 1


@pytest.mark.parametrize("ttl", [10**20, -(10**20)])
def test_thread_ttl_beyond_64_bits_is_422(api, project, ttl):
    before = counts()
    raw = f'{{"project_id": "{project.pk}", "ttl": {ttl}}}'.encode()
    body = assert_refused(post_raw(api, "/api/threads", raw), 422)
    assert "64 bits" in body["detail"]
    assert counts() == before


@pytest.mark.parametrize("field, value", [("ttl", "1e309"), ("ttl", "-1e309"), ("metadata", '{"a": 1e309}'),
                                          ("metadata", '{"a": [1, -2e400]}')])
def test_a_number_that_overflows_to_infinity_is_422(api, project, field, value):
    """`json.loads` turns 1e309 into infinity (no `parse_constant` call): no column
    takes it, and `int(inf)` raised."""
    before = counts()
    raw = f'{{"project_id": "{project.pk}", "{field}": {value}}}'.encode()
    body = assert_refused(post_raw(api, "/api/threads", raw), 422)
    assert "finite" in body["detail"]
    assert counts() == before


def test_thread_with_a_valid_ttl_is_created(api, project):
    before = counts()
    response = api.post("/api/threads", {"project_id": str(project.pk), "ttl": 60}, format="json")
    assert response.status_code == 201, response.content
    assert Thread.objects.count() == before["Thread"] + 1


@pytest.mark.parametrize(("idx", "reason"), [(10**20, "64 bits"), (2**31, "idx"), (-(2**31) - 1, "idx")])
def test_checkpoint_write_idx_out_of_range_is_422(api, thread, idx, reason):
    before = counts()
    raw = json.dumps({"checkpoint_id": "cp-1", "checkpoint": {"v": 1}, "metadata": {},
                      "writes": [{"task_id": "t1", "idx": 0, "channel": "c", "value": 1}]})
    raw = raw.replace('"idx": 0', f'"idx": {idx}').encode()
    response = post_raw(api, f"/api/threads/{thread.pk}/checkpoints", raw)
    body = assert_refused(response, 422)
    assert reason in body["detail"]
    assert counts() == before


def test_checkpoint_write_with_a_valid_idx_is_created(api, thread):
    before = counts()
    response = api.post(f"/api/threads/{thread.pk}/checkpoints",
                        {"checkpoint_id": "cp-1", "checkpoint": {"v": 1}, "metadata": {},
                         "writes": [{"task_id": "t1", "idx": 2**31 - 1, "channel": "c", "value": 1}]}, format="json")
    assert response.status_code == 201, response.content
    assert Checkpoint.objects.count() == before["Checkpoint"] + 1
    assert CheckpointWrite.objects.count() == before["CheckpointWrite"] + 1


# 3. Lone surrogates

@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\ud800b", "\\udc00\\ud800"])
def test_message_with_a_lone_surrogate_is_422(api, thread, escape):
    raw = ('{"role": "user", "content": [{"type": "text", "text": "%s"}]}' % escape).encode()
    before = counts()
    response = post_raw(api, f"/api/threads/{thread.pk}/messages", raw)
    body = assert_refused(response, 422)
    assert "surrogate" in body["detail"].lower()
    assert counts() == before


def test_message_with_a_paired_surrogate_is_stored(api, thread):
    raw = b'{"role": "user", "content": [{"type": "text", "text": "\\ud83d\\ude00"}]}'
    before = counts()
    response = post_raw(api, f"/api/threads/{thread.pk}/messages", raw)
    assert response.status_code == 201, response.content
    assert Message.objects.count() == before["Message"] + 1


# 4. Deeply nested JSON

def test_metadata_nested_100000_levels_is_422(api, project):
    depth = 100_000
    raw = ('{"project_id": "%s", "metadata": {"k": %s}}' % (project.pk, "[" * depth + "]" * depth)).encode()
    assert len(raw) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    before = counts()
    body = assert_refused(post_raw(api, "/api/threads", raw), 422)
    assert f"nested deeper than {settings.API_MAX_JSON_DEPTH}" in body["detail"]
    assert counts() == before


def nested(levels):
    """A metadata value with `levels` nested objects."""
    value = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.mark.parametrize("levels", [settings.API_MAX_JSON_DEPTH, settings.API_MAX_JSON_DEPTH + 1, 100])
def test_metadata_deeper_than_the_limit_is_422(api, project, levels):
    assert settings.API_MAX_JSON_DEPTH == 32
    before = counts()
    response = api.post("/api/threads", {"project_id": str(project.pk), "metadata": {"m": nested(levels)}},
                        format="json")
    body = assert_refused(response, 422)
    assert f"nested deeper than {settings.API_MAX_JSON_DEPTH}" in body["detail"]
    assert counts() == before


def test_metadata_nested_10_levels_is_accepted(api, project):
    before = counts()
    response = api.post("/api/threads", {"project_id": str(project.pk), "metadata": {"m": nested(10)}},
                        format="json")
    assert response.status_code == 201, response.content
    assert Thread.objects.count() == before["Thread"] + 1
    assert response.json()["metadata"]["m"] == nested(10)


# 5. Nested field errors are plain JSON

def test_prune_with_a_non_uuid_id_has_nested_errors(api, thread):
    before = counts()
    response = api.post("/api/threads/prune", {"thread_ids": ["abc"]}, format="json")
    body = assert_refused(response, 422)
    assert set(body["errors"]) == {"thread_ids"}
    assert set(body["errors"]["thread_ids"]) == {"0"}
    messages = body["errors"]["thread_ids"]["0"]
    assert isinstance(messages, list) and len(messages) == 1
    assert isinstance(messages[0], str) and messages[0]
    assert "ErrorDetail" not in response.content.decode()
    assert "ErrorDetail" not in body["detail"]
    assert counts() == before
    assert Thread.objects.filter(pk=thread.pk).exists()
