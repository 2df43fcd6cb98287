"""What the database cannot do for auth.User, which sits outside our deletion graph; and
an account's cached usage when its limits change."""

from django.conf import settings
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from agents.models import Agent
from threads.models import Thread

from . import caches
from .models import Account, Membership


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="projects.user_deleted")
def forget_deleted_user(sender, instance, **kwargs):
    """Soft references to a deleted user: memberships go, authorship becomes null."""
    Membership.objects.filter(user_id=instance.pk).delete()
    Thread.objects.filter(created_by_id=instance.pk).update(created_by=None)
    Agent.objects.filter(created_by_id=instance.pk).update(created_by=None)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="projects.user_credentials_changed")
def note_credentials_change(sender, instance, raw=False, update_fields=None, **kwargs):
    """A password change or a deactivation revokes the user's tokens (after the save)."""
    if raw or instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        instance._revoke_tokens = False  # e.g. the login's `last_login`: no query
        return
    before = sender.objects.filter(pk=instance.pk).values("password", "is_active").first()
    instance._revoke_tokens = bool(before) and (
        before["password"] != instance.password or (before["is_active"] and not instance.is_active)
    )


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="projects.user_tokens_revoked")
def revoke_tokens_on_credentials_change(sender, instance, created, raw=False, **kwargs):
    if not raw and getattr(instance, "_revoke_tokens", False):
        from config.auth import revoke_tokens

        instance._revoke_tokens = False
        revoke_tokens(instance)


@receiver(post_save, sender=Account, dispatch_uid="projects.account_saved")
def refresh_account_state(sender, instance, created, raw=False, **kwargs):
    """Limits changed (in the admin, the shell): the usage the API serves is read again
    after commit, not up to `ACCOUNT_CACHE_TIMEOUT` later."""
    if not raw and not created:
        caches.on_commit_invalidate_accounts([instance.pk])
