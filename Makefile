# ward: `make run` sets up, builds and runs the demo; `make test` sets up, builds and runs every
# test, then again under AddressSanitizer+UndefinedBehaviorSanitizer, the event tests and the
# multi-threaded domain and recovery tests under ThreadSanitizer, and fuzzes the host's decoding
# of extension data for a short while (`make fuzz` for a long run; docs/fuzzing.md).
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CTEST_ARGS ?= --output-on-failure -j $(JOBS)

.PHONY: all setup build build-asan build-tsan build-fuzz run test test-plain test-asan test-tsan test-fuzz fuzz stress soak bench clean install deb

all: build

setup:
	@./scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: setup
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWARD_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target ward_tests ward_real_tests ward_fuse_tests ward_conform_tests ward_gen_tests ward_cli_tests ward-cli ward-runtime

build-tsan: setup
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWARD_TSAN=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target ward_event_tests ward_tests ward-runtime

run: build
	./$(BUILD)/ward demo

test: test-plain test-asan test-tsan test-fuzz

test-plain: build
	cd $(BUILD) && ctest $(CTEST_ARGS)

# The compile-fail tests are the same in both builds; run them once.
test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest $(CTEST_ARGS) -E '^compile_fail\.'

# Binding and unbinding while raising from several threads, under ThreadSanitizer.
# Under ThreadSanitizer: the event tests, and the tests where several host threads meet one
# domain or supervisor (channel waits, recovery while others call, the output pump, dispatch),
# and `ward fuse`'s forwarder of a file system's output (its own thread).
TSAN_FILTER ?= Supervisor*:CrashLoop*:Stress*:Hostile*:Threads*:Output*:Dispatch*:DomainNesting*:CallbackRetry*:RioStalls*:FsOutput*
test-tsan: build-tsan
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ./$(TSAN_BUILD)/ward_event_tests
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ./$(TSAN_BUILD)/ward_tests --gtest_filter='$(TSAN_FILTER)'

# Fuzzing (docs/fuzzing.md): libFuzzer needs clang, and only clang >= 16 compiles ward's C++23
# with Debian 12's libstdc++, so this is a build of its own. Both runs replay the committed corpus
# first, then mutate; new inputs go to $(FUZZ_BUILD)/corpus, crashes to $(FUZZ_BUILD)/artifacts.
FUZZ_SECONDS       ?= 600
FUZZ_SHORT_SECONDS ?= 45
FUZZ_ENV  = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=64 UBSAN_OPTIONS=print_stacktrace=1 \
            ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-16/bin/llvm-symbolizer
FUZZ_RUN  = $(FUZZ_ENV) ./$(FUZZ_BUILD)/ward-fuzz-host -max_len=512 -timeout=20 -print_final_stats=1 \
            -artifact_prefix=$(FUZZ_BUILD)/artifacts/

build-fuzz: setup
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-16 \
	  -DCMAKE_CXX_COMPILER=clang++-16 -DWARD_SANITIZE=ON -DWARD_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target ward-fuzz-host
	@mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/artifacts

test-fuzz: build-fuzz
	$(FUZZ_RUN) -max_total_time=$(FUZZ_SHORT_SECONDS) $(FUZZ_BUILD)/corpus fuzz/corpus

# The long run; afterwards the inputs that reached new code are merged into fuzz/corpus (commit them).
fuzz: build-fuzz
	$(FUZZ_RUN) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_BUILD)/corpus fuzz/corpus
	$(FUZZ_RUN) -merge=1 fuzz/corpus $(FUZZ_BUILD)/corpus

# The long stress run: thousands of random kills under a multithreaded workload.
STRESS_KILLS ?= 3000
RIO_KILLS ?= 2000
stress: build
	WARD_STRESS_KILLS=$(STRESS_KILLS) ./$(BUILD)/ward_tests --gtest_filter='Stress.*'
	WARD_RIO_KILLS=$(RIO_KILLS) ./$(BUILD)/ward_tests --gtest_filter='RioCrash.AcknowledgedWritesSurviveRandomKills'
	WARD_CONFORM_KILLS=1 ./$(BUILD)/ward_conform_tests --gtest_filter='*WithKills*'
	WARD_FUSE_LONG_KILLS=1 ./$(BUILD)/ward_fuse_tests --gtest_filter='FuseReal.GocryptfsKillsAreInvisibleWithJournal:FuseReal.RcloneKillsAreInvisibleWithJournal'

# The soak: a supervised extension under load with periodic kills (SOAK_SECONDS; `ward bench soak
# --hour` for the long one). Fails if any failure was not injected.
SOAK_SECONDS ?= 60
soak: build
	./$(BUILD)/ward bench soak --seconds $(SOAK_SECONDS)

bench: build
	./$(BUILD)/ward bench xpc
	./$(BUILD)/ward bench recovery
	./$(BUILD)/ward bench rio

# Installs headers, libward (.a and .so), the helper, the CLI, the CMake package, ward.pc and the
# docs under PREFIX (README, "Using ward from your project"); `make deb` builds a Debian package.
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

deb: build
	cd $(BUILD) && cpack -G DEB

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
