# ecrm — the two commands: `make run` and `make test`. Both install missing Debian packages first.
.PHONY: deps build run test test-asan test-tsan test-e2e bench fuzz image format format-check clean

BUILD ?= build
JOBS ?= $(shell nproc)

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake --preset release -Wno-dev >/dev/null

build: deps $(BUILD)/build.ninja
	cmake --build --preset release -j $(JOBS)

# Starts the service on the embedded default: RocksDB in ./data, HTTP on 127.0.0.1:8080.
run: build
	$(BUILD)/ecrm serve

# Every test: unit + integration + end-to-end (real npm clients, promtool) on the release build,
# then the unit and integration tests again under AddressSanitizer/UBSan, and the concurrency tests
# under ThreadSanitizer.
test: build format-check
	ctest --preset release -j $(JOBS)
	$(MAKE) test-asan
	$(MAKE) test-tsan

test-asan: deps
	cmake --preset asan -Wno-dev >/dev/null
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

# The concurrency tests under ThreadSanitizer (build-tsan/): shards, acknowledgements and state-log
# epochs, merges across shards, rule swaps, the HTTP server, and the whole service in-process.
TSAN_TESTS = profiler_test rules_test http_server_test ingest_test integration_test
test-tsan: deps
	cmake --preset tsan -Wno-dev >/dev/null
	cmake --build --preset tsan -j $(JOBS) --target $(TSAN_TESTS)
	ctest --preset tsan -j $(JOBS)

test-e2e: build
	ctest --preset release -L e2e

# Google Benchmarks, one binary per module (the load tool is $(BUILD)/ecrm-load; see docs/performance.md).
bench: build
	$(BUILD)/bench/ingest_bench
	$(BUILD)/bench/profiler_bench
	$(BUILD)/bench/store_bench

# The libFuzzer targets of tests/fuzz/ under ASan/UBSan (clang-16, build-fuzz/), 10^6 inputs each;
# `make test` only replays them (docs/fuzzing.md). FUZZ_RUNS=... for another count.
fuzz: deps
	bash bench/fuzz/run.sh $(or $(FUZZ_RUNS),1000000)

# OCI image archive (podman/docker load -i build/ecrm-image.tar); no registry, engine or network
# (docs/operations.md#the-image).
image: build
	bash scripts/build-image.sh $(BUILD)/ecrm $(BUILD)/ecrm-image.tar

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

# Fails if any C++ file is not formatted as .clang-format says (`make format` fixes it).
format-check: deps
	clang-format --dry-run --Werror $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build build-asan build-tsan build-fuzz
