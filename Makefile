# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
BUILD ?= build
JOBS ?= $(shell nproc)
DEMO_OUT ?= runs/demo

.PHONY: setup build test demo clean format

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

format:
	@clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	@rm -rf $(BUILD)
