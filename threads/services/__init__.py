"""Every write on threads and what lives under them. Views, admin actions,
management commands and tasks call these functions: one way to do each thing."""

from .threads import create_thread, update_thread  # noqa: F401
from .deletion import delete_thread, delete_threads  # noqa: F401
from .messages import post_message  # noqa: F401
from .checkpoints import put_checkpoint  # noqa: F401
from .runs import cancel_many, cancel_run, cancel_runs, create_run, delete_run, execute_run, requeue_pending_runs  # noqa: F401
from .lifecycle import (  # noqa: F401
    cancel_thread, close_thread, close_threads, expire_approvals, force_close_threads, open_thread, resolve_approval,
    start_turn,
)
from .pruning import keep_latest_checkpoints, prune_batch, prune_threads  # noqa: F401
from .ttl import sweep_expired_threads  # noqa: F401
from .state import apply_supersteps, copy_thread, update_state  # noqa: F401
