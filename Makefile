# chroma2 build. `make` builds the CPU parts with gcc and adds the CUDA parts
# when nvcc is found (CUDA=0 turns them off). Outputs: build/bin, build/lib.
#
#   make            libraries, test runner, benchmarks
#   make test       every test (plain and sanitizer builds, Python), ends in a summary
#   make demo       a private chroma2d, the Python examples, a PNG of hits
#   make soak       many clients for SOAK_SECONDS (default 1800), memory and descriptors checked
#   make bench-cpu  the CPU engine benchmark table
#   make bench-ipc  the daemon's round trips, throughput and overhead table
#   make bench-gpu  the GPU benchmark table (on a machine with a GPU)
#   make fuzz       libFuzzer on the protocol decoder (FUZZ_SECONDS, default 600)
#   make CUDA=0     no CUDA parts
#   make test-gpu   on a GPU machine: CUDA tests, the daemon suite on --backend cuda, cffi GPU tests

CC      ?= gcc
NVCC    ?= nvcc
BUILD   ?= build
OPT     ?= -O2 -g
CFLAGS  += $(OPT) -std=c11 -D_POSIX_C_SOURCE=200809L -fPIC -Wall -Wextra -Wshadow -Wno-unused-function -pthread -MMD -MP
CPPFLAGS += -Ikernels/include -Iclient/include
LDLIBS  += -lm -pthread

.DEFAULT_GOAL := all
# NNG 1.11 with TLS on mbedTLS 3.6, built once from pinned sources by
# tools/build-nng (Debian 12's 1.5.2 leaks under connect storms:
# doc/reliability.md). Every NNG user here links these static archives;
# libchroma2-client carries them inside. DEPS does not follow BUILD, so the
# sanitizer trees share one copy.
DEPS      ?= build/deps
NNG_STAMP := $(DEPS)/.nng-1.11.0-mbedtls-3.6.3
NNG_A     := $(DEPS)/lib/libnng.a $(DEPS)/lib/libmbedtls.a $(DEPS)/lib/libmbedx509.a $(DEPS)/lib/libmbedcrypto.a
CPPFLAGS  += -I$(DEPS)/include
$(NNG_STAMP):
	@tools/ensure-deps build
	@tools/build-nng $(DEPS)
$(NNG_A): $(NNG_STAMP)
deps: $(NNG_STAMP)
	@tools/ensure-deps build

# CUDA is optional: on when nvcc is on PATH unless CUDA=0.
ifeq ($(origin CUDA),undefined)
CUDA := $(if $(shell command -v $(NVCC) 2>/dev/null),1,0)
endif
CUDA_ARCH ?= sm_90
NVCCFLAGS ?= -O3 -lineinfo
NVCCFLAGS += -arch=$(CUDA_ARCH) -std=c++17 -Xcompiler -Wall,-fPIC -MMD -MP

ENGINE_SRC := kernels/errors.c kernels/geometry/geometry.c kernels/geometry/bvh.c kernels/geometry/mesh.c \
              kernels/geometry/detector.c kernels/cpu/engine.c kernels/cpu/team.c
PROTO_SRC  := proto/scan.c proto/columns.c proto/decode.c proto/encode.c proto/geometry.c
CLIENT_SRC := client/client.c
DAEMON_SRC := daemon/main.c daemon/config.c daemon/digest.c daemon/metrics.c daemon/server.c daemon/scheduler.c daemon/answer.c daemon/backend_cpu.c daemon/log.c
TEST_SRC   := tests/runner.c tests/test_rng.c tests/test_interact.c tests/test_geometry.c \
              tests/test_transport.c tests/test_engine.c tests/test_proto.c tests/test_daemon.c tests/util.c

CUDA_SRC   := kernels/cuda/device.cu kernels/cuda/loop.cu kernels/cuda/runtime.cu kernels/queue/synthetic.cu

ENGINE_LIB := $(BUILD)/lib/libchroma2-engine.a
PROTO_LIB  := $(BUILD)/lib/libchroma2-proto.a
DAEMON_BIN := $(BUILD)/bin/chroma2d
TEST_CLIENT := $(BUILD)/bin/c2-test-client
CTL_BIN    := $(BUILD)/bin/chroma2ctl
EXAMPLE_BIN := $(BUILD)/bin/overlapping_events
BENCH_IPC  := $(BUILD)/bin/bench-ipc
CLIENT_LIB := $(BUILD)/lib/libchroma2-client.a
CLIENT_SO  := $(BUILD)/lib/libchroma2-client.so
TEST_BIN   := $(BUILD)/bin/c2-tests
BENCH_BIN  := $(BUILD)/bin/bench-cpu
CUDA_LIB   := $(BUILD)/lib/libchroma2-cuda.a
CUDA_SO    := $(BUILD)/lib/libchroma2-cuda.so
CUDA_TESTS := $(BUILD)/bin/c2-tests-cuda
BENCH_GPU  := $(BUILD)/bin/bench-gpu
CUDA_BINS  := $(if $(filter 1,$(CUDA)),$(CUDA_LIB) $(CUDA_SO) $(CUDA_TESTS) $(BENCH_GPU))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

.PHONY: deps all install test test-gpu bench-cpu bench-gpu bench-ipc fuzz clean pyclient demo soak
all: deps $(ENGINE_LIB) $(PROTO_LIB) $(CLIENT_LIB) $(CLIENT_SO) $(DAEMON_BIN) $(CTL_BIN) $(TEST_BIN) $(TEST_CLIENT) \
     $(EXAMPLE_BIN) \
     $(BENCH_BIN) $(BENCH_IPC) \
     $(CUDA_BINS)
	@echo "built: $(ENGINE_LIB) $(PROTO_LIB) $(CLIENT_LIB) $(CLIENT_SO) $(DAEMON_BIN) $(TEST_BIN) $(BENCH_BIN) $(CUDA_BINS)$(if $(filter 1,$(CUDA)),, (CUDA parts off: no nvcc or CUDA=0))"

$(BUILD)/obj/%.o: %.c | $(NNG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(ENGINE_LIB): $(call obj,$(ENGINE_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(PROTO_LIB): $(call obj,$(PROTO_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

# the daemon's sources need GNU extensions (getopt_long, flock, SOCK_CLOEXEC)
$(BUILD)/obj/daemon/%.o: CPPFLAGS += -D_GNU_SOURCE

# With CUDA the daemon gets the cuda backend and is linked by nvcc (static
# CUDA runtime); it still runs, on the CPU engine, where no GPU is usable.
ifeq ($(CUDA),1)
DAEMON_SRC += daemon/backend_cuda.c
$(BUILD)/obj/daemon/%.o: CPPFLAGS += -DC2D_CUDA
DAEMON_LINK := $(NVCC) -arch=$(CUDA_ARCH) -Xcompiler -pthread
DAEMON_CUDA := $(CUDA_LIB)
else
DAEMON_LINK = $(CC) $(CFLAGS) -pthread
endif

$(DAEMON_BIN): $(call obj,$(DAEMON_SRC)) $(DAEMON_CUDA) $(PROTO_LIB) $(ENGINE_LIB) $(NNG_A)
	@mkdir -p $(dir $@)
	$(DAEMON_LINK) -o $@ $^ -lm -luv -lmsgpackc

# libchroma2-client carries the codec, the engine's result helpers and
# NNG, so its users link it alone (plus msgpack-c). The static library
# takes NNG's archive members in (an ar MRI script); the shared one keeps
# NNG's symbols to itself.
$(CLIENT_LIB): $(call obj,$(CLIENT_SRC) $(PROTO_SRC) $(ENGINE_SRC)) $(NNG_A)
	@mkdir -p $(dir $@)
	rm -f $@
	{ echo "create $@"; for a in $(filter %.a,$^); do echo "addlib $$a"; done; \
	  echo "addmod $(filter %.o,$^)"; echo save; echo end; } | $(AR) -M

$(CLIENT_SO): $(call obj,$(CLIENT_SRC) $(PROTO_SRC) $(ENGINE_SRC)) $(NNG_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -Wl,-soname,libchroma2-client.so.0 -Wl,--exclude-libs,ALL -o $@ $^ $(LDLIBS) -lmsgpackc

$(TEST_BIN): $(call obj,$(TEST_SRC)) $(CLIENT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lmsgpackc

$(CTL_BIN): $(call obj,tools/chroma2ctl.c) $(CLIENT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lmsgpackc

$(EXAMPLE_BIN): $(call obj,client/examples/overlapping_events.c) $(CLIENT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lmsgpackc

$(TEST_CLIENT): $(call obj,tests/test_client.c) $(CLIENT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lmsgpackc

$(BENCH_BIN): $(call obj,tools/bench_cpu.c tests/util.c) $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# CUDA parts: the kernels with nvcc; the CUDA test runner is runner.c again
# with the CUDA test list, linked by nvcc (static CUDA runtime).
$(BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(CPPFLAGS) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/obj/tests/runner-cuda.o: tests/runner.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -DC2T_CUDA -c $< -o $@

$(CUDA_LIB): $(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(CUDA_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

# the engine and the GPU runtime in one shared library (static CUDA
# runtime inside), for the cffi GPU tests (tests/gpu/)
$(CUDA_SO): $(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(CUDA_SRC)) $(call obj,$(ENGINE_SRC))
	@mkdir -p $(dir $@)
	$(NVCC) -arch=$(CUDA_ARCH) -shared -o $@ $^ -lm -Xcompiler -pthread

$(CUDA_TESTS): $(BUILD)/obj/tests/runner-cuda.o $(call obj,tests/test_cuda.c tests/test_queue.c tests/util.c) $(CUDA_LIB) $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(NVCC) -arch=$(CUDA_ARCH) -o $@ $^ -lm -Xcompiler -pthread

# The sanitizer build is a second tree with its own OPT; the runners'
# summary lines are folded into one by tests/run.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# ThreadSanitizer: a third tree; make test runs the engine's thread test and
# the daemon tests (daemon, client and chroma2ctl all built with it).
TSAN_FLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer
TSAN_TESTS := engine_threads_identical engine_team engine_channel_summary $(shell sed -n 's/.*X(\(daemon_[a-z0-9_]*\)).*/\1/p' tests/list.h)

# libFuzzer targets, built with clang and their own copy of the sources.
FUZZ_CC      ?= clang
FUZZ_FLAGS   := -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer,address,undefined -Ikernels/include
FUZZ_PROTO   := $(BUILD)/fuzz/fuzz-proto
FUZZ_SECONDS ?= 600
$(FUZZ_PROTO): tests/fuzz_proto.c $(PROTO_SRC) $(ENGINE_SRC) $(wildcard proto/*.h kernels/*/*.h kernels/include/chroma2/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz_proto.c $(PROTO_SRC) $(ENGINE_SRC) -lmsgpackc -lm -pthread

fuzz: $(FUZZ_PROTO)
	@mkdir -p $(BUILD)/fuzz/corpus-proto
	$(FUZZ_PROTO) -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -malloc_limit_mb=1024 \
	    -artifact_prefix=$(BUILD)/fuzz/ $(BUILD)/fuzz/corpus-proto tests/corpus/proto

# The Python client: a virtual environment in the build tree with what the
# package, its tests and the examples need (from PyPI), then the package
# itself compiled against this build's libchroma2-client.
PYTHON   ?= python3
VENV     := $(BUILD)/venv
PY_DEPS  := cffi numpy msgpack tqdm matplotlib trimesh pytest pytest-timeout setuptools wheel
PY_STAMP := $(BUILD)/pyclient.stamp
$(VENV)/.stamp:
	@tools/ensure-deps python
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(PY_DEPS)
	@touch $@

# pyclient/build is removed first: setuptools would keep an extension
# linked against an older libchroma2-client.a.
$(PY_STAMP): $(VENV)/.stamp $(CLIENT_LIB) $(wildcard pyclient/chroma2/*.py) pyclient/pyproject.toml pyclient/setup.py
	rm -rf pyclient/build
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-build-isolation --no-deps ./pyclient
	@touch $@

pyclient: $(PY_STAMP)

# make soak: many clients, random events, every result checked, the
# daemon's memory and descriptors sampled (tools/soak.py); make test runs
# a 45 s one.
SOAK_SECONDS ?= 1800
soak:
	@$(MAKE) --no-print-directory all $(PY_STAMP)
	$(VENV)/bin/python tools/soak.py --seconds $(SOAK_SECONDS)

# make demo: a private chroma2d (best backend), the overlapping-events
# example, the hit plot; see pyclient/examples/demo.py.
demo:
	@$(MAKE) --no-print-directory all $(PY_STAMP)
	$(VENV)/bin/python pyclient/examples/demo.py $(BUILD)/demo

# make test: dependencies first, then every suite; CUDA tests skip, saying
# why, where there is no GPU.
test:
	@tools/ensure-deps test
	@$(MAKE) --no-print-directory all $(PY_STAMP)
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/san OPT="$(SAN_FLAGS)" CUDA=0 $(BUILD)/san/bin/c2-tests \
	    $(BUILD)/san/bin/chroma2d $(BUILD)/san/bin/c2-test-client $(BUILD)/san/bin/chroma2ctl
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/tsan OPT="$(TSAN_FLAGS)" CUDA=0 $(BUILD)/tsan/bin/c2-tests \
	    $(BUILD)/tsan/bin/chroma2d $(BUILD)/tsan/bin/c2-test-client $(BUILD)/tsan/bin/chroma2ctl
	@$(MAKE) --no-print-directory $(FUZZ_PROTO)
	@C2T_DAEMON=$(DAEMON_BIN) tests/run "plain:$(TEST_BIN)" \
	    "asan+ubsan:env ASAN_OPTIONS=allocator_may_return_null=1 C2T_DAEMON=$(BUILD)/san/bin/chroma2d C2T_CLIENT=$(BUILD)/san/bin/c2-test-client \
	    C2T_CTL=$(BUILD)/san/bin/chroma2ctl $(BUILD)/san/bin/c2-tests" \
	    "tsan:env TSAN_OPTIONS=halt_on_error=1:exitcode=66 C2T_DAEMON=$(BUILD)/tsan/bin/chroma2d \
	    C2T_CLIENT=$(BUILD)/tsan/bin/c2-test-client C2T_CTL=$(BUILD)/tsan/bin/chroma2ctl \
	    $(BUILD)/tsan/bin/c2-tests $(TSAN_TESTS)" \
	    "python:env PYTHONPATH=tests $(VENV)/bin/pytest -q -p no:cacheprovider -p c2summary pyclient/tests" \
	    "soak:$(VENV)/bin/python tools/soak.py --seconds 45 --sample 2" \
	    "fuzz:tests/fuzz-smoke $(FUZZ_PROTO) tests/corpus/proto 20" "install:tests/install-check" \
	    "valgrind:tests/valgrind-check" \
	    $(if $(CUDA_BINS),"cuda:$(CUDA_TESTS)" "gpu-python:$(call gpu_pytest,$(VENV)/bin/python)")

# make test-gpu, on a machine with a GPU: the CUDA tests, the whole daemon
# and client suite (C and Python) against chroma2d --backend cuda, the
# cffi GPU tests.
# (the cffi GPU tests with python $(1); test-gpu takes the venv's)
gpu_pytest = env PYTHONPATH=tests $(1) -m pytest -q -p no:cacheprovider -p c2summary tests/gpu
test-gpu:
	@tools/ensure-deps test
	@$(MAKE) --no-print-directory $(CUDA_TESTS) $(CUDA_SO) $(TEST_BIN) $(DAEMON_BIN) $(CTL_BIN) $(TEST_CLIENT) $(PY_STAMP)
	@tests/run "cuda:$(CUDA_TESTS)" \
	    "daemon-on-cuda:env C2T_DAEMON=$(DAEMON_BIN) C2T_DAEMON_ARGS=--backend=cuda $(TEST_BIN) daemon_" \
	    "python-on-cuda:env CHROMA2_TEST_BACKEND=cuda PYTHONPATH=tests $(VENV)/bin/pytest -q -p no:cacheprovider \
	    -p c2summary pyclient/tests" \
	    "gpu-python:$(call gpu_pytest,$(VENV)/bin/python)"

$(BENCH_GPU): $(call obj,tools/bench_gpu.c tests/util.c) $(CUDA_LIB) $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(NVCC) -arch=$(CUDA_ARCH) -o $@ $^ -lm -Xcompiler -pthread

bench-gpu: $(BENCH_GPU)
	$(BENCH_GPU)

bench-cpu: $(BENCH_BIN)
	$(BENCH_BIN)

$(BENCH_IPC): $(call obj,tools/bench_ipc.c tests/util.c) $(CLIENT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lmsgpackc

bench-ipc: $(BENCH_IPC) $(DAEMON_BIN)
	$(BENCH_IPC)

# make install PREFIX=/usr/local DESTDIR=: binaries, the client library
# (shared and static), its header (with engine.h, which it includes), the
# pkg-config file, the systemd unit and the example configuration.
PREFIX     ?= /usr/local
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system
VERSION    := 0.1.0
install: $(DAEMON_BIN) $(CTL_BIN) $(CLIENT_LIB) $(CLIENT_SO)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/chroma2 \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/chroma2 $(DESTDIR)$(PREFIX)/share/doc/chroma2
	install -m 755 $(DAEMON_BIN) $(CTL_BIN) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(CLIENT_SO) $(DESTDIR)$(PREFIX)/lib/libchroma2-client.so.0
	ln -sf libchroma2-client.so.0 $(DESTDIR)$(PREFIX)/lib/libchroma2-client.so
	install -m 644 $(CLIENT_LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 client/include/chroma2/client.h kernels/include/chroma2/engine.h \
	    $(DESTDIR)$(PREFIX)/include/chroma2/
	sed 's|@PREFIX@|$(PREFIX)|; s|@VERSION@|$(VERSION)|' client/chroma2-client.pc.in \
	    >$(DESTDIR)$(PREFIX)/lib/pkgconfig/chroma2-client.pc
	sed 's|@BINDIR@|$(PREFIX)/bin|; s|@SYSCONFDIR@|$(SYSCONFDIR)|; s|@DOCDIR@|$(PREFIX)/share/doc/chroma2|' \
	    systemd/chroma2d.service.in >$(DESTDIR)$(UNITDIR)/chroma2d.service
	test -e $(DESTDIR)$(SYSCONFDIR)/chroma2/chroma2d.conf || \
	    install -m 644 systemd/chroma2d.conf $(DESTDIR)$(SYSCONFDIR)/chroma2/chroma2d.conf
	install -m 644 README.md proto/PROTOCOL.md $(DESTDIR)$(PREFIX)/share/doc/chroma2/

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
