# rl: native rate limiting inside Redis.
#   make run    install what is missing, build, start redis-server on 127.0.0.1:$(PORT) with the module
#   make test   install what is missing, build, run unit and integration tests
#   make bench  benchmark against SET, INCR and Lua limiters (see bench/)

PORT ?= 6379
MODULE := $(CURDIR)/target/release/librl.so

.PHONY: deps build run test bench clean

deps:
	@./scripts/install-deps.sh

build: deps
	cargo build --release

run: build
	redis-server --bind 127.0.0.1 --port $(PORT) --dir $(CURDIR)/target --loadmodule $(MODULE)

# Integration tests start their own redis-server processes on free loopback ports with $(MODULE).
test: build
	RL_MODULE=$(MODULE) cargo test --no-fail-fast

clean:
	cargo clean
