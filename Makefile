# stem - Stem sparse attention on the CPU.
#
#   make            library (build/libstem.a, build/libstem.so) and CLI (build/stem)
#   make demo       the main job on the built-in default workload
#   make test       every test (CMocka), conformance cases included
#   make bench      benchmarks (ratios measured in one run)
#   make install PREFIX=/usr/local
#
# Cross build for Arm: make CROSS=aarch64-linux-gnu- BUILD=build-aarch64

CROSS   ?=
CC      := $(CROSS)gcc
BUILD   ?= build
PREFIX  ?= /usr/local
OPT     ?= -O2
SAN     ?=

MACHINE := $(shell $(CC) -dumpmachine)
ifneq (,$(findstring x86_64,$(MACHINE)))
  ARCH := x86_64
else ifneq (,$(findstring aarch64,$(MACHINE)))
  ARCH := aarch64
else
  ARCH := other
endif

WARN    := -Wall -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration
CFLAGS  ?= $(OPT) -g
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(CFLAGS) $(WARN) -ffp-contract=off -fno-fast-math \
               -fopenmp -fPIC -Iinclude $(SAN)
# The library sees only its own folders; the tools see the public headers
# and their IO layer; tests and benchmarks also reach the internals.
LIB_CFLAGS := $(BASE_CFLAGS) -Isrc -Isimd -DSTEM_BUILDING -fvisibility=hidden
ALL_CFLAGS := $(BASE_CFLAGS) -Isrc -Isimd -Itools/io
LDLIBS  := -lsleef -lm
LDFLAGS ?=
ALL_LDFLAGS := -fopenmp $(SAN) $(LDFLAGS)

# ---------------------------------------------------------------- library
LIB_SRC    := $(wildcard src/*.c) $(wildcard src/check/*.c) $(wildcard simd/scalar/*.c)
ISA_DEFS   :=
ifeq ($(ARCH),x86_64)
  AVX2_SRC   := $(wildcard simd/avx2/*.c)
  AVX512_SRC := $(wildcard simd/avx512/*.c)
  AMX_SRC    := $(wildcard simd/amx/*.c)
  AVX512BF16_SRC := $(wildcard simd/avx512bf16/*.c)
  ISA_DEFS   += $(if $(AVX2_SRC),-DSTEM_HAVE_AVX2) $(if $(AVX512_SRC),-DSTEM_HAVE_AVX512)
  ISA_DEFS   += $(if $(AVX512BF16_SRC),-DSTEM_HAVE_AVX512BF16)
  ISA_DEFS   += $(if $(AMX_SRC),-DSTEM_HAVE_AMX)
endif
ifeq ($(ARCH),aarch64)
  NEON_SRC   := $(wildcard simd/neon/*.c)
  ISA_DEFS   += $(if $(NEON_SRC),-DSTEM_HAVE_NEON)
endif
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(AVX2_SRC:%.c=$(BUILD)/obj/%.o) \
           $(AVX512_SRC:%.c=$(BUILD)/obj/%.o) $(NEON_SRC:%.c=$(BUILD)/obj/%.o) \
           $(AMX_SRC:%.c=$(BUILD)/obj/%.o) $(AVX512BF16_SRC:%.c=$(BUILD)/obj/%.o)

SONAME := libstem.so.$(shell sed -n 's/^\#define STEM_VERSION_MAJOR \([0-9]*\)/\1/p' include/stem.h)

# ---------------------------------------------------------------- tool
IO_SRC  := $(wildcard tools/io/*.c)
CLI_SRC := $(wildcard tools/cli/*.c)
IO_OBJ  := $(IO_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
# the tool's modules without its main(): linked into tests too
CLI_MOD_OBJ := $(filter-out %/main.o,$(CLI_OBJ))
TOOL_LIBS := -lcjson -lpng

# ---------------------------------------------------------------- stem-mpi
# Built when Open MPI's mpicc is found (libopenmpi-dev), skipped otherwise;
# links the tool's modules and IO like the tests do.
MPICC   ?= $(if $(CROSS),,$(shell command -v mpicc 2>/dev/null))
MPI_SRC := $(wildcard tools/mpi/*.c)
MPI_OBJ := $(MPI_SRC:%.c=$(BUILD)/obj/%.o)
MPI_BIN := $(if $(MPICC),$(BUILD)/stem-mpi)

# ---------------------------------------------------------------- tests, bench
TEST_COMMON := $(wildcard tests/common/*.c)
TEST_SRC    := $(wildcard tests/test_*.c)
TEST_BIN    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_COMMON_OBJ := $(TEST_COMMON:%.c=$(BUILD)/obj/%.o)
BENCH_SRC   := $(wildcard bench/bench_*.c)
BENCH_BIN   := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
BENCH_COMMON_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/common/*.c))

.PHONY: all lib cli deps demo test tests bench install clean examples test-asan test-tsan fuzz mpi figures figures-check test-deps check-full
# keep the objects that pattern rules build on the way to a program
.SECONDARY:
all: lib cli mpi

lib: $(BUILD)/libstem.a $(BUILD)/$(SONAME)
cli: $(BUILD)/stem
mpi: $(MPI_BIN)
ifeq ($(MPICC),)
	@echo "stem-mpi skipped: mpicc not found (install libopenmpi-dev openmpi-bin)"
endif

$(BUILD)/obj/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) $(ISA_DEFS) -MMD -MP -c $< -o $@
# dispatch.c's STEM_HAVE_* follow the ISA folders: rebuild it when they change.
$(BUILD)/obj/src/dispatch.o: $(AVX2_SRC) $(AVX512_SRC) $(NEON_SRC) $(AMX_SRC) $(AVX512BF16_SRC)
$(BUILD)/obj/simd/scalar/%.o: simd/scalar/%.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/obj/simd/avx2/%.o: simd/avx2/%.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -DSTEM_HAVE_AVX2 -mavx2 -mfma -MMD -MP -c $< -o $@
$(BUILD)/obj/simd/avx512/%.o: simd/avx512/%.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -DSTEM_HAVE_AVX512 -mavx512f -mavx512vl -mavx512bw -mavx2 -mfma -MMD -MP -c $< -o $@
$(BUILD)/obj/simd/avx512bf16/%.o: simd/avx512bf16/%.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -DSTEM_HAVE_AVX512BF16 -mavx512bf16 -mavx512f -mavx512vl -mavx512bw -mavx2 -mfma -MMD -MP -c $< -o $@
$(BUILD)/obj/simd/amx/%.o: simd/amx/%.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -DSTEM_HAVE_AMX -mamx-tile -mamx-bf16 -mavx512f -mavx512vl -mavx512bw -mavx2 -mfma -MMD -MP -c $< -o $@
$(BUILD)/obj/simd/neon/%.o: simd/neon/%.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -DSTEM_HAVE_NEON -MMD -MP -c $< -o $@
$(BUILD)/obj/tools/mpi/%.o: tools/mpi/%.c
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CFLAGS) -Itools/cli -MMD -MP -c $< -o $@
$(BUILD)/obj/tools/%.o: tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -Itools/cli -MMD -MP -c $< -o $@
$(BUILD)/obj/bench/%.o: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ibench -Ibench/common -MMD -MP -c $< -o $@

$(BUILD)/libstem.a: $(LIB_OBJ)
	@rm -f $@
	$(CROSS)ar rcs $@ $^
$(BUILD)/$(SONAME): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
	ln -sf $(SONAME) $(BUILD)/libstem.so

$(BUILD)/stem: $(CLI_OBJ) $(IO_OBJ) $(BUILD)/libstem.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJ) $(IO_OBJ) $(BUILD)/libstem.a $(TOOL_LIBS) $(LDLIBS)

$(BUILD)/stem-mpi: $(MPI_OBJ) $(CLI_MOD_OBJ) $(IO_OBJ) $(BUILD)/libstem.a
	$(MPICC) $(ALL_LDFLAGS) -o $@ $(MPI_OBJ) $(CLI_MOD_OBJ) $(IO_OBJ) $(BUILD)/libstem.a $(TOOL_LIBS) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_COMMON_OBJ) $(CLI_MOD_OBJ) $(IO_OBJ) $(BUILD)/libstem.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(TEST_COMMON_OBJ) $(CLI_MOD_OBJ) $(IO_OBJ) $(BUILD)/libstem.a $(TOOL_LIBS) -lcmocka $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BENCH_COMMON_OBJ) $(IO_OBJ) $(BUILD)/libstem.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(BENCH_COMMON_OBJ) $(IO_OBJ) $(BUILD)/libstem.a $(TOOL_LIBS) -lopenblas $(LDLIBS)

EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
$(BUILD)/examples/%: examples/%.c $(BUILD)/libstem.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libstem.a $(ALL_LDFLAGS) $(LDLIBS)
examples: $(EXAMPLE_BIN)

deps:
	@sh tools/install-deps.sh

# The allocation-failure injector tests/cli/test_failalloc.sh preloads
# (built without sanitizers: a sanitizer build owns malloc, the script
# skips it there).
FAULT_LIB := $(BUILD)/tests/fault/libfailalloc.so
$(FAULT_LIB): tests/fault/failalloc.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -g -Wall -Wextra -fPIC -shared -o $@ $< -ldl

tests: $(TEST_BIN) $(BUILD)/stem $(BUILD)/$(SONAME) $(EXAMPLE_BIN) $(MPI_BIN) $(FAULT_LIB)

# The test command of README.md: every test binary, then the CLI tests.
test-deps:
	@sh tools/install-deps.sh test

test: test-deps
	@$(MAKE) --no-print-directory tests
	@sh tests/run-tests.sh $(BUILD)

# The commands of docs/ALGORITHM.md rerun: figures-check compares their
# output with the text and their pictures with docs/img/ (make test runs it
# through tests/cli/test_algorithm_doc.sh); figures rewrites both.
figures: cli
	@/usr/bin/python3 tools/doc_run.py update $(BUILD)
figures-check: cli
	@/usr/bin/python3 tools/doc_run.py check $(BUILD)

demo: deps
	@$(MAKE) --no-print-directory all
	@sh tools/demo.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
ASAN_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
test-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan SAN='$(ASAN_SAN)' tests
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	    sh tests/run-tests.sh build-asan

# The checker against every fault class doctored into every GPU capture at
# full length, and their genuine outputs and flash-style emulations
# (minutes; make test runs a short version: tests/cli/test_check_faults.sh),
# and how tight its limits sit on each capture (the table of
# docs/CHECKING.md, tests/cli/check_limits.py).
check-full: deps
	@$(MAKE) --no-print-directory $(BUILD)/stem $(FAULT_LIB)
	@/usr/bin/python3 tests/cli/check_faults.py $(BUILD)/stem --full
	@/usr/bin/python3 tests/cli/check_limits.py $(BUILD)/stem
	@FAILALLOC_MAXPOINTS=1000000 FAILALLOC_SMALLPOINTS=1000000 sh tests/cli/test_failalloc.sh $(BUILD)

# Race check: the determinism and stage tests built with clang
# -fsanitize=thread against LLVM's OpenMP with its Archer annotations.
test-tsan: deps
	@sh tools/check-races.sh build-tsan

# libFuzzer harnesses of tests/fuzz, FUZZ_SECONDS each; FUZZ_SEED=N repeats a run.
FUZZ_SECONDS ?= 60
FUZZ_SEED ?=
fuzz: deps
	@FUZZ_SEED=$(FUZZ_SEED) sh tests/fuzz/run.sh $(FUZZ_SECONDS)

# stem.pc's Libs carry an rpath to the installed library, so that a program
# linked with `pkg-config --libs stem` runs without LD_LIBRARY_PATH; not for
# PREFIX=/usr, whose lib the loader always searches.
PC_RPATH = $(if $(filter /usr /usr/,$(PREFIX)),,-Wl$(comma)-rpath$(comma)$${libdir} )
comma := ,
# the Python package `stem_attn` and stem_dump.py (README.md, Python)
PYTHONDIR ?= $(PREFIX)/lib/python3/dist-packages
install: lib cli
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/stem.h include/stem_check.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libstem.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/$(SONAME) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libstem.so
	install -m 755 $(BUILD)/stem $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@RPATH@|$(PC_RPATH)|' -e 's|@VERSION@|$(shell sed -n 's/^\#define STEM_VERSION_STRING "\(.*\)"/\1/p' include/stem.h)|' \
	    tools/stem.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/stem.pc
	install -d $(DESTDIR)$(PYTHONDIR)/stem_attn
	install -m 644 python/stem_attn/*.py $(DESTDIR)$(PYTHONDIR)/stem_attn/
	install -m 644 python/stem_attn/py.typed $(DESTDIR)$(PYTHONDIR)/stem_attn/
	install -m 644 tools/stem_dump.py $(DESTDIR)$(PYTHONDIR)/

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
