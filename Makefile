# hybridlab: `make` builds ./hlab; `make test` builds and runs every test (ends "N passed, N failed");
# `make bench` runs the benchmark suite; `make deps` installs the Debian packages that are missing;
# `make MPI=1` builds ./hlab against Open MPI for `mpirun -np K ./hlab train` (README: MPI).
CC      ?= gcc
CFLAGS  ?= -O3 -march=native
HLAB_VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
CFLAGS  += -std=c11 -D_GNU_SOURCE -fopenmp -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Icore -Iblocks -I$(OBJDIR)
LDLIBS  = -lopenblas -lyaml -lsqlite3 -lm
OBJDIR  = build

CORE_SRC  = $(filter-out core/main.c,$(wildcard core/*.c))
BLOCK_SRC = $(wildcard blocks/*.c)
LIB_SRC   = $(CORE_SRC) $(BLOCK_SRC)
HDRS      = $(wildcard core/*.h blocks/*.h tests/*.h)
LIB_OBJ   = $(LIB_SRC:%.c=$(OBJDIR)/f/%.o)
LIB_OBJ_D = $(LIB_SRC:%.c=$(OBJDIR)/d/%.o)
LIB_OBJ_S = $(LIB_SRC:%.c=$(OBJDIR)/s/%.o)
LIB_OBJ_SD = $(LIB_SRC:%.c=$(OBJDIR)/sd/%.o)

# Tests: tests/test_*.c link the float engine; tests/dtest_*.c the double-precision engine
# (finite-difference gradient checks); tests/*.sh drive ./hlab end to end.
TEST_SRC  = $(wildcard tests/test_*.c)
DTEST_SRC = $(wildcard tests/dtest_*.c)
TEST_BIN  = $(TEST_SRC:tests/%.c=$(OBJDIR)/tests/%)
DTEST_BIN = $(DTEST_SRC:tests/%.c=$(OBJDIR)/tests/%)
STEST_BIN = $(TEST_SRC:tests/%.c=$(OBJDIR)/stests/%) $(DTEST_SRC:tests/%.c=$(OBJDIR)/stests/%)
SH_TESTS  = $(wildcard tests/t_*.sh)

PKGS = libopenblas-dev libyaml-dev libsqlite3-dev gnuplot-nox sqlite3
DEPS_STAMP = $(OBJDIR)/.deps
# The tests also open a report in headless Chromium and check SVGs with xmllint.
TEST_PKGS = chromium libxml2-utils
TEST_DEPS_STAMP = $(OBJDIR)/.deps-test

.PHONY: all deps deps-test test test-fast quickstart bench clean
# objects built through pattern rules are not intermediates: keep them for incremental builds
.SECONDARY: $(LIB_OBJ) $(LIB_OBJ_D) $(LIB_OBJ_S) $(LIB_OBJ_SD)
all: deps hlab

# Installs what is missing (as root, or through sudo when available).
deps: $(DEPS_STAMP)
deps-test: $(TEST_DEPS_STAMP)
INSTALL_MISSING = missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi; mkdir -p $(OBJDIR) && touch $@
$(DEPS_STAMP):
	@$(call INSTALL_MISSING,$(PKGS))
$(TEST_DEPS_STAMP): $(DEPS_STAMP)
	@$(call INSTALL_MISSING,$(TEST_PKGS))

# MPI (data-parallel training): `make MPI=1` links ./hlab against Open MPI. Only core/dist.c
# differs (mpicc, -DHLAB_MPI); build/hlab-mpi is that binary whatever MPI is, and `make test` runs
# it under mpirun. The flavor file relinks ./hlab when MPI=1 comes or goes.
MPI_PKGS = libopenmpi-dev openmpi-bin
MPI_DEPS_STAMP = $(OBJDIR)/.deps-mpi
MPICC ?= mpicc
LIB_OBJ_MPI = $(filter-out $(OBJDIR)/f/core/dist.o,$(LIB_OBJ)) $(OBJDIR)/m/core/dist.o
HLAB_MPI_BIN = $(OBJDIR)/hlab-mpi
FLAVOR = $(OBJDIR)/flavor
$(MPI_DEPS_STAMP): $(DEPS_STAMP)
	@$(call INSTALL_MISSING,$(MPI_PKGS))
$(OBJDIR)/m/core/dist.o: core/dist.c $(HDRS) | $(MPI_DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(CFLAGS) -DHLAB_MPI -c -o $@ $<
$(HLAB_MPI_BIN): $(LIB_OBJ_MPI) $(OBJDIR)/f/core/main.o
	$(MPICC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(FLAVOR): FORCE | $(DEPS_STAMP)
	@v='$(if $(filter 1,$(MPI)),mpi,plain)'; [ -f $@ ] && [ "$$(cat $@)" = "$$v" ] || echo "$$v" > $@

ifeq ($(MPI),1)
hlab: $(HLAB_MPI_BIN) $(FLAVOR)
	cp $(HLAB_MPI_BIN) $@
else
hlab: $(LIB_OBJ) $(OBJDIR)/f/core/main.o $(FLAVOR)
	$(CC) $(CFLAGS) -o $@ $(LIB_OBJ) $(OBJDIR)/f/core/main.o $(LDLIBS)
endif

$(OBJDIR)/f/%.o: %.c $(HDRS) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
$(OBJDIR)/d/%.o: %.c $(HDRS) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DHLAB_DOUBLE -c -o $@ $<
SANFLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
$(OBJDIR)/s/%.o: %.c $(HDRS) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O3,$(CFLAGS)) $(SANFLAGS) -c -o $@ $<

$(OBJDIR)/sd/%.o: %.c $(HDRS) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O3,$(CFLAGS)) $(SANFLAGS) -DHLAB_DOUBLE -c -o $@ $<

$(OBJDIR)/tests/test_%: tests/test_%.c $(LIB_OBJ) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(LIB_OBJ) $(LDLIBS)
$(OBJDIR)/tests/dtest_%: tests/dtest_%.c $(LIB_OBJ_D) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DHLAB_DOUBLE -Itests -o $@ $< $(LIB_OBJ_D) $(LDLIBS)
$(OBJDIR)/stests/test_%: tests/test_%.c $(LIB_OBJ_S) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O3,$(CFLAGS)) $(SANFLAGS) -Itests -o $@ $< $(LIB_OBJ_S) $(LDLIBS)
$(OBJDIR)/stests/dtest_%: tests/dtest_%.c $(LIB_OBJ_SD) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -O3,$(CFLAGS)) $(SANFLAGS) -DHLAB_DOUBLE -Itests -o $@ $< $(LIB_OBJ_SD) $(LDLIBS)

# hlab itself under AddressSanitizer + UBSan (the unit tests' objects): tests/t_badinput.sh feeds
# it every bad input, so a crash or an out-of-bounds read is a failure even when it exits 2.
HLAB_SAN = $(OBJDIR)/hlab-san
$(HLAB_SAN): $(LIB_OBJ_S) $(OBJDIR)/s/core/main.o
	$(CC) $(filter-out -O3,$(CFLAGS)) $(SANFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer targets (fuzz/README.md): clang builds the library again with coverage
# instrumentation. `make fuzz` builds them; `make fuzz-smoke` runs each for FUZZ_SECONDS.
FUZZ_CC      = clang
FUZZ_FLAGS   = -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -std=c11 -D_GNU_SOURCE -fopenmp -Wno-unused-command-line-argument -Wno-pass-failed -Icore -Iblocks -I$(OBJDIR)
FUZZ_TARGETS = $(patsubst fuzz/%.c,$(OBJDIR)/fuzz/%,$(wildcard fuzz/fuzz_*.c))
LIB_OBJ_Z    = $(LIB_SRC:%.c=$(OBJDIR)/z/%.o)
FUZZ_SECONDS ?= 20
.PHONY: fuzz fuzz-smoke
.SECONDARY: $(LIB_OBJ_Z)
FUZZ_DEPS_STAMP = $(OBJDIR)/.deps-fuzz
$(FUZZ_DEPS_STAMP): $(DEPS_STAMP)
	@$(call INSTALL_MISSING,clang)
$(OBJDIR)/z/%.o: %.c $(HDRS) | $(FUZZ_DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
$(OBJDIR)/fuzz/fuzz_%: fuzz/fuzz_%.c $(LIB_OBJ_Z) $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(LIB_OBJ_Z) $(LDLIBS)
fuzz: $(FUZZ_TARGETS)
fuzz-smoke: fuzz
	@fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# tests/test_fuzz_replay.c includes the fuzz targets
$(OBJDIR)/tests/test_fuzz_replay $(OBJDIR)/stests/test_fuzz_replay: $(wildcard fuzz/fuzz_*.c)

# The code version every run records: build/version.h changes only when `git describe` does,
# and only core/machine.c includes it.
VERSION_H = $(OBJDIR)/version.h
.PHONY: FORCE
$(VERSION_H): FORCE | $(DEPS_STAMP)
	@v='#define HLAB_VERSION "$(HLAB_VERSION)"'; [ -f $@ ] && [ "$$(cat $@)" = "$$v" ] || echo "$$v" > $@
$(OBJDIR)/f/core/machine.o $(OBJDIR)/d/core/machine.o $(OBJDIR)/s/core/machine.o $(OBJDIR)/sd/core/machine.o $(OBJDIR)/z/core/machine.o: $(VERSION_H)

# The whole suite: unit tests, gradient checks, end-to-end shell tests, and the unit tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer, and 10 s of each fuzz target.
test: all deps-test $(TEST_BIN) $(DTEST_BIN) $(STEST_BIN) $(HLAB_SAN) $(FUZZ_TARGETS) $(HLAB_MPI_BIN)
	@ASAN_OPTIONS=detect_leaks=0 tests/run.sh $(TEST_BIN) $(DTEST_BIN) $(SH_TESTS) $(STEST_BIN) tests/fuzz_smoke.sh

test-fast: all deps-test $(TEST_BIN) $(DTEST_BIN)
	@tests/run.sh $(TEST_BIN) $(DTEST_BIN) $(SH_TESTS)

# The main job: a small ablation sweep (experiments/quickstart.yaml) that ends in a report. The
# sweep trains only what results/quickstart.db lacks, so a second run only rewrites the report.
quickstart: all
	./hlab sweep experiments/quickstart.yaml --db results/quickstart.db --jobs 2 --quiet
	./hlab report experiments/quickstart.yaml --db results/quickstart.db
	@echo "open reports/quickstart/report.html in a browser, or read reports/quickstart/report.md"

# The benchmark suite (issue 7): sgemm peak, training throughput and time breakdown of five
# architectures, generation speed; every number into results/bench.db (table benchmarks), the
# report into reports/bench. Minutes, not seconds: the machine should be otherwise idle.
bench: all
	./hlab bench suite --db results/bench.db --out reports/bench
	@echo "open reports/bench/report.html in a browser, or read reports/bench/report.md"

clean:
	rm -rf $(OBJDIR)/f $(OBJDIR)/d $(OBJDIR)/s $(OBJDIR)/sd $(OBJDIR)/z $(OBJDIR)/m $(OBJDIR)/tests $(OBJDIR)/stests $(OBJDIR)/fuzz $(HLAB_SAN) $(HLAB_MPI_BIN) $(FLAVOR) hlab
