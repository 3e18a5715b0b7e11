# FåKopp — the two commands of the README:
#   make run    run the main job on its embedded default (no servers needed)
#   make test   the whole test suite against real Kafka, Cassandra, MPI, HDF5
# Both install what they need first (scripts/bootstrap is idempotent).

CARGO ?= cargo
FAKOPP = target/debug/fakopp

.PHONY: run test bootstrap build services-start services-stop pyenv lint fmt bench

bootstrap:
	scripts/bootstrap

build: bootstrap
	$(CARGO) build --bin fakopp

pyenv:
	scripts/pyenv >/dev/null

run: build
	$(FAKOPP) batch --config configs/local.toml

# The services are stopped again whether the tests pass or fail.
test: bootstrap pyenv lint
	$(CARGO) build --tests --workspace
	scripts/services start all && $(CARGO) test --workspace --no-fail-fast; \
	  rc=$$?; scripts/slurm stop; scripts/services stop all; exit $$rc

services-start:
	scripts/services start all

services-stop:
	scripts/services stop all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
