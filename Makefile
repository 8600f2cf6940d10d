# ward: `make run` sets up, builds and runs the demo; `make test` sets up, builds and runs every
# test, then again under AddressSanitizer+UndefinedBehaviorSanitizer, and the event tests under
# ThreadSanitizer.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)
CTEST_ARGS ?= --output-on-failure -j $(JOBS)

.PHONY: all setup build build-asan build-tsan run test test-plain test-asan test-tsan stress bench clean

all: build

setup:
	@./scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: setup
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWARD_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target ward_tests ward-runtime

build-tsan: setup
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWARD_TSAN=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target ward_event_tests

run: build
	./$(BUILD)/ward demo

test: test-plain test-asan test-tsan

test-plain: build
	cd $(BUILD) && ctest $(CTEST_ARGS)

# The compile-fail tests are the same in both builds; run them once.
test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest $(CTEST_ARGS) -E '^compile_fail\.'

# Binding and unbinding while raising from several threads, under ThreadSanitizer.
test-tsan: build-tsan
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ./$(TSAN_BUILD)/ward_event_tests

# The long stress run: thousands of random kills under a multithreaded workload.
STRESS_KILLS ?= 3000
RIO_KILLS ?= 2000
stress: build
	WARD_STRESS_KILLS=$(STRESS_KILLS) ./$(BUILD)/ward_tests --gtest_filter='Stress.*'
	WARD_RIO_KILLS=$(RIO_KILLS) ./$(BUILD)/ward_tests --gtest_filter='RioCrash.AcknowledgedWritesSurviveRandomKills'

bench: build
	./$(BUILD)/ward bench xpc
	./$(BUILD)/ward bench recovery
	./$(BUILD)/ward bench rio

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
