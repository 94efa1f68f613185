# cxl-mhd — every entry point. `make demo` and `make test` are the README's two commands.
SHELL := /bin/bash
.DEFAULT_GOAL := demo

NODE_DEPS := node_modules/.package-lock.json
ADDON := native/build/Release/cxl_mhd.node
FM_CLIENT := dist/guest/cxl-mhd-fm

# QEMU=11|10 picks the QEMU series for setup, tests and the demo (scripts/setup-qemu.sh; default 11);
# KERNEL=6.12|7.3 the guest image's kernel (scripts/build-guest.sh; 7.3 needs the QEMU 11 root).
ifdef QEMU
export CXL_MHD_QEMU_SERIES := $(QEMU)
endif
ifdef KERNEL
export CXL_MHD_GUEST_KERNEL := $(KERNEL)
endif

.PHONY: setup build unit test lint bench demo asan clean qemu guest soak host-tools qemu-facts install uninstall

$(NODE_DEPS): package.json package-lock.json
	npm ci
	@touch $@

$(ADDON): $(NODE_DEPS) native/src/core.c native/src/core.h native/src/addon.cc native/binding.gyp
	node native/build.mjs

# tsc compiles src/ and bench/; scripts/bundle-cli.mjs then bundles the command line over dist/src/cli (docs/performance.md).
dist/.built: $(NODE_DEPS) $(shell find src bench -name '*.ts' 2>/dev/null) tsconfig.json tsconfig.build.json scripts/bundle-cli.mjs
	npx tsc -p tsconfig.build.json
	node scripts/bundle-cli.mjs
	@chmod +x dist/src/cli/main.js
	@touch $@

# The guest FM client: the fm commands on QuickJS, one static binary (libquickjs from Debian's mirror, cached).
$(FM_CLIENT): $(NODE_DEPS) $(shell find src/cli src/fmapi src/errors src/pool src/qemu src/capacity -name '*.ts' 2>/dev/null) guest/fm-main.c scripts/build-fm-client.mjs scripts/fetch-quickjs.sh scripts/debian-mirror.sh
	node scripts/build-fm-client.mjs

## setup: npm packages, the native addon, the compiled CLI, QEMU >= 10, the guest image and the host-side test clients
setup: build qemu guest host-tools

## host-tools: redfishtool, python3-sushy and chromium from Debian (clients the tests drive)
host-tools:
	@scripts/setup-host.sh

build: $(ADDON) dist/.built $(FM_CLIENT)

qemu:
	@scripts/setup-qemu.sh

## guest: kernel + initramfs for boot tests and the demo (cached; rebuilt when inputs change)
guest: qemu $(FM_CLIENT)
	@scripts/build-guest.sh

lint: $(NODE_DEPS)
	npx biome check .
	npx tsc -p tsconfig.json

## asan: the addon's C surface under AddressSanitizer + UBSan
asan:
	@mkdir -p native/build/asan
	gcc -std=c11 -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined -fno-omit-frame-pointer \
	  -o native/build/asan/core_test native/test/core_test.c native/src/core.c -lrt -lpthread
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 native/build/asan/core_test

## unit: the fast tier, the first thing to run: asan + every test that needs neither root nor QEMU
unit: build
	@scripts/test.sh --unit

## test: everything CI checks; ends with "N passed, N failed"
test: setup
	@scripts/test.sh

## qemu-facts: checks each fact docs/qemu-facts.md states against the QEMU that `make qemu` resolves
qemu-facts: build qemu
	npx vitest run test/qemu/facts-qemu.test.ts

## bench: every benchmark BENCH_RUNS times (default 3; figures also as ranges); one: node dist/bench/run.js --only NAME --runs N
BENCH_RUNS ?= 3
bench: build guest
	node dist/bench/run.js --runs $(BENCH_RUNS)

## demo: build, then boot three guests and run examples/ci/three-heads.yaml through `cxl-mhd run`
demo: setup
	@scripts/demo.sh

## soak: 1000 backend kill points, 100k FM operations through one long-lived backend, a million FM-API fuzz frames (long)
soak: setup
	@mkdir -p bench/out
	CXL_MHD_KILL_POINTS=1000 CXL_MHD_LONGRUN_OPS=100000 CXL_MHD_FUZZ_FRAMES=1000000 CXL_MHD_FUZZ_CLI=20 CXL_MHD_RESULTS=bench/out/soak.jsonl \
	  npx vitest run test/heads/crash-qemu.test.ts test/heads/longrun.test.ts test/fmapi/fmapi-fuzz.test.ts test/cli/cli-fuzz.test.ts

## install: the built package under $(DESTDIR)$(PREFIX) (bin/cxl-mhd, lib/cxl-mhd, the systemd unit); see docs/operations.md
PREFIX ?= /usr/local
export PREFIX DESTDIR BINDIR LIBDIR UNITDIR SYSUSERSDIR DOCDIR NODE CREATE_USER
install: build
	@scripts/install.sh install

uninstall:
	@scripts/install.sh uninstall

clean:
	rm -rf dist native/build
