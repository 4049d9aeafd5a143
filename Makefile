# The two commands of the README:
#   make qemu-test   the model against real riscv64 kernels in QEMU, and the host kernel
#   make test        the whole test suite, QEMU run included (CI runs this)

CARGO ?= cargo
GUEST_TARGET := riscv64gc-unknown-linux-gnu
GUEST := target/$(GUEST_TARGET)/release/guest-init
BPFMODEL := target/release/bpfmodel
export INSTA_UPDATE ?= no

.PHONY: all build check test fmt qemu-deps guest qemu-fetch qemu-prep qemu-test preload fuzz fuzz-short bench clean

all: build

build:
	$(CARGO) build --release --workspace

# Formatting and lints first: they are cheap and CI should fail fast on them.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# QEMU, OpenSBI, the riscv64 cross toolchain and the Rust target, if missing.
qemu-deps:
	./scripts/qemu-deps.sh

# The guest runners: the harness, static, for riscv64 (linker and flags in .cargo/config.toml)
# and for x86_64 (crt-static through the environment, so host builds stay dynamic).
guest: qemu-deps
	$(CARGO) build --release --target $(GUEST_TARGET) --bin guest-init
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
		$(CARGO) build --release --target x86_64-unknown-linux-gnu --bin guest-init

# Fetch, verify and unpack the pinned kernels of images/kernels.manifest into images/cache.
qemu-fetch: build
	$(BPFMODEL) qemu-fetch

qemu-prep: guest qemu-fetch

# The main job: every pinned riscv64 kernel in QEMU, and the host kernel, against the model.
qemu-test: qemu-prep
	$(BPFMODEL) qemu-test

# The LD_PRELOAD library: target/release/libbpfmodel_preload.so (README, "Running programs
# against the model").
preload:
	$(CARGO) build --release -p bpfmodel-preload

# The coverage-guided fuzz targets (fuzz/, nightly + cargo-fuzz, installed if missing): a
# short run of each in `make test`, the long one with FUZZ_TIME seconds per target, its new
# inputs kept in fuzz/corpus/ (README, "Fuzzing").
FUZZ_TIME ?= 600
fuzz-short:
	./scripts/fuzz.sh 30

fuzz:
	./scripts/fuzz.sh $(FUZZ_TIME) --keep

test: check qemu-prep preload fuzz-short
	$(CARGO) test --workspace

# Speed and memory targets (the cached qemu-test under 30 s; the model's calls/s and memory).
bench: qemu-prep
	./scripts/bench.sh

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf images/cache
