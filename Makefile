# spr — build, test, install.
#   make            build libspr.so/.a, spr-run, spr, spr-sandbox (+ worker)
#   make demo       run examples/hello.py through the LocalEngine
#   make check      lint, unit + integration tests (installs deps first)
#   make lint       static analysis: cppcheck and clang-tidy, fails on any finding
#   make hostile    escape attempts, with namespaces and again degraded
#   make check-vm   cgroup v2 self-test + VM_SUITES (+ rootless podman) inside a qemu VM (tests/vm/)
#   make asan       build with ASan+UBSan and run the tests
#   make fuzz       libFuzzer targets (FUZZ_SECONDS each, default 600)
#   make mutation   mutation spot-checks: each tests/mutation/*.patch must make its tests fail
#   make bench      benchmarks, figures into bench/RESULTS.md
#   make install PREFIX=/usr/local DESTDIR=
.DEFAULT_GOAL := all
SHELL := /bin/bash

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
LIBEXECDIR ?= $(PREFIX)/libexec
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=

B ?= build
CC ?= cc
# The interpreter that runs the test harness (any Python 3 will do; the
# sandboxed runs use the engine's own --python).
TEST_PYTHON ?= $(shell command -v /usr/bin/python3 2>/dev/null || command -v python3)
FUZZ_SECONDS ?= 600

PKGS := libseccomp libcap-ng libnl-3.0 libnl-route-3.0 libcjson
DEPS_STAMP := $(B)/.deps-ok
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread
# spr-sandbox starts once per run: its libraries are linked in statically
# where Debian ships the archive (each shared library costs its loading
# and relocation, ~0.2 ms per run together); cJSON has no archive.
SANDBOX_STATIC := seccomp cap-ng nl-route-3 nl-3
SANDBOX_LIBS = -Wl,--as-needed -Wl,-Bstatic $(SANDBOX_STATIC:%=-l%) -Wl,-Bdynamic \
	$(filter-out $(SANDBOX_STATIC:%=-l%),$(PKG_LIBS))
# Outside sanitizer builds it is a static PIE altogether (libc too; still
# randomised): a dynamic spr-sandbox took ~55 page faults more per run
# (the loader mapping and relocating libc in the server, then copy-on-write
# in its forks), and a fault costs 20-50 us on a virtual machine.
# Sanitizer builds keep libc shared: ASan's runtime cannot be static.
SANDBOX_LINK = $(if $(SANITIZE),$(SANDBOX_LIBS),-static-pie $(SANDBOX_STATIC:%=-l%) -lpthread -lm)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wvla
HARDEN := -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection
OPT ?= -O2 -g
SANITIZE ?=
CFLAGS_ALL = -std=gnu11 $(OPT) $(WARN) $(HARDEN) $(SANITIZE) -fPIC -fvisibility=hidden \
	-D_GNU_SOURCE -I$(B)/gen -Iinclude -Isrc -Isrc/core $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SANITIZE) -Wl,-z,relro,-z,now $(LDFLAGS)

# Which process each source runs in (DESIGN.md "Where things live"):
#   shared   src/core, src/protocol, src/cgroup/common.c  (both sides)
#   library  src/policy, src/engine, src/local, src/docker, src/cgroup/detect.c
#   helper   src/namespace, src/cgroup/run.c               (spr-sandbox only)
# libspr links the library and shared parts only: it never needs libnl or
# libcap-ng, which only the helper uses.
SHARED_SRCS := $(sort $(wildcard src/core/*.c src/protocol/*.c)) src/cgroup/common.c
HELPER_SRCS := $(filter-out src/namespace/main.c,$(sort $(wildcard src/namespace/*.c))) \
	src/cgroup/run.c
LIB_SRCS := $(SHARED_SRCS) $(sort $(wildcard src/policy/*.c src/engine/*.c src/local/*.c \
	src/docker/*.c)) src/cgroup/detect.c
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/obj/%.o)
HELPER_OBJS := $(HELPER_SRCS:%.c=$(B)/obj/%.o) $(SHARED_SRCS:%.c=$(B)/obj/%.o)
LIB_PKGS := libseccomp libcjson
LIB_LIBS = $(shell pkg-config --libs $(LIB_PKGS) 2>/dev/null) -lm -pthread
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)
HEADERS := include/spr.h $(wildcard src/*/*.h)

LIBEXEC_OUT := $(B)/libexec/spr
PROGRAMS := $(B)/libspr.so $(B)/libspr.a $(B)/spr-run $(B)/spr \
	$(LIBEXEC_OUT)/spr-sandbox $(LIBEXEC_OUT)/spr-sandbox-static $(LIBEXEC_OUT)/spr_worker.py \
	$(LIBEXEC_OUT)/runtime.Dockerfile

.PHONY: FORCE all deps demo check lint unit integration hostile cgroup rootless asan fuzz fuzz-smoke bench mutation \
	install clean check-worker check-vm check-demo check-install check-python compat compat-short check-long
all: $(PROGRAMS)

# scripts/deps.sh is idempotent and fast when everything is present; the
# stamp keeps it off the path of every incremental build.
$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p $(B)
	@scripts/deps.sh build
	@touch $@
deps: $(DEPS_STAMP)

# Installation paths compiled into the library. Rewritten only when they
# change, so `make install PREFIX=...` rebuilds exactly what depends on it.
$(B)/gen/spr_config.h: FORCE
	@mkdir -p $(dir $@)
	@printf '#define SPR_LIBEXECDIR "%s"\n' '$(LIBEXECDIR)/spr' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(B)/obj/%.o: %.c $(HEADERS) $(B)/gen/spr_config.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/libspr.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/libspr.so: $(LIB_OBJS)
	$(CC) -shared -Wl,-soname,libspr.so.4 -o $@ $^ $(LDFLAGS_ALL) $(LIB_LIBS)

$(B)/spr-run: $(B)/obj/src/cli/spr-run.o $(B)/libspr.a
	$(CC) -o $@ $^ $(LDFLAGS_ALL) $(LIB_LIBS)

$(B)/spr: $(B)/obj/src/cli/spr.o $(B)/libspr.a
	$(CC) -o $@ $^ $(LDFLAGS_ALL) $(LIB_LIBS)

# spr-sandbox's own objects (and the shared ones), for the helper and for
# unit tests of its code.
$(B)/libspr-sandbox.a: $(HELPER_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(LIBEXEC_OUT)/spr-sandbox: $(B)/obj/src/namespace/main.o $(B)/libspr-sandbox.a
	@mkdir -p $(dir $@)
	@echo "$(CC) -o $@ $^ $(LDFLAGS_ALL) $(SANDBOX_LINK)"
	@$(CC) -o $@ $^ $(LDFLAGS_ALL) $(SANDBOX_LINK) 2>$@.log || { cat $@.log >&2; rm -f $@.log; exit 1; }
	@grep -v -e 'statically linked applications' -e ': in function' $@.log >&2 || true
	@rm -f $@.log

# The same program linked statically: the DockerEngine hands it to every
# container (its agent, spr-sandbox --container), whatever libc the image
# has. Never sanitized (a static binary cannot carry ASan's runtime): a
# sanitizer build compiles these objects a second time without it.
STATIC_OBJ := $(if $(SANITIZE),obj-static,obj)
STATIC_LIB := $(if $(SANITIZE),$(B)/libspr-sandbox-static.a,$(B)/libspr-sandbox.a)
$(B)/obj-static/%.o: %.c $(HEADERS) $(B)/gen/spr_config.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(SANITIZE),$(CFLAGS_ALL)) -c $< -o $@
$(B)/libspr-sandbox-static.a: $(patsubst $(B)/obj/%,$(B)/obj-static/%,$(HELPER_OBJS))
	@rm -f $@
	ar rcs $@ $^
# glibc's notes that name lookups would need its shared libraries are
# dropped: spr-sandbox makes none (libcap-ng and libnl merely could).
$(LIBEXEC_OUT)/spr-sandbox-static: $(B)/$(STATIC_OBJ)/src/namespace/main.o $(STATIC_LIB)
	@mkdir -p $(dir $@)
	@echo "$(CC) -static -o $@ $^ ..."
	@$(CC) -static -s -o $@ $^ -Wl,-z,relro,-z,now $(LDFLAGS) $(SANDBOX_STATIC:%=-l%) \
		-lpthread -lm 2>$@.log || { cat $@.log >&2; rm -f $@.log; exit 1; }
	@grep -v -e 'statically linked applications' -e ': in function' $@.log >&2 || true
	@rm -f $@.log

# The worker, which runs every sandboxed run.
$(LIBEXEC_OUT)/spr_worker.py: $(LIBEXEC_OUT)/%: worker/%
	@mkdir -p $(dir $@)
	install -m 0644 $< $@

# The DockerEngine builds its default runtime image from this file.
$(LIBEXEC_OUT)/runtime.Dockerfile: docker/runtime/Dockerfile
	@mkdir -p $(dir $@)
	install -m 0644 $< $@

# ---- tests ---------------------------------------------------------------

$(B)/tests/%: tests/unit/%.c $(B)/libspr.a $(B)/libspr-sandbox.a tests/unit/unit.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CHECK_CFLAGS) -Itests/unit -o $@ $< $(B)/libspr.a \
		$(B)/libspr-sandbox.a $(LDFLAGS_ALL) $(PKG_LIBS) $(CHECK_LIBS)

# Test tools (run by the integration suites, never installed).
TOOL_SRCS := $(sort $(wildcard tests/tools/*.c))
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(B)/tests/tools/%)
$(B)/tests/tools/%: tests/tools/%.c $(B)/libspr.a $(B)/libspr-sandbox.a | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(B)/libspr.a $(B)/libspr-sandbox.a $(LDFLAGS_ALL) $(PKG_LIBS)

# Static analysis of src/ (scripts/lint.sh: the levels; .clang-tidy). The
# build's own language and include flags, without -O2/_FORTIFY_SOURCE: the
# fortified inline wrappers would hide the libc calls the checkers know.
LINT_CFLAGS = -std=gnu11 -D_GNU_SOURCE -I$(B)/gen -Iinclude -Isrc -Isrc/core $(PKG_CFLAGS)
lint: $(B)/gen/spr_config.h | $(DEPS_STAMP)
	@scripts/deps.sh lint
	@scripts/lint.sh $(B) $(LINT_CFLAGS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; CK_VERBOSITY=normal $$t; done

check-worker: $(LIBEXEC_OUT)/spr_worker.py
	$(TEST_PYTHON) -m unittest discover -s tests/worker -t . -v 2>&1 | tail -n 5

integration: all $(TOOL_BINS)
	SPR_BUILD=$(abspath $(B)) $(TEST_PYTHON) tests/run.py integration

hostile: all $(TOOL_BINS)
	SPR_BUILD=$(abspath $(B)) $(TEST_PYTHON) tests/run.py hostile
	@echo "== hostile again, degraded: user namespaces refused, --allow-degraded"
	SPR_TEST_DEGRADED=1 SPR_BUILD=$(abspath $(B)) $(TEST_PYTHON) tests/run.py hostile

cgroup: all $(TOOL_BINS)
	SPR_BUILD=$(abspath $(B)) $(TEST_PYTHON) tests/run.py cgroup

# CPython's own test modules inside the sandbox and outside, compared test
# by test (tests/compat/compat.py; every difference and its reason in
# tests/compat/differences.py and docs/SECURITY.md). make compat: the whole
# list on both engines (the container base image gets the host's test
# package: tests/compat/base-image.sh) and rewrites SECURITY.md's figures;
# make compat-short (make check): a few modules, LocalEngine.
compat: all
	@scripts/deps.sh compat
	@set -e; $(WITH_DOCKER_ENV) tests/compat/base-image.sh spr-base:bookworm spr-base-compat:bookworm; \
	SPR_DOCKER_BASE_IMAGE=spr-base-compat:bookworm $(TEST_PYTHON) tests/compat/compat.py \
		--engines local,docker --report $(abspath $(B))/compat.json --doc docs/SECURITY.md $(COMPAT_ARGS)

compat-short: all
	@scripts/deps.sh compat
	SPR_BUILD=$(abspath $(B)) $(TEST_PYTHON) tests/compat/compat.py --short --engines local

# The same suites again as an unprivileged user (rootless LocalEngine).
rootless: all $(TOOL_BINS)
	scripts/rootless-tests.sh $(B) integration hostile cgroup

# Mutation spot-checks (docs/SECURITY.md §6): each tests/mutation/*.patch
# weakens one isolation layer; tests/mutation/run.sh checks the patch's
# tests pass unmutated (the control), then applies it to a copy of the
# tree, rebuilds and runs them: one must fail. Not part of `make check`.
# MUTATIONS: patch names or numbers (default: all); the docker ones start
# the test daemon as `make docker` does.
MUTATIONS ?=
mutation: all $(TOOL_BINS)
	@scripts/deps.sh test
	TEST_PYTHON=$(TEST_PYTHON) tests/mutation/run.sh $(MUTATIONS)

# make check: every suite once on each engine (under 40 minutes here);
# make check-long: the same code again where the host differs (a pure
# cgroup v2 VM, with rootless runs and rootless podman enforcing limits;
# ASan/UBSan), about 20 minutes more. .ci/run runs both.
STAGE = scripts/stage.sh
check: all
	@scripts/deps.sh test
	@$(STAGE) lint $(MAKE) --no-print-directory lint
	@$(STAGE) unit $(MAKE) --no-print-directory unit
	@$(STAGE) check-worker $(MAKE) --no-print-directory check-worker
	@$(STAGE) check-demo $(MAKE) --no-print-directory check-demo
	@$(STAGE) check-install $(MAKE) --no-print-directory check-install
	@$(STAGE) check-python $(MAKE) --no-print-directory check-python
	@$(STAGE) fuzz-smoke $(MAKE) --no-print-directory fuzz-smoke
	@$(STAGE) integration $(MAKE) --no-print-directory integration
	@$(STAGE) compat-short $(MAKE) --no-print-directory compat-short
	@$(STAGE) hostile $(MAKE) --no-print-directory hostile
	@$(STAGE) cgroup $(MAKE) --no-print-directory cgroup
	@$(STAGE) rootless $(MAKE) --no-print-directory rootless
	@$(STAGE) docker $(MAKE) --no-print-directory docker
	@$(STAGE) podman $(MAKE) --no-print-directory podman PODMAN_SUITES=hostile PODMAN_ROOTLESS_SUITES=hostile

check-long: all
	@$(STAGE) check-vm $(MAKE) --no-print-directory check-vm VM_ARGS="--env SPR_SOAK_RUNS=200"
	@$(STAGE) asan $(MAKE) --no-print-directory asan ASAN_EXTRA=docker DOCKER_HOSTILE=0

# Pure cgroup v2, whatever the host has: tests/vm/run-vm.sh boots a qemu VM
# (cgroup_no_v1=all) over the host root and runs the guest self-test, then
# each suite of VM_SUITES that has tests, inside. VM_TIMEOUT bounds each VM
# run (software emulation: the cgroup suite takes 7-15 min, mostly its soak);
# VM_ARGS go to run-vm.sh too (--mem MB, --env NAME=VALUE, e.g. SPR_SOAK_RUNS=200).
# VM_ROOTLESS_SUITES run again as an unprivileged user inside a delegated v2
# subtree (scripts/rootless-tests.sh), the way a Delegate=yes unit runs spr.
# VM_PODMAN=1: rootless podman inside the VM, where cgroup v2 lets it enforce
# limits (tests/vm/guest-podman-rootless.sh: a user with subordinate ranges
# and a delegated subtree runs tests/podman; the host runs them too, where
# rootless podman cannot enforce limits). Needs podman and the base rootfs
# tarball on the host (the VM has no network): both are made here first.
VM_SUITES ?= cgroup hostile
VM_ROOTLESS_SUITES ?= cgroup hostile
VM_PODMAN ?= 1
VM_TIMEOUT ?= 1800
VM_ARGS ?=
VM_RUN = tests/vm/run-vm.sh --timeout $(VM_TIMEOUT) --env SPR_BUILD=$(abspath $(B)) $(VM_ARGS) --
check-vm: all $(TOOL_BINS)
	$(VM_RUN) sh tests/vm/guest-selftest.sh
	@rc=0; for s in $(foreach s,$(VM_SUITES),$(if $(wildcard tests/$(s)/test_*.py),$(s))); do \
		echo "== $$s in the cgroup v2 VM"; \
		$(VM_RUN) $(TEST_PYTHON) tests/run.py $$s || rc=1; \
	done; \
	if [ -n "$(VM_ROOTLESS_SUITES)" ]; then echo "== $(VM_ROOTLESS_SUITES) rootless in the cgroup v2 VM"; \
		$(VM_RUN) sh scripts/rootless-tests.sh $(abspath $(B)) $(VM_ROOTLESS_SUITES) || rc=1; \
	fi; \
	if [ "$(VM_PODMAN)" = 1 ]; then echo "== tests/podman, rootless podman in the cgroup v2 VM"; \
		scripts/deps.sh podman >/dev/null && tarball=$$(scripts/dockerd-for-tests.sh tarball) && \
		SPR_VM_MODULES="fuse $$SPR_VM_MODULES" tests/vm/run-vm.sh --timeout $(VM_TIMEOUT) --mem 3072 \
			--env SPR_TARBALL_CACHE="$$(dirname "$$tarball")" $(VM_ARGS) -- \
			bash tests/vm/guest-podman-rootless.sh $(abspath $(B)) || rc=1; \
	fi; exit $$rc

# ASAN_EXTRA=docker adds the DockerEngine suites (pool threads, admin).
# spr-sandbox's sanitizer reports go to files in $(SANITIZER_DIR) (its
# stderr is the code's), a path compiled into sanitizer builds of
# spr-sandbox (src/namespace/main.c): the build directory's own, so two
# checkouts' `make asan` never empty or read each other's. World-writable:
# a sandbox process that has left root may have to write there too.
ASAN_EXTRA ?=
ASAN_B := build-asan
SANITIZER_DIR = $(abspath $(B))/sanitizer
$(B)/obj/src/namespace/main.o: CFLAGS_ALL += $(if $(SANITIZE),-DSPR_SANITIZER_DIR='"$(SANITIZER_DIR)"')
asan:
	@scripts/deps.sh test
	@rm -rf $(ASAN_B)/sanitizer && mkdir -p $(ASAN_B) && mkdir -m 1777 $(ASAN_B)/sanitizer
	$(MAKE) --no-print-directory B=$(ASAN_B) OPT="-O1 -g -fno-omit-frame-pointer" \
		SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=all" \
		unit integration $(ASAN_EXTRA)
	@if ls $(ASAN_B)/sanitizer/* >/dev/null 2>&1; then \
		echo "sanitizer reports from spr-sandbox:"; cat $(ASAN_B)/sanitizer/*; exit 1; \
	else echo "asan: no sanitizer reports from spr-sandbox"; fi

# ---- fuzzing (clang + libFuzzer) -------------------------------------------

FUZZ_CFLAGS = -std=gnu11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE \
	-I$(B)/gen -Iinclude -Isrc -Isrc/core $(PKG_CFLAGS)
$(B)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(HEADERS) $(B)/gen/spr_config.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRCS) $(PKG_LIBS)

# Each target's log is $(B)/fuzz/fuzz_X.log, a crash's input
# $(B)/fuzz/crash-* (add it to tests/fuzz/seeds/X/ as crash-<what> once
# fixed); a crash, a leak or any sanitizer report fails the target.
fuzz: $(FUZZ_BINS) $(B)/libspr.so
	@scripts/deps.sh test
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p $(B)/fuzz/corpus-$$n; \
		echo "== $$n for $(FUZZ_SECONDS)s"; \
		if ! $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus-$$n \
			tests/fuzz/seeds/$${n#fuzz_} >$(B)/fuzz/$$n.log 2>&1; then \
			tail -n 40 $(B)/fuzz/$$n.log; exit 1; fi; \
		grep -E '^#[0-9]+[[:space:]]+DONE|^Done |^stat::(number_of_executed_units|new_units_added)' \
			$(B)/fuzz/$$n.log; done
	@echo "== fuzz_python_decode for $(FUZZ_SECONDS)s"
	@SPR_LIBRARY=$(abspath $(B))/libspr.so $(TEST_PYTHON) tests/fuzz/fuzz_python_decode.py \
		--seconds $(FUZZ_SECONDS) --corpus $(B)/fuzz/corpus-fuzz_python_decode

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=15

# ---- demo / bench ----------------------------------------------------------

demo: all
	@echo '$$ $(B)/spr-run --json --input '\''{"name": "spr", "numbers": [3, 4, 5]}'\'' examples/hello.py'
	@$(B)/spr-run --json --input '{"name": "spr", "numbers": [3, 4, 5]}' examples/hello.py

$(B)/bench/%: bench/%.c bench/bench.h $(B)/libspr.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(B)/libspr.a $(LDFLAGS_ALL) $(PKG_LIBS)

bench: all $(B)/bench/run_latency $(B)/bench/venv_latency $(B)/bench/preload_latency
	SPR_BUILD=$(abspath $(B)) $(TEST_PYTHON) bench/run.py $(BENCH_ARGS)
	SPR_BUILD=$(abspath $(B)) $(TEST_PYTHON) bench/memory.py
	SPR_BUILD=$(abspath $(B)) $(TEST_PYTHON) bench/streaming.py

# Memory per idle prepared sandbox and per run in flight (PSS, run cgroup
# charge): section MEMORY of bench/RESULTS.md.
bench-memory: all
	SPR_BUILD=$(abspath $(B)) $(TEST_PYTHON) bench/memory.py

# ---- docker test environment -------------------------------------------------
# A private dockerd for the DockerEngine tests (no registry, host networking
# untouched; scripts/dockerd-for-tests.sh) with the base image spr-base:bookworm
# and the runtime image spr-runtime:test built from docker/runtime/Dockerfile.
# One per checkout: its directory is /var/lib/spr-test-docker-<id of this
# checkout's path> (SPR_TEST_DOCKER_DIR overrides), so clones side by side
# each test against their own daemon; likewise the sshd of bench-docker and
# tests/docker/test_remote.py (/var/lib/spr-test-sshd-<id>).
# Idempotent; the last line of output is `export DOCKER_HOST=...`, the one
# before it `export SPR_TEST_DOCKERD_STARTED=<pid>` (empty: the daemon was
# already running, and is not this caller's to stop):
#   eval "$(make -s docker-env-start)"; ...; make docker-env-stop
# --network none: the build needs no network, and BuildKit's RUN fails on a
# daemon without a bridge ("network bridge not found") unless told so.
.PHONY: bench-memory docker bench-docker docker-env-start docker-env-stop podman bench-podman
docker-env-start:
	@scripts/deps.sh docker
	@set -e; env=$$(scripts/dockerd-for-tests.sh start); eval "$$env"; \
	ctx=$$(mktemp -d); trap 'rm -rf "$$ctx"' EXIT; \
	cp docker/runtime/Dockerfile "$$ctx"/; \
	out=$$(docker build --network none --build-arg BASE_IMAGE=spr-base:bookworm \
		--build-arg SPR_WORKER_VERSION=test \
		-t spr-runtime:test "$$ctx" 2>&1) || { echo "$$out" >&2; \
		[ -z "$$SPR_TEST_DOCKERD_STARTED" ] || scripts/dockerd-for-tests.sh stop "$$SPR_TEST_DOCKERD_STARTED"; \
		exit 1; }; \
	echo "docker-env-start: built spr-runtime:test" >&2; \
	echo "$$env"
docker-env-stop:
	@scripts/dockerd-for-tests.sh stop

# The DockerEngine suites against the test daemon: tests/docker, then the
# SPEC behaviour suite (tests/integration) and the hostile suite (the same
# sandbox, inside a container) with SPR_TEST_ENGINE=docker. A
# daemon this target started is stopped again, by the pid its start printed
# (`stop PID`: never a daemon someone else started, nor one restarted since);
# one already running is kept. DOCKER_HOSTILE=0 leaves the hostile suite
# out (make check's asan pass: make docker ran it already).
DOCKER_HOSTILE ?= 1
# Last, no container labelled as spr's (SPR_LABEL_MANAGED) may be left: every
# engine of every suite stopped its pool (within 30 s: --rm removes them).
WITH_DOCKER_ENV = env=$$($(MAKE) -s --no-print-directory docker-env-start); eval "$$env"; \
	[ -z "$$SPR_TEST_DOCKERD_STARTED" ] || \
		trap "scripts/dockerd-for-tests.sh stop $$SPR_TEST_DOCKERD_STARTED" EXIT; \
	export SPR_BUILD=$(abspath $(B)) SPR_DOCKER_BASE_IMAGE=spr-base:bookworm;
docker: all $(TOOL_BINS)
	@set -e; $(WITH_DOCKER_ENV) export SPR_REQUIRE_DOCKER=1; \
	$(TEST_PYTHON) tests/run.py docker; \
	SPR_TEST_ENGINE=docker $(TEST_PYTHON) tests/run.py integration; \
	if [ "$(DOCKER_HOSTILE)" = 1 ]; then \
		SPR_TEST_ENGINE=docker $(TEST_PYTHON) tests/run.py hostile; fi; \
	$(if $(SANITIZE),,scripts/deps.sh test; $(TEST_PYTHON) -m pytest -q tests/python -k docker;) \
	for i in $$(seq 60); do \
		left=$$(docker ps -aq --filter label=io.spr.managed); [ -z "$$left" ] && break; sleep 0.5; \
	done; \
	if [ -n "$$left" ]; then echo "docker: spr containers left after the suites:" >&2; \
		docker ps -a --filter label=io.spr.managed >&2; exit 1; fi

# The DockerEngine through Podman (SPEC §5 "Podman"), on this checkout's own
# podman storage (scripts/podman-for-tests.sh): rootful, the docker suite
# with podman behind the `docker` on PATH (the engine finds out itself),
# then the SPEC behaviour suite and the hostile suite with --engine podman;
# then tests/podman: a remote podman service (--docker-host), and rootless,
# as a test user with subordinate ranges made for it and removed afterwards
# (on a cgroup v1 host it fails closed, runs degraded when asked, and says
# so; where cgroup v2 delegates the controllers it checks they are used).
WITH_PODMAN_ENV = env=$$(scripts/podman-for-tests.sh start); eval "$$env"; \
	trap "scripts/podman-for-tests.sh stop" EXIT; \
	export SPR_BUILD=$(abspath $(B)) SPR_DOCKER_BASE_IMAGE=spr-base:bookworm \
		SPR_REQUIRE_DOCKER=1 SPR_TEST_PODMAN=1;
# PODMAN_SUITES: `make check` runs the hostile suite through podman and
# tests/podman only (the engine's code is docker's, whose suites make docker
# runs; the docker suite through podman takes 8.5 minutes, integration 8).
PODMAN_SUITES ?= docker integration hostile
# PODMAN_ROOTLESS_SUITES run again as the rootless podman test user
# (scripts/rootless-tests.sh with SPR_TEST_PODMAN_ROOTLESS=1). On a cgroup v1
# host its runs are degraded to rlimits (--allow-degraded, and the suites
# expect isolation to say so); the limits themselves are make check-vm's.
# docker-engine: the docker suite's engine tests (test_docker, test_crossrun)
# with a `docker` that is the user's podman.
PODMAN_ROOTLESS_SUITES ?= hostile integration docker-engine
PODMAN_ROOTLESS_ENV = SPR_TEST_USER=$$SPR_TEST_PODMAN_USER SPR_TEST_ENGINE=podman \
	SPR_TEST_PODMAN_ROOTLESS=1 SPR_DOCKER_BASE_IMAGE=spr-base:bookworm \
	SPR_TEST_PODMAN_DEGRADED=$$(test "$$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs && echo 0 || echo 1) \
	XDG_RUNTIME_DIR=/run/user/$$(id -u $$SPR_TEST_PODMAN_USER) \
	SPR_TEST_PASS_ENV="SPR_TEST_ENGINE SPR_TEST_PODMAN_ROOTLESS SPR_TEST_PODMAN_DEGRADED \
	SPR_DOCKER_BASE_IMAGE XDG_RUNTIME_DIR SPR_TEST_PODMAN SPR_REQUIRE_DOCKER"
podman: all $(TOOL_BINS)
	@set -e; $(WITH_PODMAN_ENV) \
	for suite in $(PODMAN_SUITES); do \
		echo "== $$suite through podman"; \
		if [ $$suite = docker ]; then \
			PATH="$$SPR_TEST_PODMAN_SHIM:$$PATH" $(TEST_PYTHON) tests/run.py docker; \
		else SPR_TEST_ENGINE=podman $(TEST_PYTHON) tests/run.py $$suite; fi; \
	done; \
	uenv=$$(scripts/podman-for-tests.sh rootless-start); eval "$$uenv"; \
	trap "scripts/podman-for-tests.sh rootless-stop; scripts/podman-for-tests.sh stop" EXIT; \
	$(TEST_PYTHON) tests/run.py podman; \
	for suite in $(PODMAN_ROOTLESS_SUITES); do \
		echo "== $$suite through rootless podman as $$SPR_TEST_PODMAN_USER"; \
		if [ $$suite = docker-engine ]; then \
			$(PODMAN_ROOTLESS_ENV) SPR_TEST_PODMAN_SHIM=1 SPR_TEST_PODMAN=1 \
			SPR_TEST_RUN_ARGS="-k docker.test_docker. -k docker.test_crossrun." \
			sh scripts/rootless-tests.sh $(B) docker; \
		else $(PODMAN_ROOTLESS_ENV) sh scripts/rootless-tests.sh $(B) $$suite; fi; \
	done

# The DockerEngine side by side: cold docker run, docker exec, warm pool; and
# the warm pool again through SSH (a private sshd on 127.0.0.1 in front of the
# same daemon, scripts/sshd-for-tests.sh; stopped again, by its pid, if this
# target started it).
bench-docker: all $(B)/bench/docker_latency
	@set -e; $(WITH_DOCKER_ENV) ( \
	sshenv=$$(scripts/sshd-for-tests.sh start); eval "$$sshenv"; \
	[ -z "$$SPR_TEST_SSHD_STARTED" ] || \
		trap "scripts/sshd-for-tests.sh stop $$SPR_TEST_SSHD_STARTED" EXIT; \
	$(TEST_PYTHON) bench/run.py --docker $(BENCH_ARGS) --ssh --ssh-host "$$SPR_TEST_SSH_HOST" \
		--ssh-port "$$SPR_TEST_SSH_PORT" --ssh-user "$$SPR_TEST_SSH_USER" \
		--ssh-key-path "$$SPR_TEST_SSH_KEY" )

# The same through podman (rootful, this checkout's storage): section PODMAN.
bench-podman: all $(B)/bench/docker_latency
	@set -e; $(WITH_PODMAN_ENV) $(TEST_PYTHON) bench/run.py --podman $(BENCH_ARGS); \
	$(TEST_PYTHON) bench/streaming.py --podman

# ---- install ---------------------------------------------------------------

# The Python package (python/: safe_py_runner and spr) goes where
# INSTALL_PYTHON imports from under PREFIX (Debian: /usr/local/lib/python3.N/
# dist-packages; PYTHONDIR=DIR picks another), written by its own installer
# (no pip, nothing from an index), with LIBDIR/BINDIR/LIBEXECDIR recorded in
# it. No console script: `spr` stays the C program (`python -m spr` runs it).
INSTALL_PYTHON ?= $(TEST_PYTHON)
PYTHONDIR ?=
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(LIBEXECDIR)/spr $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(B)/spr-run $(B)/spr $(DESTDIR)$(BINDIR)/
	install -m 0755 $(LIBEXEC_OUT)/spr-sandbox $(LIBEXEC_OUT)/spr-sandbox-static \
		$(DESTDIR)$(LIBEXECDIR)/spr/
	install -m 0644 $(LIBEXEC_OUT)/spr_worker.py $(LIBEXEC_OUT)/runtime.Dockerfile \
		$(DESTDIR)$(LIBEXECDIR)/spr/
	install -m 0755 $(B)/libspr.so $(DESTDIR)$(LIBDIR)/libspr.so.4
	ln -sf libspr.so.4 $(DESTDIR)$(LIBDIR)/libspr.so
	install -m 0644 $(B)/libspr.a $(DESTDIR)$(LIBDIR)/
	install -m 0644 include/spr.h $(DESTDIR)$(INCLUDEDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@PKGS@|$(LIB_PKGS)|' libspr.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/libspr.pc
	$(INSTALL_PYTHON) python/_build/spr_build.py install --prefix $(PREFIX) --destdir "$(DESTDIR)" \
		--libdir $(LIBDIR) --bindir $(BINDIR) --libexecdir $(LIBEXECDIR) \
		$(if $(PYTHONDIR),--sitedir $(PYTHONDIR))

# The Python package (python/, tests/python with Debian's python3-pytest):
# installed offline into a temporary directory, then run against this
# build. The LocalEngine part; the DockerEngine part runs in `make docker`.
check-python: all
	@scripts/deps.sh test
	env -u DOCKER_HOST SPR_BUILD=$(abspath $(B)) $(TEST_PYTHON) -m pytest -q tests/python

# README's first command, checked: the RunnerResult and the expected result.
check-demo: all
	@$(MAKE) --no-print-directory -s demo | $(TEST_PYTHON) -c 'import json, sys; \
		out = sys.stdin.read(); r = json.loads(out[out.index("\n{") + 1:]); \
		want = {"greeting": "Hello, spr!", "sum": 12, "mean": 4, "hypotenuse": 5.0}; \
		ok = r["ok"] and r["result"] == want and r["stdout"] == "Hello from inside the sandbox, spr!\n"; \
		print("check-demo:", "ok" if ok else out); sys.exit(0 if ok else 1)'

# What a user gets: `make install` into a staging DESTDIR, then the installed
# spr-run, and a program built only from the installed header and libspr.pc
# (shared and static), each running a result through the installed helper.
check-install: all
	@set -e; d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	$(MAKE) --no-print-directory -s install DESTDIR=$$d >/dev/null; \
	export SPR_LIBEXEC_DIR=$$d$(LIBEXECDIR)/spr LD_LIBRARY_PATH=$$d$(LIBDIR); \
	pc="env PKG_CONFIG_SYSROOT_DIR=$$d PKG_CONFIG_LIBDIR=$$d$(PKGCONFIGDIR):$$(pkg-config --variable pc_path pkg-config) pkg-config"; \
	$$d$(BINDIR)/spr-run --json --input '{"name": "spr", "numbers": [3, 4, 5]}' examples/hello.py | grep -q '"ok": true'; \
	$(CC) -o $$d/consumer tests/install/consumer.c $$($$pc --cflags --libs libspr); \
	$(CC) -o $$d/consumer-static tests/install/consumer.c $$($$pc --cflags libspr) \
		$$d$(LIBDIR)/libspr.a $$($$pc --libs --static libspr | sed 's/-lspr//'); \
	for c in consumer consumer-static; do $$d/$$c | grep -q '"ok":true,"result":6,' || \
		{ echo "check-install: $$c failed" >&2; $$d/$$c; exit 1; }; done; \
	echo "check-install: installed spr-run and libspr (shared, static via pkg-config) work"

clean:
	rm -rf build build-asan
