# airflow-rest-bridge: `make run` and `make test` are the two commands a new machine needs.
#
#   make run            set up everything (a throwaway SQLite Airflow home with a demo DAG)
#                       and start the daemon on http://127.0.0.1:$(PORT)/admin/rest_api/
#   make test           lint, type-check, unit tests, the integration suite against
#                       real Airflow $(AIRFLOW_VERSIONS), then the smoke set against every other
#                       minor ($(AIRFLOW_MINORS)), each in its own cached virtualenv
#
# Airflow virtualenvs are cached in $(CACHE) between runs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CACHE ?= $(HOME)/.cache/airflow-rest-bridge
AIRFLOW_VERSIONS := 2.11.2 3.3.2
# Every other minor from 2.7 runs the smoke set (make smoke), each resolved as of two weeks
# after its release: later releases of their dependencies break them (make airflow-resolve-V).
AIRFLOW_MINORS := 2.7.3 2.8.4 2.9.3 2.10.5 3.0.6 3.1.8 3.2.2
AS_OF_2.7.3 := 2023-11-20
AS_OF_2.8.4 := 2024-04-08
AS_OF_2.9.3 := 2024-07-30
AS_OF_2.10.5 := 2025-02-24
AS_OF_3.0.6 := 2025-09-12
AS_OF_3.1.8 := 2026-03-25
AS_OF_3.2.2 := 2026-06-12
AIRFLOW_VERSION ?= 3.3.2
PORT ?= 8799
DEMO_HOME := .airflow-demo/$(AIRFLOW_VERSION)
airflow_bin = $(CACHE)/airflow-$(1)/bin/airflow
# Airflow's metadata database on PostgreSQL needs its drivers (sync, and async on 3.x).
POSTGRES_DRIVER := psycopg2-binary==2.9.13 asyncpg==0.32.0
# The multi-host tests' providers, in the full-suite versions: Airflow 3's git DAG bundle, and
# the Amazon provider for remote task logging to S3 (botocore needs python-dateutil < 3, so
# 3.3.2's pin is 2.9.0.post0 rather than the 4.0.0 a bare install resolves).
AIRFLOW_EXTRAS_3.3.2 := apache-airflow-providers-git==1.0.1 apache-airflow-providers-amazon==9.39.0
AIRFLOW_EXTRAS_2.11.2 := apache-airflow-providers-amazon==9.39.0

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
AS_POSTGRES := $(if $(SUDO),sudo -u postgres,runuser -u postgres --)
# The first local PostgreSQL cluster's port (after `make postgres`).
PG_PORT = $$(pg_lsclusters -h | awk 'NR==1 {print $$3}')

.PHONY: run test bench lint docs mutation unit integration smoke postgres dev dev-constraints airflow-venvs airflow-constraints chromium systemd-analyze clean

# The development tools' whole set is pinned too (tests/dev-constraints.txt): a new release of
# something schemathesis or moto pulls in cannot change what `make test` runs with.
$(BIN)/.installed: setup.py constraints.txt tests/requirements-dev.txt tests/dev-constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e . -r tests/requirements-dev.txt \
		-c constraints.txt -c tests/dev-constraints.txt
	touch $@

dev: $(BIN)/.installed

# One virtualenv per Airflow version, installed with uv against pinned constraints; a second
# run only checks that everything is already there.
airflow-venvs: dev
	@for v in $(AIRFLOW_VERSIONS); do $(MAKE) --no-print-directory airflow-venv-$$v; done

airflow-venv-%: dev
	@test -x $(call airflow_bin,$*) || $(BIN)/uv venv --quiet --python $(PYTHON) $(CACHE)/airflow-$*
	VIRTUAL_ENV=$(CACHE)/airflow-$* $(BIN)/uv pip install --quiet \
		apache-airflow==$* $(POSTGRES_DRIVER) $(AIRFLOW_EXTRAS_$*) \
		-c tests/airflow-constraints/airflow-$*-constraints.txt

# The browser tests drive Debian's Chromium through Playwright (no browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

run: dev airflow-venv-$(AIRFLOW_VERSION)
	$(BIN)/python tests/demo/make_home.py $(call airflow_bin,$(AIRFLOW_VERSION)) $(DEMO_HOME) --port $(PORT)
	@echo
	@echo "airflow-rest-bridge: http://127.0.0.1:$(PORT)/admin/rest_api/ (Airflow $(AIRFLOW_VERSION), home $(DEMO_HOME))"
	@echo "try:  curl 'http://127.0.0.1:$(PORT)/admin/rest_api/api?api=list_dags'"
	@echo "      curl -N 'http://127.0.0.1:$(PORT)/admin/rest_api/api?api=test&dag_id=bridge_demo&task_id=slow_lines&execution_date=2024-01-02T03:04:05&stream=true'"
	@echo
	AIRFLOW_HOME=$(abspath $(DEMO_HOME)) \
	AIRFLOW__REST_API_PLUGIN__AIRFLOW_EXECUTABLE=$(call airflow_bin,$(AIRFLOW_VERSION)) \
		$(BIN)/airflow-rest-bridge --config $(abspath $(DEMO_HOME))/airflow.cfg

lint: dev
	$(BIN)/ruff check bridge tests setup.py
	$(BIN)/ruff format --check bridge tests setup.py
	$(BIN)/mypy

# The generated documentation: API reference, settings reference, sample cfg (a unit test
# fails when they are stale).
docs: dev
	$(BIN)/python -m bridge.docs

# Both cores: pytest-xdist, two workers (each integration worker builds its own Airflow home
# and warm helper; --dist loadfile keeps a module's tests, which share fixtures, on one).
XDIST := -n 2

unit: dev systemd-analyze
	$(BIN)/pytest -m "not airflow" $(XDIST)

# The service tests check the unit with systemd-analyze.
systemd-analyze:
	@command -v systemd-analyze >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq systemd; }

# PostgreSQL on loopback (Debian's server), for the production-backend tests: a role that
# may create the per-version test databases.
postgres:
	@command -v pg_lsclusters >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }
	@set -- $$(pg_lsclusters -h | head -n 1); [ "$$4" = online ] || $(SUDO) pg_ctlcluster $$1 $$2 start
	@cd / && { $(AS_POSTGRES) psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname = 'bridge'" | grep -q 1 || \
		$(AS_POSTGRES) psql -qc "CREATE ROLE bridge LOGIN CREATEDB PASSWORD 'bridge'"; }

# Per Airflow version, the full suite through the warm helper; then with the cold CLI, the
# smoke set and the tests marked `cold` (whose subject is how a command starts and stops
# without the helper: streams, cancels, stopped test runs, a killed daemon's jobs). What a
# command does depends on the Airflow version, and the warm pass covers it; the fake airflow
# of the unit suite drives the cold path's faults. The SQLite homes are the suite's; the
# PostgreSQL tests use a database of their own. --durations: where the time goes.
integration: airflow-venvs chromium systemd-analyze postgres
	@for v in $(AIRFLOW_VERSIONS); do for warm in 1 0; do \
		if [ $$warm = 1 ]; then marks=airflow; else marks="airflow and (smoke or cold)"; fi; \
		echo "== integration suite against Airflow $$v (warm helper: $$warm; -m '$$marks')"; \
		BRIDGE_TEST_WARM=$$warm BRIDGE_TEST_AIRFLOW=$(call airflow_bin,$$v) \
		BRIDGE_TEST_POSTGRES=postgresql+psycopg2://bridge:bridge@127.0.0.1:$(PG_PORT) \
			$(BIN)/pytest -m "$$marks" $(XDIST) --dist loadfile --durations=15 || exit 1; \
	done; done

# The smoke set against every other minor, through the warm helper: two minors at a time
# (one core each; a minor's session is one Airflow home), each one's output kept together.
smoke: dev
	@$(MAKE) --no-print-directory -j 2 --output-sync=target $(addprefix smoke-,$(AIRFLOW_MINORS))

smoke-%: dev
	@$(MAKE) --no-print-directory airflow-venv-$*
	@echo "== smoke set against Airflow $*"
	BRIDGE_TEST_AIRFLOW=$(call airflow_bin,$*) $(BIN)/pytest -m smoke -p no:cacheprovider

test: lint unit integration smoke

# Latency, throughput, RSS and streaming delay: the bridge (warm and cold) against the plain
# CLI and Airflow's own REST API, for each Airflow version (docs/performance.md); and a job's
# output on another bridge sharing its jobs database (the suite's PostgreSQL).
bench: airflow-venvs postgres
	$(BIN)/python -m tests.bench $(foreach v,$(AIRFLOW_VERSIONS),$(call airflow_bin,$(v))) \
		--postgres postgresql://bridge:bridge@127.0.0.1:$(PG_PORT)

# Mutation testing of the modules that decide what runs and what is refused, against the unit
# suite (mutmut; settings in pyproject.toml). It takes long, so it is not part of `make test`;
# its score and the mutants that survive are in docs/development.md.
mutation: dev
	$(BIN)/pip install --quiet -r tests/requirements-mutation.txt -c constraints.txt
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut export-cicd-stats
	$(BIN)/python tests/mutation_score.py
	$(BIN)/mutmut results

# Re-pin the Airflow virtualenvs' packages after changing AIRFLOW_VERSIONS.
airflow-constraints: airflow-venvs
	@for v in $(AIRFLOW_VERSIONS); do \
		{ echo "# Every package of a working apache-airflow==$$v install, pinned (Airflow's own"; \
		  echo "# constraints files are not on PyPI). Regenerate with: make airflow-constraints"; \
		  VIRTUAL_ENV=$(CACHE)/airflow-$$v $(BIN)/uv pip freeze | grep -v '^apache-airflow=='; \
		} > tests/airflow-constraints/airflow-$$v-constraints.txt; \
	done

# Re-pin the development tools' dependencies after changing tests/requirements-dev.txt (the
# daemon's own packages stay in constraints.txt, and are left out here).
dev-constraints: dev
	{ echo "# Every package of the development virtualenv (make dev) that constraints.txt does not pin."; \
	  echo "# Regenerate with: make dev-constraints"; \
	  $(BIN)/pip freeze --exclude-editable | awk -F'==' \
		'function key(n) { n = tolower(n); gsub(/[_.]/, "-", n); return n } \
		 NR == FNR { if ($$0 !~ /^#/) pinned[key($$1)] = 1; next } !(key($$1) in pinned)' \
		constraints.txt -; \
	} > tests/dev-constraints.txt.new
	mv tests/dev-constraints.txt.new tests/dev-constraints.txt

# Re-resolve a smoke-set minor as of its AS_OF date and pin the result.
airflow-resolve-%: dev
	rm -rf $(CACHE)/airflow-$*
	$(BIN)/uv venv --quiet --python $(PYTHON) $(CACHE)/airflow-$*
	VIRTUAL_ENV=$(CACHE)/airflow-$* $(BIN)/uv pip install --quiet \
		--exclude-newer $(AS_OF_$*) apache-airflow==$*
	{ echo "# Every package of apache-airflow==$* resolved as of $(AS_OF_$*) (two weeks after its release:"; \
	  echo "# newer releases of its dependencies break it). Regenerate with: make airflow-resolve-$*"; \
	  VIRTUAL_ENV=$(CACHE)/airflow-$* $(BIN)/uv pip freeze | grep -v '^apache-airflow=='; \
	} > tests/airflow-constraints/airflow-$*-constraints.txt

clean:
	rm -rf $(VENV) .airflow-demo .pytest_cache .mypy_cache .ruff_cache *.egg-info
