# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
BUILD ?= build
JOBS ?= $(shell nproc)
DEMO_OUT ?= runs/demo

.PHONY: setup build test demo bench clean format

setup:
	@bash scripts/setup.sh

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null

build: setup $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

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
	@rm -rf $(BUILD)
