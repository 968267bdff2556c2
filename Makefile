# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
BUILD ?= build
JOBS ?= $(shell nproc)
DEMO_OUT ?= runs/demo

# Idle OpenMP threads sleep instead of spinning (an OMP_WAIT_POLICY already set wins): where the
# cores are shared (a build beside the demo, ctest -j running tests side by side) spinning
# threads take the cores from those with work. README "Threads on a shared machine".
export OMP_WAIT_POLICY ?= passive

SAN_BUILD ?= build-sanitize
FUZZ_BUILD ?= build-fuzz
SECONDS ?= 60
FUZZ_TARGETS ?= genotype idx cifar checkpoint corpus
TRIALS ?= 20
# A sanitizer report fails the test that triggered it; leaks are checked, except those listed
# (third-party frames only) in tests/sanitize/lsan.supp.
SAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitize/lsan.supp:print_suppressions=0

.PHONY: setup build test demo bench clean format test-sanitize sanitize-subset fuzz test-crash

setup:
	@bash scripts/setup.sh

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null

build: setup $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build folder.
test-sanitize: setup
	@cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG" -DDATANAS_SANITIZE=ON >/dev/null
	@cmake --build $(SAN_BUILD) -j $(JOBS) --target datanas_tests
	@cd $(SAN_BUILD) && $(SAN_ENV) ctest --output-on-failure -j $(JOBS)

# Every libFuzzer target for SECONDS seconds each (or RUNS=N inputs each from a fixed seed;
# clang, ASan + UBSan), seeded from fuzz/corpus
# and fuzz/regressions; crashes land in $(FUZZ_BUILD)/artifacts/.
# fuzz_checkpoint links the Release library of $(BUILD) (built first) instead of rebuilding it.
fuzz: setup $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS) --target datanas_lib
	@CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG" -DDATANAS_FUZZ=ON \
	  -DDATANAS_FUZZ_LIB=$(CURDIR)/$(BUILD)/libdatanas_lib.a >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) $(addprefix --target fuzz_,$(FUZZ_TARGETS))
	@FUZZ_RUNS=$(RUNS) bash scripts/fuzz.sh $(FUZZ_BUILD) $(SECONDS) $(FUZZ_TARGETS)

# CI's sanitizer subset (the full test-sanitize build takes longer than the rest of CI): every
# fuzz target, i.e. each reader of user files under ASan + UBSan, replays its seeds and
# regressions, then runs SUBSET_RUNS inputs from a fixed seed (the same inputs every time).
SUBSET_RUNS ?= 20000
sanitize-subset:
	@$(MAKE) --no-print-directory fuzz RUNS=$(SUBSET_RUNS)

# Many SIGKILL/resume trials of a search and a training run (the suite runs a few).
test-crash: build
	@DATANAS_CRASH_TRIALS=$(TRIALS) $(BUILD)/datanas_tests --gtest_filter='CrashSafety.*'

# The demo needs only the CLI: building the tests too would cost minutes of its budget.
demo: setup $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS) --target datanas
	@$(BUILD)/datanas run --out $(DEMO_OUT)

# Benchmarks (not part of the tests): single ops, then search iterations of the dense and the
# fast path next to the PyTorch reference (python3-torch). Rows go to $(BENCH_OUT)/*.jsonl.
BENCH_OUT ?= runs/bench
bench: $(BUILD)/CMakeCache.txt
	@DATANAS_SETUP_BENCH=1 bash scripts/setup.sh
	@cmake --build $(BUILD) -j $(JOBS) --target datanas
	@mkdir -p $(BENCH_OUT)
	@$(BUILD)/datanas bench --what ops --out $(BENCH_OUT)/ops.jsonl
	@$(BUILD)/datanas bench --what search-step --pytorch bench/pytorch_search_step.py \
	  --out $(BENCH_OUT)/search-step.jsonl

format:
	@clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	@rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD)
