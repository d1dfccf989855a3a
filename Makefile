# chroma2 build. `make` builds the CPU parts with gcc and adds the CUDA parts
# when nvcc is found (CUDA=0 turns them off). Outputs: build/bin, build/lib.
#
#   make            libraries, test runner, benchmarks
#   make test       every test (plain and sanitizer builds), ends in a summary
#   make bench-cpu  the CPU engine benchmark table
#   make CUDA=0     no CUDA parts

CC      ?= gcc
NVCC    ?= nvcc
BUILD   ?= build
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow -Wno-unused-function -pthread -MMD -MP
CPPFLAGS += -Ikernels/include
LDLIBS  += -lm -pthread

# CUDA is optional: on when nvcc is on PATH unless CUDA=0.
ifeq ($(origin CUDA),undefined)
CUDA := $(if $(shell command -v $(NVCC) 2>/dev/null),1,0)
endif
CUDA_ARCH ?= sm_90

ENGINE_SRC := kernels/geometry/geometry.c kernels/geometry/bvh.c kernels/geometry/mesh.c \
              kernels/geometry/detector.c kernels/cpu/engine.c
TEST_SRC   := tests/runner.c tests/test_rng.c tests/test_interact.c tests/test_geometry.c \
              tests/test_transport.c tests/test_engine.c tests/util.c

ENGINE_LIB := $(BUILD)/lib/libchroma2-engine.a
TEST_BIN   := $(BUILD)/bin/c2-tests
BENCH_BIN  := $(BUILD)/bin/bench-cpu

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

.PHONY: all test test-plain test-san bench-cpu clean
all: $(ENGINE_LIB) $(TEST_BIN) $(BENCH_BIN)
	@echo "built: $(ENGINE_LIB) $(TEST_BIN) $(BENCH_BIN) (CUDA parts: $(if $(filter 1,$(CUDA)),on, off))"

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(ENGINE_LIB): $(call obj,$(ENGINE_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(TEST_BIN): $(call obj,$(TEST_SRC)) $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BENCH_BIN): $(call obj,tools/bench_cpu.c tests/util.c) $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The sanitizer build is a second tree with its own flags; the runner's
# summary line of each build is folded into one by tests/run.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
test-plain: $(TEST_BIN)
	$(TEST_BIN)

test-san:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/san CFLAGS="$(SAN_FLAGS)" CUDA=0 $(BUILD)/san/bin/c2-tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(BUILD)/san/bin/c2-tests

test: $(TEST_BIN)
	@tools/ensure-deps test
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/san CFLAGS="$(SAN_FLAGS)" CUDA=0 $(BUILD)/san/bin/c2-tests
	@tests/run "plain:$(TEST_BIN)" "asan+ubsan:$(BUILD)/san/bin/c2-tests"

bench-cpu: $(BENCH_BIN)
	$(BENCH_BIN)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
