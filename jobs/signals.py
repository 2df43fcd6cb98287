"""What the database cannot do for jobs: auth.User sits outside the database-level graph."""

from django.conf import settings
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Job


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="jobs.user_deleted")
def forget_deleted_user(sender, instance, **kwargs):
    Job.objects.filter(created_by_id=instance.pk).update(created_by=None)
