"""What the database cannot do for auth.User, which sits outside our deletion graph."""

from django.conf import settings
from django.db.models.signals import post_delete
from django.dispatch import receiver

from agents.models import Agent
from threads.models import Thread

from .models import Membership


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="projects.user_deleted")
def forget_deleted_user(sender, instance, **kwargs):
    """Soft references to a deleted user: memberships go, authorship becomes null."""
    Membership.objects.filter(user_id=instance.pk).delete()
    Thread.objects.filter(created_by_id=instance.pk).update(created_by=None)
    Agent.objects.filter(created_by_id=instance.pk).update(created_by=None)
