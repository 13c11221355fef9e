# rl: native rate limiting inside Redis.
#   make run    install what is missing, build, start redis-server on 127.0.0.1:$(PORT) with the module
#   make test   install what is missing, build, run unit and integration tests
#   make bench  benchmark against SET, INCR and Lua limiters (see bench/; a few minutes)
#   make bench-smoke  the same rows with tiny request counts (seconds; numbers not meaningful)
#   make bench-profile  instructions per call, Redis's parts vs the module's (callgrind; about a minute)
#   make fuzz   1,000,000 random argument vectors against a real server (tests/fuzz.rs)

PORT ?= 6379
MODULE := $(CURDIR)/target/release/librl.so

.PHONY: deps build run test bench bench-smoke bench-profile fuzz clean

deps:
	@./scripts/install-deps.sh

build: deps
	cargo build --release

run: build
	redis-server --bind 127.0.0.1 --port $(PORT) --dir $(CURDIR)/target --loadmodule $(MODULE)

# Integration tests start their own redis-server processes on free loopback ports with $(MODULE).
test: build
	RL_MODULE=$(MODULE) cargo test --no-fail-fast

# The benchmark starts its own redis-server (free loopback port, no persistence) with $(MODULE).
# Extra options: make bench BENCH_ARGS="--repeat 5 --json /tmp/bench.json" (python3 bench/run.py --help).
bench: build
	python3 bench/run.py --module $(MODULE) $(BENCH_ARGS)

bench-smoke: build
	python3 bench/run.py --smoke --module $(MODULE) $(BENCH_ARGS)

# Instructions per call by part (Redis vs the module), under valgrind's callgrind (bench/profile.py).
bench-profile: build
	python3 bench/profile.py --module $(MODULE) $(PROFILE_ARGS)

# The long fuzz run; `make test` runs the same test with a short default count. RL_SEED=<n> replays a run.
FUZZ_VECTORS ?= 1000000
fuzz: build
	RL_MODULE=$(MODULE) RL_FUZZ_VECTORS=$(FUZZ_VECTORS) cargo test --release --test fuzz -- --nocapture

clean:
	cargo clean
