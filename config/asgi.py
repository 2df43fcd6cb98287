"""
ASGI config for config project.

It exposes the ASGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/6.1/howto/deployment/asgi/
"""

import os
import sys

from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')

try:
    django_application = get_asgi_application()
except ImproperlyConfigured as exc:
    # Settings that cannot work (config.settings names them) stop the server. Exit
    # status 3 is uvicorn's "startup failure": its supervisor (--workers N) then stops
    # instead of restarting the worker for ever; any other server just sees it exit.
    sys.stderr.write(f"config.asgi: the application cannot start: {exc}\n")
    sys.exit(3)

from config.middleware import SizedBody  # noqa: E402 (once the apps are loaded)

application = SizedBody(django_application)  # chunked bodies: sized, or refused over the limit
