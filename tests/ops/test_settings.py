"""Settings that just work: `.env` is read (the environment wins), the production
settings pass `check --deploy` without a warning, CORS answers the configured origins,
WhiteNoise serves compressed, content-hashed static files after `collectstatic`; a
value that cannot work (a malformed number, an unknown choice, a placeholder secret key
in production) stops every process at startup, naming the variable."""

import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from dotenv import dotenv_values

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


# --- Values that cannot work are refused at startup, naming the variable ---------------


ENV_EXAMPLE = ROOT / ".env.example"
# Every variable .env.example sets: left out of a subprocess that must see only the
# defaults, or only the file.
EXAMPLE_VARIABLES = set(dotenv_values(ENV_EXAMPLE))


def check(**env):
    """`manage.py check` in development (DEBUG on, no .env) with these variables."""
    return manage("check", env_extra={"ENV_FILE": "", "DEBUG": "1", **env})


def assert_refused(done, *fragments):
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "ImproperlyConfigured" in output, output
    for fragment in fragments:
        assert fragment in output, output


@pytest.mark.parametrize("name, value", [("DB_CONN_MAX_AGE", "abc"), ("JWT_ACCESS_MINUTES", "1h"),
                                         ("THREAD_TTL_SWEEP_LIMIT", "1.5")])
def test_a_malformed_integer_is_refused_naming_the_variable(name, value):
    assert_refused(check(**{name: value}), f"{name} must be an integer, got '{value}'")


@pytest.mark.parametrize("name, value", [("SANDBOX_API_TIMEOUT", "ten"), ("ECHO_TOKEN_DELAY", "fast"),
                                         ("READYZ_TIMEOUT", "2s")])
def test_a_malformed_number_is_refused_naming_the_variable(name, value):
    assert_refused(check(**{name: value}), f"{name} must be a number, got '{value}'")


@pytest.mark.parametrize("name, value, expected", [
    ("JWT_ACCESS_MINUTES", "-5", "JWT_ACCESS_MINUTES must be at least 1, got '-5'"),
    ("DB_CONN_MAX_AGE", "-1", "DB_CONN_MAX_AGE must be at least 0, got '-1'"),
    ("THREAD_TTL_SWEEP_INTERVAL_MINUTES", "0", "THREAD_TTL_SWEEP_INTERVAL_MINUTES must be at least 1, got '0'"),
    ("SANDBOX_API_TIMEOUT", "0", "SANDBOX_API_TIMEOUT must be greater than 0, got '0'"),
    ("ECHO_TOKEN_DELAY", "-0.5", "ECHO_TOKEN_DELAY must be at least 0, got '-0.5'"),
    ("RUN_STREAM_HEARTBEAT_SECONDS", "inf", "RUN_STREAM_HEARTBEAT_SECONDS must be a finite number, got 'inf'"),
    ("WORKER_LEASE_SECONDS", "1", "WORKER_LEASE_SECONDS must be at least 2, got '1'"),
])
def test_a_value_out_of_range_is_refused_naming_the_variable(name, value, expected):
    assert_refused(check(**{name: value}), expected)


@pytest.mark.parametrize("name, value, accepted", [
    ("LOG_LEVEL", "VERBOSE", "debug, info, warning, error, critical"),
    ("LOG_FORMAT", "xml", "plain, json"),
    ("THREAD_TTL_STRATEGY", "archive", "delete, keep_latest"),
    ("SANDBOX_PROVIDER", "s3", "local, http"),
    ("DEFAULT_RUNTIME", "gpt-4o", "echo"),
])
def test_a_value_outside_its_choices_is_refused_naming_the_accepted_ones(name, value, accepted):
    assert_refused(check(**{name: value}), f"{name} must be one of {accepted}, got '{value}'")


def test_an_unknown_boolean_spelling_is_refused_naming_the_accepted_ones():
    done = manage("check", env_extra={"ENV_FILE": "", "DEBUG": "yes-please"})
    assert_refused(done, "DEBUG must be one of 1, true, yes, on (on) or 0, false, no, off (off), got 'yes-please'")
    assert_refused(check(CORS_ALLOW_CREDENTIALS="si"), "CORS_ALLOW_CREDENTIALS must be one of")


@pytest.mark.parametrize("value", ["10.0.0.300/8", "127.0.0.0/8,localhost"])
def test_a_malformed_metrics_network_is_refused_naming_it(value):
    """Accepted, it made every /metrics request a 500."""
    bad = value.split(",")[-1]
    assert_refused(check(METRICS_ALLOWED_NETWORKS=value),
                   "METRICS_ALLOWED_NETWORKS must be comma-separated IP networks", f"'{bad}' is not one")


@pytest.mark.parametrize("name, value", [("LOGIN_RATE_PER_IP", "lots"), ("LOGIN_RATE_PER_USERNAME", "10/fortnight"),
                                         ("LOGIN_RATE_PER_IP", "0/min")])
def test_a_malformed_login_rate_is_refused_naming_the_variable(name, value):
    """Accepted, it made every POST /api/auth/token a 500."""
    assert_refused(check(**{name: value}), f"{name} must be a rate such as 30/min", f"got '{value}'")


def test_the_http_sandbox_provider_without_its_url_is_refused():
    assert_refused(check(SANDBOX_PROVIDER="http", SANDBOX_API_URL=""), "SANDBOX_PROVIDER=http needs SANDBOX_API_URL")


@pytest.mark.parametrize("value", ["no.such.Class", "threads.vectorstore.NoSuchStore", "threads.models.Thread"])
def test_a_vector_store_backend_that_is_no_vector_store_is_refused(value):
    assert_refused(check(VECTOR_STORE_BACKEND=value), "VECTOR_STORE_BACKEND must", f"got '{value}'",
                   "threads.vectorstore.VectorStore")


def test_every_bad_value_is_named_at_once():
    done = check(JWT_ACCESS_MINUTES="1h", LOG_FORMAT="xml", METRICS_ALLOWED_NETWORKS="10.0.0.300/8")
    assert_refused(done, "JWT_ACCESS_MINUTES", "LOG_FORMAT", "METRICS_ALLOWED_NETWORKS")


@pytest.mark.parametrize("key, expected", [
    ("change-me", "SECRET_KEY is the placeholder 'change-me'"),
    ("short-but-not-a-placeholder", "SECRET_KEY is too weak"),
    ("ab" * 40, "SECRET_KEY is too weak"),
    ("django-insecure-" + "k3Jq9vLx2Wm7Zp4Rt8Yc" * 3, "SECRET_KEY is too weak"),
])
def test_production_refuses_a_placeholder_or_weak_secret_key(key, expected):
    """Accepted before with only the warning security.W009 of `check --deploy`."""
    done = manage("check", env_extra=production_env(SECRET_KEY=key))
    assert_refused(done, expected, "secrets.token_urlsafe(50)")


def test_development_still_runs_with_any_secret_key():
    assert check(SECRET_KEY="change-me").returncode == 0


@pytest.mark.parametrize("server", [
    [".venv/bin/uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", "0", "--workers", "2",
     "--lifespan", "off"],
    [".venv/bin/celery", "-A", "config", "--quiet", "worker", "--concurrency", "1", "--without-gossip",
     "--without-mingle", "--pool", "solo"],
], ids=["uvicorn", "celery-worker"])
@pytest.mark.parametrize("bad", [{"THREAD_TTL_STRATEGY": "archive"}, {"VECTOR_STORE_BACKEND": "no.such.Class"}],
                         ids=["settings", "vector-store"])
def test_the_production_processes_refuse_to_start(server, bad):
    """The Procfile's processes stop at once, naming the variable (uvicorn's supervisor
    stops too rather than restarting its workers for ever)."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"DJANGO_SETTINGS_MODULE", "REDIS_URL", "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR"}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", **production_env(), **bad})
    process = subprocess.Popen(server, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the server and the workers it started
        output, _ = process.communicate()
        pytest.fail(f"still running after 90 s:\n{output}")
    assert f"{next(iter(bad))} must" in output, output
    assert "Uvicorn running" not in output or "failed to start, stopping the parent process" in output, output


def test_accepted_spellings_are_read():
    script = ("from django.conf import settings as s; print(s.DEBUG, s.CORS_ALLOW_CREDENTIALS, s.LOG_LEVEL, "
              "s.LOG_FORMAT, s.THREAD_TTL['strategy'], s.SANDBOX_PROVIDER, "
              "s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['login'], s.METRICS_ALLOWED_NETWORKS, "
              "s.SANDBOX_API_TIMEOUT, s.SIMPLE_JWT['ACCESS_TOKEN_LIFETIME'].seconds)")
    done = manage("shell", "-c", script, env_extra={
        "ENV_FILE": "", "DEBUG": " Yes ", "CORS_ALLOW_CREDENTIALS": "OFF", "LOG_LEVEL": "warning",
        "LOG_FORMAT": "JSON", "THREAD_TTL_STRATEGY": "keep_latest", "SANDBOX_PROVIDER": "http",
        "SANDBOX_API_URL": "http://127.0.0.1:9", "LOGIN_RATE_PER_IP": "5/hour",
        "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8, 192.168.1.7,fd00::/8", "SANDBOX_API_TIMEOUT": "2.5",
        "JWT_ACCESS_MINUTES": "15"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        "True False WARNING json keep_latest http 5/hour ['10.0.0.0/8', '192.168.1.7', 'fd00::/8'] 2.5 900")


def test_empty_values_are_the_defaults():
    """.env.example leaves several variables empty: they mean the default."""
    script = "from django.conf import settings as s; print(s.CELERY_TASK_ALWAYS_EAGER, s.SECURE_HSTS_SECONDS, s.LOG_LEVEL)"
    done = manage("shell", "-c", script, env_extra=production_env(
        CELERY_TASK_ALWAYS_EAGER="", SECURE_HSTS_SECONDS=" ", LOG_LEVEL="", VECTOR_STORE_BACKEND=""),
        drop={"CELERY_BROKER_URL", "REDIS_URL"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True 31536000 INFO"


def test_the_embedded_defaults_boot():
    done = manage("check", "--deploy", env_extra=production_env(), drop=EXAMPLE_VARIABLES - {"SECRET_KEY", "DEBUG"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_env_example_values_boot_with_a_real_secret_key():
    """Every value of .env.example is accepted; only its SECRET_KEY placeholder must be replaced."""
    env_extra = {"ENV_FILE": str(ENV_EXAMPLE)}
    placeholder = manage("check", env_extra=env_extra, drop=EXAMPLE_VARIABLES)
    assert_refused(placeholder, "SECRET_KEY is the placeholder 'change-me'")
    done = manage("check", env_extra={**env_extra, "SECRET_KEY": secrets.token_urlsafe(50)},
                  drop=EXAMPLE_VARIABLES - {"SECRET_KEY"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_settings_choices_are_the_code_s():
    from django.conf import settings

    from sandboxes.providers import PROVIDERS
    from threads.services.pruning import STRATEGIES

    assert set(settings.THREAD_TTL_STRATEGIES) == set(STRATEGIES)
    assert set(settings.SANDBOX_PROVIDERS) == set(PROVIDERS)
