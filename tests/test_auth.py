"""Logging in: throttling of /api/auth/token, password validation in the commands,
refresh-token rotation and revocation on password change or deactivation."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from projects.models import Account

pytestmark = pytest.mark.django_db
TOKEN = "/api/auth/token"


def login(client, username, password):
    return client.post(TOKEN, {"username": username, "password": password}, format="json")


def test_wrong_passwords_for_one_username_are_throttled(make_user):
    make_user("victim", password="right-password-1")
    client = APIClient()
    codes = [login(client, "victim", f"wrong-{i}").status_code for i in range(15)]
    assert codes[:10] == [401] * 10
    assert set(codes[10:]) == {429}
    r = login(client, "victim", "right-password-1")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0
    assert isinstance(r.json()["detail"], str)


def test_many_usernames_from_one_address_are_throttled():
    client = APIClient()
    codes = [login(client, f"nobody-{i}", "x").status_code for i in range(40)]
    assert codes[:30] == [401] * 30
    assert set(codes[30:]) == {429}


def test_a_malformed_login_body_is_its_own_4xx_not_a_cache_outage(caplog):
    client = APIClient()
    for body, content_type, code in (("null", "application/json", 422), ("{", "application/json", 422),
                                     ("x", "text/plain", 415)):
        r = client.generic("POST", TOKEN, body, content_type=content_type)
        assert r.status_code == code and isinstance(r.json()["detail"], str), (body, r.status_code)
    assert "cache unavailable" not in caplog.text


def test_commands_refuse_weak_passwords():
    with pytest.raises(CommandError, match="too short|too common|numeric"):
        call_command("create_account", "Weak", "--owner", "weakling", "--password", "1", stdout=io.StringIO())
    assert not Account.objects.filter(name="Weak").exists()
    assert not get_user_model().objects.filter(username="weakling").exists()
    out = io.StringIO()
    call_command("create_account", "Strong", "--owner", "strong", "--password", "a-long-passphrase", stdout=out)
    account_id = out.getvalue().strip()
    with pytest.raises(CommandError, match="too short|too common|numeric"):
        call_command("add_member", account_id, "weak2", "--role", "member", "--password", "12345678")
    assert not get_user_model().objects.filter(username="weak2").exists()


def tokens(client, username, password):
    r = login(client, username, password)
    assert r.status_code == 200
    return r.json()["access"], r.json()["refresh"]


def reads(access):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/accounts").status_code


def test_refresh_rotates_and_the_used_token_is_revoked(make_user):
    make_user("rotor", password="rotor-password-1")
    client = APIClient()
    _, refresh = tokens(client, "rotor", "rotor-password-1")
    r = client.post(f"{TOKEN}/refresh", {"refresh": refresh}, format="json")
    assert r.status_code == 200 and r.json()["refresh"] != refresh
    assert client.post(f"{TOKEN}/refresh", {"refresh": refresh}, format="json").status_code == 401
    assert client.post(f"{TOKEN}/refresh", {"refresh": r.json()["refresh"]}, format="json").status_code == 200


def test_password_change_revokes_every_token(make_user):
    user = make_user("changer", password="old-password-1")
    client = APIClient()
    access, refresh = tokens(client, "changer", "old-password-1")
    assert reads(access) == 200
    user.set_password("new-password-1")
    user.save()
    assert reads(access) == 401
    assert client.post(f"{TOKEN}/refresh", {"refresh": refresh}, format="json").status_code == 401
    access2, _ = tokens(client, "changer", "new-password-1")
    assert reads(access2) == 200


def test_deactivation_revokes_every_token(make_user):
    user = make_user("leaver", password="leaver-password-1")
    client = APIClient()
    access, refresh = tokens(client, "leaver", "leaver-password-1")
    user.is_active = False
    user.save()
    assert reads(access) == 401
    assert client.post(f"{TOKEN}/refresh", {"refresh": refresh}, format="json").status_code == 401
    assert login(client, "leaver", "leaver-password-1").status_code == 401


def test_refresh_of_a_deleted_user_is_401(make_user):
    user = make_user("gone", password="gone-password-1")
    client = APIClient()
    _, refresh = tokens(client, "gone", "gone-password-1")
    user.delete()
    assert client.post(f"{TOKEN}/refresh", {"refresh": refresh}, format="json").status_code == 401
