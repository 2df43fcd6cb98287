"""Reads on threads that return querysets."""

from django.db.models import QuerySet

from projects.selectors import visible_to

from .models import Thread


def threads_for(user) -> QuerySet:
    return visible_to(Thread.objects.all(), user)
