"""Who deletes, and from where: set by the calling layer, read when a receipt is written.

Services keep one signature; the layer that calls them says who acts:

    with acting(source="command"):                       # a management command
        prune_batch(thread_ids=ids, strategy="delete")
    with acting(source="job", user=job.created_by, operation_id=job.pk):
        ...                                               # every batch of a job

`DeletionOriginMiddleware` does it for every request (`api`, or `admin` under
/admin/, with the request's user, read when the receipt is written, so a user
authenticated by DRF inside the view is the one recorded); the TTL sweeper says
`ttl`, the commands `command`. The innermost `acting` wins; without any (a beat task,
the shell), the source is `system` and the actor `system`.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Origin:
    source: str
    user: Any = None
    request: Any = None
    operation_id: Any = None

    def actor(self) -> tuple[int | None, str]:
        """(user id, name), or (None, "system")."""
        user = self.user
        if user is None and self.request is not None:
            user = getattr(self.request, "user", None)
        if user is None or not getattr(user, "is_authenticated", False):
            return None, "system"
        return user.pk, user.get_username()


SYSTEM = Origin(source="system")
_origin: ContextVar[Origin | None] = ContextVar("deletion_origin", default=None)


def current_origin() -> Origin:
    return _origin.get() or SYSTEM


@contextmanager
def acting(*, source: str, user=None, request=None, operation_id=None):
    """Deletions inside this block are recorded as done by `user` (None: the
    system) from `source`; `operation_id` groups their receipts (e.g. a job's id)."""
    outer = _origin.get()
    if operation_id is None and outer is not None and outer.source == source:
        operation_id = outer.operation_id
    token = _origin.set(Origin(source=source, user=user, request=request, operation_id=operation_id))
    try:
        yield
    finally:
        _origin.reset(token)
