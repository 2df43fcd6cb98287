"""No account is left with no owner by the admin: not by deleting the last owner's
membership (its page or the bulk action), demoting it (its page, or the account's
members inline), adding an account without an owner row, or deleting the user. One
rule (`projects.selectors.accounts_left_without_owner`), a clear refusal each time."""

import pytest
from django.contrib.messages import get_messages

from projects.models import Account, Membership
from projects.selectors import accounts_left_without_owner, last_owner_refusals
from projects.services import create_account, ensure_user
from tests.admin.test_admin_deletion import superuser  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db
MEMBERSHIPS, ACCOUNTS, USERS = "/admin/projects/membership/", "/admin/projects/account/", "/admin/auth/user/"


@pytest.fixture
def people():
    return {name: ensure_user(username=name, password="pw-123456") for name in ("alice", "bob", "carol", "dave")}


def roles(account) -> dict:
    return dict(account.memberships.values_list("user__username", "role"))


def page_text(response) -> str:
    return response.content.decode()


def test_the_rule(people):
    alone = create_account(name="Alone", owner=people["alice"])
    pair = create_account(name="Pair", owner=people["bob"])
    carol = Membership.objects.create(account=pair, user=people["carol"], role="owner")
    viewer = Membership.objects.create(account=pair, user=people["dave"], role="viewer")
    alice = alone.memberships.get()
    assert accounts_left_without_owner(leaving=[]) == []
    assert accounts_left_without_owner(leaving=[carol.pk, viewer.pk]) == []  # bob stays
    assert accounts_left_without_owner(leaving=Membership.objects.filter(account=pair)) == [(pair, ["bob", "carol"])]
    assert last_owner_refusals(leaving=[alice.pk, carol.pk]) == [
        "Account “Alone”: alice is its last owner — add another owner, or delete the account first."]
    assert last_owner_refusals(leaving=Membership.objects.all()) == [
        "Account “Alone”: alice is its last owner — add another owner, or delete the account first.",
        "Account “Pair”: bob and carol are its only owners — add another owner, or delete the account first."]


def test_membership_delete_page_refuses_the_last_owner(superuser, people):
    alone = create_account(name="Alone", owner=people["alice"])
    last = alone.memberships.get()
    page = superuser.get(f"{MEMBERSHIPS}{last.pk}/delete/")
    assert page.status_code == 200
    assert "Account “Alone”: alice is its last owner — add another owner" in page_text(page)
    assert 'type="submit"' not in page_text(page).split('id="content"')[1]  # no "Yes, I'm sure"
    superuser.post(f"{MEMBERSHIPS}{last.pk}/delete/", {"post": "yes"})
    assert roles(alone) == {"alice": "owner"}

    Membership.objects.create(account=alone, user=people["bob"], role="owner")  # with a second owner, it goes
    superuser.post(f"{MEMBERSHIPS}{last.pk}/delete/", {"post": "yes"})
    assert roles(alone) == {"bob": "owner"}


def test_membership_bulk_delete_refuses_the_only_owners_naming_them_all(superuser, people):
    shared = create_account(name="Shared", owner=people["alice"])
    Membership.objects.create(account=shared, user=people["dave"], role="owner")
    Membership.objects.create(account=shared, user=people["bob"], role="member")
    selection = {"action": "delete_selected", "_selected_action": [str(m.pk) for m in shared.memberships.all()]}
    page = superuser.post(MEMBERSHIPS, selection)
    assert page.status_code == 200
    assert "Account “Shared”: alice and dave are its only owners" in page_text(page)
    superuser.post(MEMBERSHIPS, {**selection, "post": "yes"})
    assert roles(shared) == {"alice": "owner", "dave": "owner", "bob": "member"}

    keep_one = {"action": "delete_selected",  # bob and dave go, alice stays the owner
                "_selected_action": [str(m.pk) for m in shared.memberships.exclude(user=people["alice"])]}
    done = superuser.post(MEMBERSHIPS, {**keep_one, "post": "yes"}, follow=True)
    assert [str(m) for m in get_messages(done.wsgi_request)] == ["Successfully deleted 2 memberships."]
    assert roles(shared) == {"alice": "owner"}


def membership_form(membership, **changes) -> dict:
    data = {"user": membership.user_id, "account": membership.account_id, "role": membership.role}
    return {**data, **changes}


def test_membership_page_refuses_demoting_the_last_owner(superuser, people):
    alone = create_account(name="Alone", owner=people["alice"])
    last = alone.memberships.get()
    other = create_account(name="Other", owner=people["bob"])
    for change in ({"role": "viewer"}, {"account": other.pk}):  # demoted, or moved away: no owner left
        r = superuser.post(f"{MEMBERSHIPS}{last.pk}/change/", membership_form(last, **change))
        assert r.status_code == 200, change
        assert "Account “Alone”: alice is its last owner — add another owner" in page_text(r)
        assert roles(alone) == {"alice": "owner"}

    Membership.objects.create(account=alone, user=people["carol"], role="owner")
    r = superuser.post(f"{MEMBERSHIPS}{last.pk}/change/", membership_form(last, role="viewer"))
    assert r.status_code == 302 and roles(alone) == {"alice": "viewer", "carol": "owner"}


def account_form(account, rows, *, initial: int) -> dict:
    """The account's page posted back: its fields and its members inline (`rows`:
    dicts with id, user, role and DELETE)."""
    data = {"name": account.name if account else "New Co", "thread_limit": "", "agent_limit": "",
            "memberships-TOTAL_FORMS": str(len(rows)), "memberships-INITIAL_FORMS": str(initial),
            "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000"}
    for i, row in enumerate(rows):
        data.update({f"memberships-{i}-{key}": value for key, value in row.items()})
        if account is not None:
            data[f"memberships-{i}-account"] = str(account.pk)
    return data


def rows_of(account, **roles_by_name) -> list:
    return [{"id": m.pk, "user": m.user_id, "role": roles_by_name.get(m.user.username, m.role)}
            for m in account.memberships.select_related("user").order_by("user__username")]


def test_members_inline_refuses_leaving_no_owner(superuser, people):
    shared = create_account(name="Shared", owner=people["alice"])
    Membership.objects.create(account=shared, user=people["dave"], role="owner")
    Membership.objects.create(account=shared, user=people["bob"], role="member")
    url = f"{ACCOUNTS}{shared.pk}/change/"

    demoted = superuser.post(url, account_form(shared, rows_of(shared, alice="viewer", dave="viewer"), initial=3))
    assert demoted.status_code == 200
    assert "Account “Shared”: alice and dave are its only owners" in page_text(demoted)
    assert roles(shared) == {"alice": "owner", "dave": "owner", "bob": "member"}

    rows = rows_of(shared, alice="viewer")
    rows[2]["DELETE"] = "on"  # dave, the other owner, removed in the same save
    removed = superuser.post(url, account_form(shared, rows, initial=3))
    assert removed.status_code == 200 and "alice and dave are its only owners" in page_text(removed)
    assert roles(shared) == {"alice": "owner", "dave": "owner", "bob": "member"}

    handed_over = superuser.post(url, account_form(shared, rows_of(shared, alice="viewer", dave="viewer",
                                                                   bob="owner"), initial=3))
    assert handed_over.status_code == 302
    assert roles(shared) == {"alice": "viewer", "dave": "viewer", "bob": "owner"}

    new_owner_row = [*rows_of(shared, bob="member"), {"user": people["carol"].pk, "role": "owner"}]
    assert superuser.post(url, account_form(shared, new_owner_row, initial=3)).status_code == 302
    assert roles(shared) == {"alice": "viewer", "dave": "viewer", "bob": "member", "carol": "owner"}


def test_adding_an_account_needs_an_owner_row(superuser, people):
    add = f"{ACCOUNTS}add/"
    r = superuser.post(add, account_form(None, [{"user": people["bob"].pk, "role": "member"}], initial=0))
    assert r.status_code == 200 and "An account needs an owner" in page_text(r)
    r = superuser.post(add, account_form(None, [], initial=0))
    assert r.status_code == 200 and "An account needs an owner" in page_text(r)
    assert not Account.objects.exists()
    r = superuser.post(add, account_form(None, [{"user": people["bob"].pk, "role": "owner"}], initial=0))
    assert r.status_code == 302 and roles(Account.objects.get()) == {"bob": "owner"}


def test_deleting_several_users_names_every_only_owner(superuser, people):
    shared = create_account(name="Shared", owner=people["alice"])
    Membership.objects.create(account=shared, user=people["dave"], role="owner")
    selection = {"action": "delete_selected", "_selected_action": [str(people["alice"].pk), str(people["dave"].pk)]}
    page = superuser.post(USERS, selection)
    assert "Account “Shared”: alice and dave are its only owners — add another owner" in page_text(page)
    superuser.post(USERS, {**selection, "post": "yes"})
    assert roles(shared) == {"alice": "owner", "dave": "owner"}
