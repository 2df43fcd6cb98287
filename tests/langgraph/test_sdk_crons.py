"""The unmodified LangGraph SDK against a live server: crons' search order (the rest
of the crons' surface is in tests/agents/test_crons.py)."""

import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import UnprocessableEntityError
from rest_framework_simplejwt.tokens import RefreshToken

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_server, owner, account):
    token = RefreshToken.for_user(owner).access_token
    return get_sync_client(url=live_server.url + "/api", headers={"Authorization": f"Bearer {token}"}, api_key=None)


def test_sorting_crons_puts_the_empty_values_last_ascending_and_first_descending(client):
    """A paused cron has no `next_run_date`, a thread-less one no `thread_id`, most no
    `end_time`. On SQLite those came first in an ascending sort, on PostgreSQL last:
    the order is now PostgreSQL's (LangGraph's server) on both."""
    assistant = client.assistants.create("echo")["assistant_id"]
    thread = client.threads.create()["thread_id"]
    due = client.crons.create_for_thread(thread, assistant, schedule="0 9 * * *")
    paused = client.crons.create(assistant, schedule="0 10 * * *", enabled=False)
    assert due["next_run_date"] and paused["next_run_date"] is None and paused["thread_id"] is None
    for sort_by in ("next_run_date", "thread_id"):
        ascending = [c["cron_id"] for c in client.crons.search(sort_by=sort_by, sort_order="asc")]
        descending = [c["cron_id"] for c in client.crons.search(sort_by=sort_by, sort_order="desc")]
        assert ascending == [due["cron_id"], paused["cron_id"]], sort_by
        assert descending == [paused["cron_id"], due["cron_id"]], sort_by
    assert [c["cron_id"] for c in client.crons.search(sort_by="next_run_date", sort_order="asc", limit=1,
                                                        offset=1)] == [paused["cron_id"]]


def test_a_bad_schedule_is_a_422_on_the_schedule_field(client):
    """The SDK sends `schedule`; the 422's `errors` named `cron` (the trigger's own
    name for it), so a client looking for the field at fault found nothing."""
    assistant = client.assistants.create("echo")["assistant_id"]
    thread = client.threads.create()["thread_id"]
    cron = client.crons.create(assistant, schedule="0 9 * * *")
    for call in (lambda: client.crons.create(assistant, schedule="61 * * * *"),
                 lambda: client.crons.create_for_thread(thread, assistant, schedule="0 0 31 2 *"),
                 lambda: client.crons.update(cron["cron_id"], schedule="not a schedule")):
        with pytest.raises(UnprocessableEntityError) as refused:
            call()
        assert set(refused.value.response.json()["errors"]) == {"schedule"}
    with pytest.raises(UnprocessableEntityError) as refused:
        client.crons.create(assistant, schedule="0 9 * * *", timezone="Mars/Olympus")
    assert set(refused.value.response.json()["errors"]) == {"timezone"}
    assert client.crons.count(assistant_id=assistant) == 1  # nothing was created
