# The two commands of the README: `make run` and `make test`.
PYTHON ?= $(shell pyenv which python 2>/dev/null || command -v python3.13 || command -v python3)
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo $(PYTHON) -m uv)

.PHONY: install run test worker beat

install:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q "uv==$(UV_VERSION)"
	$(UV) sync --frozen --python $(PYTHON)

# Installs everything, migrates the embedded SQLite database, creates a demo login,
# and serves on http://127.0.0.1:8000.
run: install
	DEBUG=1 $(UV) run --frozen --no-sync python manage.py migrate --noinput
	DEBUG=1 $(UV) run --frozen --no-sync python manage.py seed_demo --staff --if-missing
	@echo "Admin: http://127.0.0.1:8000/admin/  API docs: http://127.0.0.1:8000/api/docs/  (user demo / demo-password)"
	DEBUG=1 $(UV) run --frozen --no-sync python manage.py runserver 127.0.0.1:8000

# The whole suite. Uses DATABASE_URL / REDIS_URL when set (PostgreSQL, Redis, a real
# Celery worker), the embedded defaults otherwise. Extra pytest arguments: ARGS="...".
test: install
	$(UV) run --frozen --no-sync pytest $(ARGS)

worker:
	$(UV) run --frozen --no-sync celery -A config worker --loglevel=INFO

beat:
	$(UV) run --frozen --no-sync celery -A config beat --loglevel=INFO
