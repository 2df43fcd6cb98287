"""What the database cannot do when a thread or a project is deleted outside the
deletion service (`thread.delete()`, a queryset in the shell, Django's admin,
`project.delete()`).

Each handler runs a step of `threads.services.deletion`, so there is one
implementation of each step. The service itself deletes with raw set-based
statements, which send no signals: these handlers never run for its batches.
The database cascade sends no signals either: sub-threads, messages, runs,
checkpoints and the threads of a deleted project are handled here through their root.
"""

from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from agents import caches as agent_caches
from agents.models import Agent
from projects import caches
from projects.models import Account, Project
from receipts import services as receipts
from receipts.models import DeletionKind
from receipts.selectors import thread_contents
from sandboxes.services import request_sandbox_deletion

from .models import Checkpoint, CheckpointWrite, Message, PendingIndex, Thread
from .services import deletion


@receiver(pre_delete, sender=Thread, dispatch_uid="threads.thread_pre_delete")
def collect_thread_subtree(sender, instance, origin=None, **kwargs):
    """Before the cascade: lock the project, note every thread that will go (with
    what each holds, for the receipt).

    Threads already claimed by another root of the same delete (a queryset holding a
    thread and its sub-thread) are not counted twice.
    """
    removed = deletion.lock_and_collect(root_ids=[instance.pk], project_ids=[instance.project_id])
    claimed = getattr(origin, "_threads_claimed", None) if origin is not None else None
    if claimed is None:
        claimed = set()
        if origin is not None:
            origin._threads_claimed = claimed
    instance._threads_removed = [t for t in removed if t.id not in claimed]
    claimed.update(t.id for t in removed)


@receiver(post_delete, sender=Thread, dispatch_uid="threads.thread_post_delete")
def clean_up_after_thread(sender, instance, **kwargs):
    """The last thread of its project takes the project with it; then the receipt
    and the cleanup."""
    removed = getattr(instance, "_threads_removed", [instance])
    emptied = deletion.delete_empty_projects(project_ids=[instance.project_id])
    roots = [instance.pk] if any(t.id == instance.pk for t in removed) else []
    deletion.schedule_cleanup(removed=removed, roots=roots, emptied=emptied)


@receiver(pre_delete, sender=Checkpoint, dispatch_uid="threads.checkpoint_pre_delete")
def delete_checkpoint_writes(sender, instance, **kwargs):
    """A checkpoint deleted through the ORM (`checkpoint.delete()`, Django's admin)
    takes its pending writes: they have no database foreign key to it (see
    `CheckpointWrite`). The services delete checkpoints set-based, without signals."""
    CheckpointWrite.objects.filter(checkpoint_id=instance.pk)._raw_delete(CheckpointWrite.objects.db)


@receiver(pre_delete, sender=Message, dispatch_uid="threads.message_pre_delete")
def message_pre_delete(sender, instance, **kwargs):
    """A message deleted on its own through the ORM (Django's admin) takes its
    indexing outbox row (no database constraint links them, see `PendingIndex`)."""
    PendingIndex.objects.filter(message_id=instance.pk)._raw_delete(PendingIndex.objects.db)


@receiver(pre_delete, sender=Project, dispatch_uid="threads.project_pre_delete")
def retire_project_sandbox(sender, instance, **kwargs):
    """A project deleted directly: its sandbox joins the outbox in this transaction,
    and what it holds is counted before the cascade removes it."""
    instance._sandboxes = request_sandbox_deletion(project_ids=[instance.pk])
    instance._contents = thread_contents(Thread.objects.filter(project_id=instance.pk))


@receiver(post_delete, sender=Project, dispatch_uid="threads.project_post_delete")
def clean_up_after_project(sender, instance, **kwargs):
    contents = getattr(instance, "_contents", {})
    tally = receipts.Tally(root_ids=[instance.pk], projects=1, embedding_project_ids=[instance.pk],
                           sandbox_ids=list(getattr(instance, "_sandboxes", {})))
    for part in contents.values():  # a project's threads are all its account's
        tally.merge(part)
    receipts.record(DeletionKind.PROJECT_DELETE, {instance.account_id: tally})
    caches.on_commit_threads_removed({acc: part.threads for acc, part in contents.items()})
    caches.on_commit_invalidate_accounts([instance.account_id])  # project_count, even with no thread


@receiver(post_save, sender=Project, dispatch_uid="threads.project_created")
def count_new_project(sender, instance, created, **kwargs):
    """The account state (usage) counts projects."""
    if created:
        caches.on_commit_invalidate_accounts([instance.account_id])


@receiver(pre_delete, sender=Account, dispatch_uid="threads.account_pre_delete")
def retire_account_sandboxes(sender, instance, **kwargs):
    """An account deleted (the database removes its projects, threads and agents):
    its sandboxes join the outbox in this transaction, and what it holds is counted
    for the receipt, which removes its embeddings after commit."""
    project_ids = list(Project.objects.filter(account_id=instance.pk).values_list("pk", flat=True))
    tally = receipts.Tally(root_ids=[instance.pk], projects=len(project_ids), embedding_project_ids=project_ids)
    if project_ids:
        tally.sandbox_ids = list(request_sandbox_deletion(project_ids=project_ids))
        for part in thread_contents(Thread.objects.filter(account_id=instance.pk)).values():
            tally.merge(part)
    instance._agents = list(Agent.objects.filter(account_id=instance.pk).values_list("pk", "current_version"))
    tally.agents = len(instance._agents)
    instance._tally = tally


@receiver(post_delete, sender=Account, dispatch_uid="threads.account_post_delete")
def clean_up_after_account(sender, instance, **kwargs):
    if hasattr(instance, "_tally"):
        receipts.record(DeletionKind.ACCOUNT_DELETE, {instance.pk: instance._tally})
    caches.on_commit_forget_account(instance.pk)  # its slots, counts and usage
    agent_caches.on_commit_forget_agents(account_id=instance.pk, agents=getattr(instance, "_agents", []))
