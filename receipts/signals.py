"""A sandbox confirmed deleted at its provider, by whichever path (the deletion's
task, the sandbox reconciler, a retry from the admin), updates its receipts."""

from django.dispatch import receiver

from sandboxes.services import sandbox_deleted

from . import services


@receiver(sandbox_deleted, dispatch_uid="receipts.sandbox_deleted")
def complete_receipts(sender, sandbox_ids, **kwargs):
    services.on_sandboxes_deleted(sandbox_ids=sandbox_ids)
