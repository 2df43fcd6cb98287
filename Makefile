# The two commands of the README: `make run` and `make test`.
PYTHON ?= $(shell pyenv which python 2>/dev/null || command -v python3.13 || command -v python3)
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo $(PYTHON) -m uv)
# Where `make run` serves (the README's walk-through uses the defaults).
HOST ?= 127.0.0.1
PORT ?= 8000
MANAGE := .venv/bin/python manage.py

.PHONY: install setup run test worker beat stack

install:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q "uv==$(UV_VERSION)"
	$(UV) sync --frozen --python $(PYTHON)

# A development .env (debug on, a generated secret key) when there is none. Variables
# set in the environment win over it; .env.example lists every variable.
.env:
	@printf '# Development settings written by make run; see .env.example for every variable.\nDEBUG=1\nSECRET_KEY=%s\n' \
	  "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env
	@echo "Wrote a development .env (DEBUG=1, a generated SECRET_KEY)."

# Everything `make run` does before serving: install, .env, migrate, the demo login.
setup: install .env
	$(MANAGE) migrate --noinput
	$(MANAGE) seed_demo --staff --if-missing

# Installs everything, migrates the embedded SQLite database, creates a demo login,
# and serves on http://127.0.0.1:8000 (HOST, PORT change it).
run: setup
	@echo "Admin: http://$(HOST):$(PORT)/admin/  API docs: http://$(HOST):$(PORT)/api/docs/  (user demo / demo-password)"
	$(MANAGE) runserver $(HOST):$(PORT)

# The whole suite. Uses DATABASE_URL / REDIS_URL when set (PostgreSQL, Redis, a real
# Celery worker), the embedded defaults otherwise; never reads .env. Extra pytest
# arguments: ARGS="...".
test: install
	.venv/bin/pytest $(ARGS)

worker:
	.venv/bin/celery -A config worker --loglevel=INFO

beat:
	@mkdir -p var
	.venv/bin/celery -A config beat --loglevel=INFO --schedule var/celerybeat-schedule

# The production stack (Procfile: uvicorn web, Celery worker and beat, under honcho)
# against PostgreSQL and Redis from the environment or .env; PORT (default 8000).
stack: install
	bin/stack

# The benchmarks (bench/*.py; not tests): the services against the fastest raw SQL on
# identical data, as min/median/max of per-round ratios. PostgreSQL only, in a
# database of their own (created if missing; they remove what they seed). Moderate
# sizes by default; bigger ones by hand, e.g.
#   .venv/bin/python bench/delete_bench.py --sizes 1000000 --run-totals "" --rounds 3
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/threadkeeper_bench
bench: install
	DATABASE_URL=$(BENCH_DATABASE_URL) $(UV) run --frozen --no-sync python bench/delete_bench.py --sizes 1000,10000,100000 --run-totals 3000,30000 --rounds 5
	DATABASE_URL=$(BENCH_DATABASE_URL) $(UV) run --frozen --no-sync python bench/detail_bench.py --turns 50,500,5000 --rounds 5
	DATABASE_URL=$(BENCH_DATABASE_URL) $(UV) run --frozen --no-sync python bench/prune_bench.py --threads 1000,10000 --rounds 3
