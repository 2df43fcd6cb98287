"""Every write on threads and what lives under them. Views, admin actions,
management commands and tasks call these functions: one way to do each thing."""

from .threads import create_thread, update_thread  # noqa: F401
from .deletion import delete_thread, delete_threads  # noqa: F401
