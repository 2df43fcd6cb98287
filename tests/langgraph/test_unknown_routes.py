"""A mistyped /api/ path answers a JSON 404 with `detail` on every method (never an
HTML CSRF page that the SDK would report as a permission error)."""

import pytest
from django.test import Client
from langgraph_sdk.errors import NotFoundError

from tests.langgraph.test_sdk_threads import sdk_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("method", ["get", "post", "patch", "put", "delete"])
def test_unknown_routes_are_a_json_404_on_every_method(live_server, owner, method):
    http = sdk_client(live_server, owner).http
    with pytest.raises(NotFoundError) as missing:
        if method == "get":
            http.get("/threadz")
        elif method == "delete":
            http.delete("/threadz/1")
        else:
            getattr(http, method)("/threadz/1/statee", json={"a": 1})
    response = missing.value.response
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"detail": "Not found."}


def test_without_a_token_too():
    client = Client(enforce_csrf_checks=True)
    for method in ("post", "patch", "delete"):
        response = getattr(client, method)("/api/nowhere", data="{}", content_type="application/json")
        assert response.status_code == 404 and response.json()["detail"]


def test_the_store_says_it_is_not_supported(live_server, owner):
    """`client.store.*` got a bare "Not found.", as for a typo: it now says the store
    is not part of this server."""
    client = sdk_client(live_server, owner)
    for call in (lambda: client.store.put_item(["ns"], "k", {"v": 1}), lambda: client.store.get_item(["ns"], "k"),
                 lambda: client.store.search_items(["ns"]), lambda: client.store.list_namespaces()):
        with pytest.raises(NotFoundError) as missing:
            call()
        assert "no LangGraph store" in missing.value.response.json()["detail"]
