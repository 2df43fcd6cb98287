"""Deleting projects, accounts and agents in the admin: from their pages and with the
bulk actions, as a superuser and as staff holding only the model's delete permission;
confirmation numbers from aggregates, the first objects named, then the service."""

import re

import pytest
from django.contrib.auth.models import Permission

from agents import services as agent_services
from agents.models import Agent, AgentVersion
from projects.models import Account, Membership, Project
from projects.services import create_account, create_project, ensure_user
from sandboxes.models import Sandbox
from tests.admin.test_admin import impact, make_threads, texts
from threads.models import Checkpoint, Embedding, Message, Run, Thread

pytestmark = pytest.mark.django_db
PROJECTS, ACCOUNTS, AGENTS = "/admin/projects/project/", "/admin/projects/account/", "/admin/agents/agent/"


@pytest.fixture
def superuser(client):
    user = ensure_user(username="root", password="pw-1234")
    user.is_staff = user.is_superuser = True
    user.save()
    client.force_login(user)
    return client


@pytest.fixture
def deleter(client):
    """Staff with only view and delete on projects, accounts and agents: no permission
    at all on threads, messages, runs or checkpoints."""
    user = ensure_user(username="deleter", password="pw-1234")
    user.is_staff = True
    user.save()
    codenames = [f"{verb}_{model}" for verb in ("view", "delete") for model in ("project", "account", "agent")]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def fill(project, threads=2):
    """Threads with messages, a run, checkpoints, an embedding and a sandbox."""
    made = make_threads(project, threads, messages=3, checkpoints=2)
    Run.objects.create(thread=made[0], seq=1, status="success")
    Embedding.objects.create(account_id=project.account_id, project_id=project.pk, thread_id=made[0].pk,
                             text="x", vector=[1.0])
    Sandbox.objects.create(project=project, account=project.account, provider="local", state="ready")
    return made


@pytest.mark.parametrize("as_user", ["superuser", "deleter"])
def test_project_page_delete(request, as_user, project, django_capture_on_commit_callbacks):
    client = request.getfixturevalue(as_user)
    fill(project)
    page = client.get(f"{PROJECTS}{project.pk}/change/")
    assert page.status_code == 200 and b"deletelink" in page.content
    confirm = client.get(f"{PROJECTS}{project.pk}/delete/")
    assert confirm.status_code == 200, confirm.content[:500]
    assert impact(confirm) == {"projects": 1, "threads": 2, "messages": 6, "runs": 1, "checkpoints": 4,
                               "sandboxes": 1, "embeddings": 1}
    assert b'<ol class="breadcrumbs">' in confirm.content and b"Main" in confirm.content
    assert Project.objects.filter(pk=project.pk).exists()  # nothing changed yet
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(f"{PROJECTS}{project.pk}/delete/", {"post": "yes"}, follow=True)
    assert texts(done) == ["1 project deleted (2 threads)."]
    assert not Project.objects.exists() and not Thread.objects.exists() and not Message.objects.exists()
    assert not Checkpoint.objects.exists() and not Embedding.objects.exists()
    assert Sandbox.objects.get().state == "deleted"


def test_project_bulk_delete_names_the_first_ten(deleter, account, django_capture_on_commit_callbacks):
    projects = [create_project(account=account, name=f"P{i:02d}") for i in range(12)]
    keep = create_project(account=account, name="Keep")
    for p in projects[:3]:
        make_threads(p, 2, messages=1)
    selection = {"action": "delete_with_service", "_selected_action": [str(p.pk) for p in projects]}
    page = deleter.post(PROJECTS, selection)
    assert page.status_code == 200 and b"Delete 12 projects?" in page.content
    assert impact(page)["projects"] == 12 and impact(page)["threads"] == 6 and impact(page)["messages"] == 6
    html = page.content.decode()
    assert all(f">P{i:02d}</a>" in html for i in range(10)) and ">P10</a>" not in html
    assert "and 2 more" in html
    with django_capture_on_commit_callbacks(execute=True):
        done = deleter.post(PROJECTS, {**selection, "post": "yes"}, follow=True)
    assert texts(done) == ["12 projects deleted (6 threads)."]
    assert list(Project.objects.all()) == [keep] and not Thread.objects.exists()


def test_account_page_and_bulk_delete(superuser, make_user, django_capture_on_commit_callbacks):
    owner = make_user("acct-owner")
    doomed = create_account(name="Doomed", owner=owner)
    fill(create_project(account=doomed, name="D1"), threads=3)
    agent_services.create_agent(account=doomed, name="Helper", model="m", is_default=True)
    other = create_account(name="Other", owner=owner)
    fill(create_project(account=other, name="O1"), threads=1)

    confirm = superuser.get(f"{ACCOUNTS}{doomed.pk}/delete/")
    assert confirm.status_code == 200
    assert impact(confirm) == {"accounts": 1, "projects": 1, "threads": 3, "messages": 9, "runs": 1,
                               "checkpoints": 6, "agents": 1, "members": 1, "sandboxes": 1, "embeddings": 1}
    with django_capture_on_commit_callbacks(execute=True):
        superuser.post(f"{ACCOUNTS}{doomed.pk}/delete/", {"post": "yes"})
    assert list(Account.objects.all()) == [other]
    assert not Agent.objects.exists() and not AgentVersion.objects.exists()  # even a default agent goes with it
    assert Thread.objects.count() == 1 and Membership.objects.filter(account=doomed.pk).count() == 0
    assert Sandbox.objects.filter(state="deleted").count() == 1

    selection = {"action": "delete_with_service", "_selected_action": [str(other.pk)]}
    page = superuser.post(ACCOUNTS, selection)
    assert impact(page)["threads"] == 1 and b">Other</a>" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        done = superuser.post(ACCOUNTS, {**selection, "post": "yes"}, follow=True)
    assert texts(done) == ["1 account deleted (1 thread)."]
    assert not Account.objects.exists() and not Thread.objects.exists()


def test_limited_staff_without_delete_permission_cannot(client, project):
    user = ensure_user(username="viewer", password="pw-1234")
    user.is_staff = True
    user.save()
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_project", "view_account"]))
    client.force_login(user)
    assert b"delete_with_service" not in client.get(PROJECTS).content
    assert b"deletelink" not in client.get(f"{PROJECTS}{project.pk}/change/").content
    assert client.get(f"{PROJECTS}{project.pk}/delete/").status_code == 403
    assert client.post(f"{ACCOUNTS}{project.account_id}/delete/", {"post": "yes"}).status_code == 403
    client.post(PROJECTS, {"action": "delete_with_service", "_selected_action": [str(project.pk)], "post": "yes"})
    assert Project.objects.filter(pk=project.pk).exists() and Account.objects.exists()


def test_select_all_deletes_only_what_the_page_counted(superuser, account, django_capture_on_commit_callbacks):
    """"Select all" is evaluated again when the page is posted back: a project created
    since the confirmation page was shown is not deleted."""
    shown = [create_project(account=account, name=f"old {i}") for i in range(2)]
    data = {"action": "delete_with_service", "select_across": "1", "_selected_action": [str(shown[0].pk)]}
    confirm = superuser.post(f"{PROJECTS}?q=old", data)
    assert impact(confirm)["projects"] == 2
    shown_at = re.search(rb'name="shown_at" value="([^"]+)"', confirm.content).group(1).decode()
    late = create_project(account=account, name="old but late")
    with django_capture_on_commit_callbacks(execute=True):
        done = superuser.post(f"{PROJECTS}?q=old", {**data, "shown_at": shown_at, "post": "yes"}, follow=True)
    assert texts(done) == ["2 projects deleted (0 threads)."]
    assert set(Project.objects.filter(name__startswith="old").values_list("pk", flat=True)) == {late.pk}
    from django.contrib.admin.models import DELETION, LogEntry

    history = LogEntry.objects.filter(action_flag=DELETION)  # "Recent actions", as Django's own deletions
    assert sorted(history.values_list("object_id", flat=True)) == sorted(str(p.pk) for p in shown)


@pytest.mark.parametrize("as_user", ["superuser", "deleter"])
def test_agent_page_delete_keeps_history(request, as_user, account, project):
    client = request.getfixturevalue(as_user)
    agent = agent_services.create_agent(account=account, name="Plain", model="m")
    agent_services.update_agent(agent=agent, system_prompt="v2")
    thread = make_threads(project, 1, messages=2)[0]
    Thread.objects.filter(pk=thread.pk).update(agent=agent)
    confirm = client.get(f"{AGENTS}{agent.pk}/delete/")
    assert confirm.status_code == 200
    assert impact(confirm) == {"agents": 1, "refused": 0, "versions": 2, "triggers": 0, "threads_closed": 1,
                               "threads_kept": 1, "runs_kept": 0, "messages_kept": 2}
    done = client.post(f"{AGENTS}{agent.pk}/delete/", {"post": "yes"}, follow=True)
    assert texts(done) == ["Agent “Plain” deleted; its threads, runs and messages stay."]
    assert not Agent.objects.exists()
    thread.refresh_from_db()
    assert thread.status == "closed" and thread.agent_id is None and thread.messages.count() == 2


def test_protected_agent_page_says_why(deleter, account):
    default = agent_services.create_agent(account=account, name="Main agent", model="m", is_default=True)
    page = deleter.get(f"{AGENTS}{default.pk}/change/")
    assert b"Cannot delete default agent. Unset it as default first." in page.content
    assert b"deletelink" not in page.content
    refused = deleter.get(f"{AGENTS}{default.pk}/delete/")
    assert refused.status_code == 403 and b"Cannot delete default agent" in refused.content
    assert b"Yes, delete it" not in refused.content
    assert deleter.post(f"{AGENTS}{default.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Agent.objects.filter(pk=default.pk).exists()


def test_agent_versions_titled_by_name(superuser, account):
    agent = agent_services.create_agent(account=account, name="Writer", model="m")
    agent_services.update_agent(agent=agent, system_prompt="v2")
    version = agent.versions.get(number=2)
    assert str(version) == "Writer v2"
    assert b"Writer v2" in superuser.get(f"/admin/agents/agentversion/{version.pk}/change/").content


def test_deleting_a_user_lists_their_memberships_and_refuses_a_last_owner(superuser):
    """A user's memberships go with them (a soft reference Django's page would not
    show): the page lists them; the last owner of an account is refused, with why."""
    alice, bob, carol = (ensure_user(username=n, password="pw-123456") for n in ("alice", "bob", "carol"))
    alone = create_account(name="Alone", owner=alice)
    shared = create_account(name="Shared", owner=bob)
    Membership.objects.create(account=shared, user=carol, role="owner")
    page = superuser.get(f"/admin/auth/user/{bob.pk}/delete/")
    assert page.status_code == 200 and "Membership: bob in Shared (owner)" in page.content.decode()
    superuser.post(f"/admin/auth/user/{bob.pk}/delete/", {"post": "yes"})
    assert not type(bob).objects.filter(pk=bob.pk).exists()
    assert list(shared.memberships.values_list("user__username", flat=True)) == ["carol"]
    page = superuser.get(f"/admin/auth/user/{alice.pk}/delete/")
    assert "alice is its last owner" in page.content.decode() and "Account “Alone”" in page.content.decode()
    superuser.post(f"/admin/auth/user/{alice.pk}/delete/", {"post": "yes"})
    assert type(alice).objects.filter(pk=alice.pk).exists() and alone.memberships.filter(user=alice).exists()


def test_a_second_submit_reports_what_was_already_deleted(superuser, account, make_user,
                                                          django_capture_on_commit_callbacks):
    """Posting a confirmation again (two tabs, back and submit) deletes nothing more and
    says why: Django's action leaves the rows that are gone out of the queryset, so the
    posted ids are compared with what is left."""
    projects = [create_project(account=account, name=f"P{i}") for i in range(3)]
    selection = {"action": "delete_with_service", "_selected_action": [str(p.pk) for p in projects], "post": "yes"}
    with django_capture_on_commit_callbacks(execute=True):
        assert texts(superuser.post(PROJECTS, selection, follow=True)) == ["3 projects deleted (0 threads)."]
        assert texts(superuser.post(PROJECTS, selection, follow=True)) == ["3 projects skipped: already deleted."]
        late = create_project(account=account, name="Late")  # some gone, one still there
        mixed = {**selection, "_selected_action": [*selection["_selected_action"][:2], str(late.pk)]}
        assert texts(superuser.post(PROJECTS, mixed, follow=True)) == [
            "1 project deleted (0 threads).", "2 projects skipped: already deleted."]

        accounts = [create_account(name=f"A{i}", owner=make_user(f"a-owner-{i}")) for i in range(2)]
        selection = {"action": "delete_with_service", "_selected_action": [str(a.pk) for a in accounts], "post": "yes"}
        superuser.post(ACCOUNTS, selection, follow=True)
        assert texts(superuser.post(ACCOUNTS, selection, follow=True)) == ["2 accounts skipped: already deleted."]

    agents = [agent_services.create_agent(account=account, name=f"Ag{i}", model="m") for i in range(2)]
    selection = {"action": "delete_agents", "_selected_action": [str(a.pk) for a in agents], "post": "yes"}
    superuser.post(AGENTS, selection, follow=True)
    assert texts(superuser.post(AGENTS, selection, follow=True)) == ["2 agents skipped: already deleted."]


def test_one_agent_delete_page_speaks_of_one(superuser, account):
    agents = [agent_services.create_agent(account=account, name=f"Ag{i}", model="m") for i in range(2)]
    page = superuser.get(f"{AGENTS}{agents[0].pk}/delete/").content.decode()
    assert "The agent will be deleted with its versions and triggers. Its open threads are closed" in page
    assert "The agents will be deleted" not in page
    page = superuser.post(AGENTS, {"action": "delete_agents", "_selected_action": [str(a.pk) for a in agents]})
    assert "The agents will be deleted with their versions and triggers" in page.content.decode()
    project = create_project(account=account, name="Solo")
    page = superuser.get(f"{PROJECTS}{project.pk}/delete/").content.decode()
    assert "This project will be deleted with its threads" in page and "These projects" not in page
    page = superuser.get(f"{ACCOUNTS}{account.pk}/delete/").content.decode()
    assert "This account will be deleted with everything it owns" in page and "These accounts" not in page
