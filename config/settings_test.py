"""Settings for the test suite: the same as production, read from the same
environment (but not `.env`), with a test secret, fast password hashing, a temporary sandbox root
and Celery tasks in-process unless a test starts a real worker."""

import os
import tempfile

# The suite reads only the real environment, never a developer's `.env`.
os.environ.setdefault("ENV_FILE", "")

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("SANDBOX_ROOT", tempfile.mkdtemp(prefix="tk-sandboxes-"))
# The webhook receivers of the tests listen on 127.0.0.1 (the refusal of private
# addresses, the production default, has tests of its own).
os.environ.setdefault("WEBHOOK_ALLOW_PRIVATE", "1")

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CELERY_TASK_ALWAYS_EAGER", "1") not in ("0", "false", "False")
# In-process runs execute within the request, so a test reads their outcome at once and
# no thread outlives it; tests/threads/test_runs_in_background.py turns this on.
RUNS_IN_BACKGROUND = False

# Templates use plain static URLs in tests; the compressed, hashed storage that
# production uses is exercised by tests/ops (after a collectstatic of its own).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}

# The test client, live_server and the browser talk plain HTTP; the production values
# of these are checked by tests/ops/test_settings.py (`check --deploy`).
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
