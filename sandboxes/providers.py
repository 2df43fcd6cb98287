"""Where sandboxes live, behind one small interface.

- `local`: a directory per sandbox under `settings.SANDBOX_ROOT` (the embedded default).
- `http`: a provider REST API shaped like Daytona's — `POST {url}/sandbox` creates
  and answers `{"id": ...}`, `GET {url}/sandbox?labels={"threadkeeper_id": ...}` lists
  the sandboxes carrying that label, `DELETE {url}/sandbox/{id}` deletes (404: already
  gone), authenticated with `Authorization: Bearer <SANDBOX_API_KEY>`, each call
  bounded by `SANDBOX_API_TIMEOUT` seconds.

Deleting is idempotent everywhere: a sandbox that is already gone counts as deleted,
so a retry after a lost answer is harmless. Creating is made so by `find`: every
sandbox is labelled with its own id at creation, so one whose creation answer was lost
(a timeout, a 5xx after the work was done) is found again — adopted by the next
creation, or deleted with its row — never left running at the provider.
"""

import json
import shutil
from pathlib import Path

import httpx
from django.conf import settings


class ProviderError(Exception):
    """The provider failed (error status, timeout, unreachable); worth a retry."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or did not answer in time: its other
    sandboxes are not tried again in the same reconciler pass (`sandboxes.services`)."""


class SandboxProvider:
    name = ""

    def create(self, *, sandbox_id: str, labels: dict) -> str:
        """Create a sandbox; returns its id at the provider."""
        raise NotImplementedError

    def delete(self, *, external_id: str) -> None:
        """Delete it; succeeds when it is already gone."""
        raise NotImplementedError

    def find(self, *, sandbox_id: str) -> list[str]:
        """The ids at the provider of the sandboxes created for `sandbox_id`."""
        raise NotImplementedError


class LocalProvider(SandboxProvider):
    name = "local"

    def __init__(self, root: str | None = None):
        self.root = Path(root or settings.SANDBOX_ROOT)

    def path_of(self, external_id: str) -> Path:
        path = (self.root / external_id).resolve()
        if path.parent != self.root.resolve():  # never leave the root
            raise ProviderError(f"Invalid local sandbox id {external_id!r}.")
        return path

    def create(self, *, sandbox_id, labels):
        try:
            self.path_of(sandbox_id).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProviderError(str(exc)) from exc
        return sandbox_id

    def find(self, *, sandbox_id):
        return [sandbox_id] if self.path_of(sandbox_id).is_dir() else []

    def delete(self, *, external_id):
        try:
            shutil.rmtree(self.path_of(external_id))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ProviderError(str(exc)) from exc


class HttpProvider(SandboxProvider):
    name = "http"

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float | None = None):
        self.url = (url or settings.SANDBOX_API_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else settings.SANDBOX_API_KEY
        self.timeout = timeout if timeout is not None else settings.SANDBOX_API_TIMEOUT
        if not self.url:
            raise ProviderError("SANDBOX_API_URL is not set.")

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return httpx.request(
                method, f"{self.url}{path}", timeout=self.timeout,
                headers={"Authorization": f"Bearer {self.api_key}"}, **kwargs,
            )
        except httpx.TransportError as exc:  # refused, unreachable, timed out
            raise ProviderUnavailable(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc

    def create(self, *, sandbox_id, labels):
        response = self._request("POST", "/sandbox", json={"labels": {**labels, "threadkeeper_id": sandbox_id}})
        if response.status_code not in (200, 201):
            raise ProviderError(f"POST /sandbox: HTTP {response.status_code}")
        try:
            return str(response.json()["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError("POST /sandbox: no id in the answer") from exc

    def find(self, *, sandbox_id):
        response = self._request("GET", "/sandbox", params={"labels": json.dumps({"threadkeeper_id": sandbox_id})})
        if response.status_code in (404, 405, 501):  # a provider that cannot list: nothing to find
            return []
        if response.status_code != 200:
            raise ProviderError(f"GET /sandbox: HTTP {response.status_code}")
        try:
            found = response.json()
            found = found.get("items", found) if isinstance(found, dict) else found
            # Only a sandbox that shows the label is this one's: a provider that ignored
            # the filter (or lists without labels) must never have another sandbox
            # adopted, or deleted, in its place.
            return [str(item["id"]) for item in found
                    if isinstance(item.get("labels"), dict) and item["labels"].get("threadkeeper_id") == sandbox_id]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderError("GET /sandbox: not a list of sandboxes") from exc

    def delete(self, *, external_id):
        response = self._request("DELETE", f"/sandbox/{external_id}")
        if response.status_code not in (200, 202, 204, 404):
            raise ProviderError(f"DELETE /sandbox/{external_id}: HTTP {response.status_code}")


PROVIDERS = {LocalProvider.name: LocalProvider, HttpProvider.name: HttpProvider}


def get_provider(name: str | None = None) -> SandboxProvider:
    """The provider by name (a sandbox is deleted by the provider that created it)."""
    name = name or settings.SANDBOX_PROVIDER
    if name not in PROVIDERS:
        raise ProviderError(f"Unknown sandbox provider {name!r}.")
    return PROVIDERS[name]()
