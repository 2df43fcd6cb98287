"""Settings that just work: `.env` is read (the environment wins), the production
settings pass `check --deploy` without a warning, CORS answers the configured origins,
WhiteNoise serves compressed, content-hashed static files after `collectstatic`."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from django.core.management import call_command
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[2]


def manage(*args, env_extra=None, drop=()):
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", *drop}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", **(env_extra or {})})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def production_env(**extra):
    """Production as documented: DEBUG off, a real secret, the hosts; nothing else."""
    return {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "tk.example.com",
            "ENV_FILE": "", **extra}


def test_check_deploy_is_clean_with_the_production_settings():
    done = manage("check", "--deploy", "--fail-level", "WARNING", env_extra=production_env(),
                  drop={"SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr


def test_check_deploy_names_a_weakened_setting():
    """The check above can fail: switching the redirect off is reported."""
    done = manage("check", "--deploy", "--fail-level", "WARNING",
                  env_extra=production_env(SECURE_SSL_REDIRECT="0"))
    assert done.returncode != 0
    assert "security.W008" in done.stdout + done.stderr


def test_production_refuses_to_start_without_a_secret_key():
    done = manage("check", env_extra={"DEBUG": "0", "ENV_FILE": ""}, drop={"SECRET_KEY"})
    assert done.returncode != 0
    assert "SECRET_KEY is required" in done.stderr


def test_env_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / "dot.env"
    env_file.write_text("DEBUG=1\nSECRET_KEY=from-the-file-0123456789\nDEFAULT_THREAD_LIMIT=7\nDEFAULT_AGENT_LIMIT=9\n")
    script = ("from django.conf import settings; "
              "print(settings.DEBUG, settings.SECRET_KEY, settings.DEFAULT_THREAD_LIMIT, settings.DEFAULT_AGENT_LIMIT)")
    done = manage("shell", "-c", script, env_extra={"ENV_FILE": str(env_file), "DEFAULT_AGENT_LIMIT": "3"},
                  drop={"SECRET_KEY", "DEBUG", "DEFAULT_THREAD_LIMIT"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].split() == ["True", "from-the-file-0123456789", "7", "3"]


@override_settings(CORS_ALLOWED_ORIGINS=["https://app.example.com"])
def test_cors_answers_the_allowed_origin_only():
    client = Client()
    preflight = client.options("/api/threads", HTTP_ORIGIN="https://app.example.com",
                               HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                               HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type")
    assert preflight["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "authorization" in preflight["Access-Control-Allow-Headers"]
    other = client.options("/api/threads", HTTP_ORIGIN="https://evil.example.com",
                           HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in other


def test_whitenoise_serves_compressed_hashed_static_files_after_collectstatic(tmp_path, settings):
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}
    call_command("collectstatic", "--noinput", verbosity=0)
    client = Client()  # WhiteNoise indexes STATIC_ROOT when the middleware is built
    page = client.get("/admin/login/")
    assert page.status_code == 200
    css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page.content.decode())
    assert css, "the admin's stylesheet is referenced by its content-hashed name"
    served = client.get(css.group(1), HTTP_ACCEPT_ENCODING="gzip")
    assert served.status_code == 200
    assert served["Content-Encoding"] == "gzip"
    assert "immutable" in served["Cache-Control"] and "max-age=315360000" in served["Cache-Control"]
    plain = client.get(css.group(1))
    assert "Content-Encoding" not in plain


def test_production_webhooks_may_not_reach_private_networks():
    script = "from django.conf import settings; print(settings.WEBHOOK_ALLOW_PRIVATE)"
    production = manage("shell", "-c", script, env_extra=production_env(), drop={"WEBHOOK_ALLOW_PRIVATE"})
    development = manage("shell", "-c", script, env_extra={"ENV_FILE": "", "DEBUG": "1"},
                         drop={"WEBHOOK_ALLOW_PRIVATE"})
    assert production.stdout.strip().splitlines()[-1] == "False", production.stderr
    assert development.stdout.strip().splitlines()[-1] == "True", development.stderr
