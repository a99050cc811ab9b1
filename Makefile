# Entry points for developers: make test | lint | demo | bench | bench-pg
# Uses the project virtualenv (.venv, see README.md); override with make PYTHON=...

VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
# Sessions generated for the analytics and admin benchmarks (~5 messages each): 200,000 takes a
# few minutes in all; the figures in README.md come from BENCH_SESSIONS=1000000.
BENCH_SESSIONS ?= 200000
PG_BENCH_URL ?= postgres://postgres@127.0.0.1:5432/hermes_bench
# The demo gets its own database file, so `make demo` never touches db.sqlite3.
DEMO_DB ?= /tmp/hermes_demo.sqlite3

.PHONY: help test lint demo bench bench-pg

help:
	@echo "make test      run the test suite (SQLite; DATABASE_URL=... for PostgreSQL or MariaDB)"
	@echo "make lint      ruff check + ruff format --check + no missing migrations"
	@echo "make demo      demo history in $(DEMO_DB), then the admin at http://127.0.0.1:8000/admin/"
	@echo "make bench     append, import, analytics and admin benchmarks on SQLite (BENCH_SESSIONS=$(BENCH_SESSIONS))"
	@echo "make bench-pg  append, analytics and admin benchmarks on PostgreSQL ($(PG_BENCH_URL))"

test:
	$(PYTHON) -m pytest

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_DEBUG=1 $(PYTHON) manage.py makemigrations --check --dry-run

demo:
	DJANGO_DEBUG=1 DATABASE_URL=sqlite:///$(DEMO_DB) $(PYTHON) manage.py migrate --verbosity 0
	DJANGO_DEBUG=1 DATABASE_URL=sqlite:///$(DEMO_DB) $(PYTHON) manage.py load_demo --flush --no-input
	DJANGO_DEBUG=1 DATABASE_URL=sqlite:///$(DEMO_DB) $(PYTHON) manage.py empty_sessions
	DJANGO_DEBUG=1 DATABASE_URL=sqlite:///$(DEMO_DB) $(PYTHON) manage.py runserver

# Each benchmark prints medians, ratios against the raw driver and its peak RSS; a missed goal is
# printed, never an error. DATABASE_URL is cleared so a shell's setting cannot point them at real data.
bench:
	DATABASE_URL= $(PYTHON) bench/bench_append.py
	DATABASE_URL= $(PYTHON) bench/bench_import.py
	DATABASE_URL= $(PYTHON) bench/generate.py --sessions $(BENCH_SESSIONS) --reset
	DATABASE_URL= $(PYTHON) bench/bench_analytics.py
	DATABASE_URL= $(PYTHON) bench/bench_admin.py

bench-pg:
	DATABASE_URL=$(PG_BENCH_URL) $(PYTHON) bench/generate.py --sessions $(BENCH_SESSIONS) --reset
	DATABASE_URL=$(PG_BENCH_URL) $(PYTHON) bench/bench_analytics.py
	DATABASE_URL=$(PG_BENCH_URL) $(PYTHON) bench/bench_admin.py
	DATABASE_URL=$(PG_BENCH_URL) $(PYTHON) bench/bench_append.py
