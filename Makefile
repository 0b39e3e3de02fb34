# STS calcinosis EDC. `make run` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
PORT ?= 8000
# Production-like environment for `check --deploy` (no value here is used by a real site).
DEPLOY_ENV := ENV_FILE= DEBUG=false ALLOWED_HOSTS=edc.example.org SECURE_SSL_REDIRECT=true SECURE_COOKIES=true \
	SECRET_KEY=deploy-check-$$(printf 'k%.0s' {1..60}) SITE_URL=https://edc.example.org \
	DICOM_UID_KEY=deploy-check-$$(printf 'u%.0s' {1..40})

.PHONY: run test venv dev-deps assets env preflight migrate demo lint check-deploy bench backup restore clean

run: venv assets env preflight migrate demo
	@echo ""
	@echo "  STS Calcinosis EDC: http://127.0.0.1:$(PORT)/   (demo logins printed above)"
	@echo ""
	PORT=$(PORT) .venv/bin/honcho start

test: dev-deps assets preflight-test lint
	DJANGO_SETTINGS_MODULE=tests.settings $(PY) manage.py makemigrations --check --dry-run
	$(DEPLOY_ENV) $(PY) manage.py check --deploy --fail-level WARNING
	.venv/bin/pytest

venv: .venv/.installed
.venv/.installed: requirements.txt
	test -x $(PY) || python3.11 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

dev-deps: .venv/.dev-installed
.venv/.dev-installed: requirements.txt requirements-dev.txt .venv/.installed
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

assets: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# A development .env (DEBUG, plain HTTP on 127.0.0.1, e-mails kept in var/outbox) with its own key.
env: .env
.env: .env.example
	cp .env.example .env
	echo "SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" >> .env

# Database set-up, migrations and backups connect as the owner; the site itself (web, worker,
# beat, demo data) as the least-privilege runtime role named in .env's DATABASE_URL.
OWNER_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/sts_edc
AS_OWNER := DATABASE_URL=$(OWNER_DATABASE_URL)

preflight: venv env
	$(AS_OWNER) $(PY) manage.py preflight

preflight-test: dev-deps
	DJANGO_SETTINGS_MODULE=tests.settings $(PY) manage.py preflight

migrate: preflight
	$(AS_OWNER) $(PY) manage.py migrate --no-input
	$(AS_OWNER) $(PY) manage.py db_runtime_role

# The demo site and users, plus a synthetic cohort (sites 02 and 03, 40 participants with visits,
# measurements, questionnaires, AEs, queries) so dashboards and exports have data to show.
DEMO_PARTICIPANTS ?= 40
demo: migrate
	$(PY) manage.py seed_demo --participants $(DEMO_PARTICIPANTS) --seed 1 --if-absent

# The benchmark of issue #9 (bench/): gunicorn on loopback at each size, targets checked, results in
# bench/results/. `make bench BENCH_SIZES=200` is a quick run; 10,000 participants take a while.
BENCH_SIZES ?= 200,10000
BENCH_SEED ?= 1
bench: dev-deps assets
	$(PY) -m bench.run --sizes "$(BENCH_SIZES)" --seed "$(BENCH_SEED)"

lint: dev-deps
	.venv/bin/ruff check .

# Database (audit trail included) + uploaded files, with a manifest of SHA-256 hashes and row counts.
BACKUP_DIR ?= var/backups
backup: venv env
	$(AS_OWNER) $(PY) manage.py backup --to $(BACKUP_DIR)

# Into a new database only: make restore BACKUP=var/backups/edc-backup-... RESTORE_DATABASE=sts_edc_restored
restore: venv env
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=<backup folder> [RESTORE_DATABASE=<new database>] [RESTORE_MEDIA_ROOT=<empty folder>]"; exit 2; }
	$(AS_OWNER) $(PY) manage.py restore "$(BACKUP)"

clean:
	rm -rf .venv node_modules var
