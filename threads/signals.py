"""What the database cannot do when a thread or a project is deleted outside the
deletion service (`thread.delete()`, a queryset in the shell, Django's admin,
`project.delete()`).

Each handler runs a step of `threads.services.deletion`, so there is one
implementation of each step. The service itself deletes with raw set-based
statements, which send no signals: these handlers never run for its batches.
The database cascade sends no signals either: sub-threads, messages, runs,
checkpoints and the threads of a deleted project are handled here through their root.
"""

from collections import Counter

from django.db.models import Count
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from projects import caches
from projects.models import Account, Project
from sandboxes.services import request_sandbox_deletion

from .models import Checkpoint, CheckpointWrite, Thread
from .services import deletion
from .vectorstore import schedule_embedding_removal


@receiver(pre_delete, sender=Thread, dispatch_uid="threads.thread_pre_delete")
def collect_thread_subtree(sender, instance, origin=None, **kwargs):
    """Before the cascade: lock the project and note every thread that will go.

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
    """The last thread of its project takes the project with it; then the cleanup."""
    removed = getattr(instance, "_threads_removed", [instance])
    deleted_projects = deletion.delete_empty_projects(project_ids=[instance.project_id])
    deletion.schedule_cleanup(removed=removed, deleted_project_ids=deleted_projects)


@receiver(pre_delete, sender=Checkpoint, dispatch_uid="threads.checkpoint_pre_delete")
def delete_checkpoint_writes(sender, instance, **kwargs):
    """A checkpoint deleted through the ORM (`checkpoint.delete()`, Django's admin)
    takes its pending writes: they have no database foreign key to it (see
    `CheckpointWrite`). The services delete checkpoints set-based, without signals."""
    CheckpointWrite.objects.filter(checkpoint_id=instance.pk)._raw_delete(CheckpointWrite.objects.db)


@receiver(pre_delete, sender=Project, dispatch_uid="threads.project_pre_delete")
def retire_project_sandbox(sender, instance, **kwargs):
    """A project deleted directly: its sandbox joins the outbox in this transaction,
    and its threads are counted before the cascade removes them."""
    request_sandbox_deletion(project_ids=[instance.pk])
    counts = Thread.objects.filter(project_id=instance.pk).values("account_id").annotate(n=Count("id")).order_by()
    instance._threads_removed_per_account = Counter({row["account_id"]: row["n"] for row in counts})


@receiver(post_delete, sender=Project, dispatch_uid="threads.project_post_delete")
def clean_up_after_project(sender, instance, **kwargs):
    schedule_embedding_removal(project_ids=[instance.pk])
    caches.on_commit_threads_removed(getattr(instance, "_threads_removed_per_account", {}))
    caches.on_commit_invalidate_accounts([instance.account_id])  # project_count, even with no thread


@receiver(post_save, sender=Project, dispatch_uid="threads.project_created")
def count_new_project(sender, instance, created, **kwargs):
    """The account state (usage) counts projects."""
    if created:
        caches.on_commit_invalidate_accounts([instance.account_id])


@receiver(pre_delete, sender=Account, dispatch_uid="threads.account_pre_delete")
def retire_account_sandboxes(sender, instance, **kwargs):
    """An account deleted (the database removes its projects and threads): its
    sandboxes join the outbox in this transaction, its embeddings go after commit."""
    project_ids = list(Project.objects.filter(account_id=instance.pk).values_list("pk", flat=True))
    if project_ids:
        request_sandbox_deletion(project_ids=project_ids)
    instance._project_ids = project_ids


@receiver(post_delete, sender=Account, dispatch_uid="threads.account_post_delete")
def clean_up_after_account(sender, instance, **kwargs):
    if getattr(instance, "_project_ids", None):
        schedule_embedding_removal(project_ids=instance._project_ids)
