"""The providers against the real thing at their edge: a directory, and a local
HTTP server playing the provider's API."""

import pytest

from sandboxes.providers import HttpProvider, LocalProvider, ProviderError, get_provider
from tests.fake_sandbox_provider import API_KEY, fake_provider  # noqa: F401


def test_local_provider_creates_and_deletes_a_directory(tmp_path):
    provider = LocalProvider(root=str(tmp_path))
    external_id = provider.create(sandbox_id="abc", labels={})
    assert (tmp_path / external_id).is_dir()
    (tmp_path / external_id / "file.txt").write_text("work")
    provider.delete(external_id=external_id)
    assert not (tmp_path / external_id).exists()
    provider.delete(external_id=external_id)  # already gone: fine


def test_local_provider_never_leaves_its_root(tmp_path):
    with pytest.raises(ProviderError):
        LocalProvider(root=str(tmp_path)).delete(external_id="../outside")


def test_http_provider_creates_and_deletes(fake_provider):  # noqa: F811
    provider = HttpProvider(url=fake_provider.url, api_key=API_KEY, timeout=2)
    external_id = provider.create(sandbox_id="abc", labels={"project_id": "p"})
    assert external_id in fake_provider.sandboxes
    provider.delete(external_id=external_id)
    assert external_id not in fake_provider.sandboxes
    provider.delete(external_id=external_id)  # a 404: already gone


def test_http_provider_finds_the_sandboxes_labelled_with_an_id(fake_provider):  # noqa: F811
    provider = HttpProvider(url=fake_provider.url, api_key=API_KEY, timeout=2)
    external_id = provider.create(sandbox_id="abc", labels={"project_id": "p"})
    provider.create(sandbox_id="other", labels={"project_id": "p"})
    assert provider.find(sandbox_id="abc") == [external_id]
    assert provider.find(sandbox_id="none") == []
    fake_provider.can_list = False  # a provider without the list: nothing found, no error
    assert provider.find(sandbox_id="abc") == []
    fake_provider.can_list, fake_provider.fail_with = True, 503
    with pytest.raises(ProviderError):
        provider.find(sandbox_id="abc")


def test_http_provider_finds_only_what_shows_the_label(fake_provider):  # noqa: F811
    """A provider that ignores the label filter, or lists without labels: another
    sandbox is never taken for this one (it would be adopted, or deleted)."""
    provider = HttpProvider(url=fake_provider.url, api_key=API_KEY, timeout=2)
    mine = provider.create(sandbox_id="abc", labels={"project_id": "p"})
    provider.create(sandbox_id="other", labels={"project_id": "p"})
    fake_provider.filters_labels = False
    assert provider.find(sandbox_id="abc") == [mine] and provider.find(sandbox_id="none") == []
    fake_provider.lists_labels = False
    assert provider.find(sandbox_id="abc") == []


def test_local_provider_finds_its_directory(tmp_path):
    provider = LocalProvider(root=str(tmp_path))
    assert provider.find(sandbox_id="abc") == []
    provider.create(sandbox_id="abc", labels={})
    assert provider.find(sandbox_id="abc") == ["abc"]


@pytest.mark.parametrize("failure", ["status", "timeout", "key", "unreachable"])
def test_http_provider_failures_are_provider_errors(fake_provider, failure):  # noqa: F811
    url, key = fake_provider.url, API_KEY
    if failure == "status":
        fake_provider.fail_with = 500
    elif failure == "timeout":
        fake_provider.delay = 1.0
    elif failure == "key":
        key = "wrong"
    else:
        url = "http://127.0.0.1:1/api"
    provider = HttpProvider(url=url, api_key=key, timeout=0.3)
    with pytest.raises(ProviderError):
        provider.delete(external_id="sb-1")
    with pytest.raises(ProviderError):
        provider.create(sandbox_id="abc", labels={})


def test_unknown_provider_name(settings):
    settings.SANDBOX_PROVIDER = "cloud9"
    with pytest.raises(ProviderError):
        get_provider()
