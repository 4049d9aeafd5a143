# The two commands of the README:
#   make qemu-test   the model against real riscv64 kernels in QEMU (and the host kernel)
#   make test        the whole test suite (CI runs this)

CARGO ?= cargo
export INSTA_UPDATE ?= no

.PHONY: all build test check fmt clippy qemu-test bench clean

all: build

build:
	$(CARGO) build --release --workspace

# Formatting and lints first: they are cheap and CI should fail fast on them.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: check
	$(CARGO) test --workspace

fmt:
	$(CARGO) fmt --all

# Until the QEMU runner lands (issue 3) this compares the model with the host kernel only.
qemu-test: build
	./target/release/bpfmodel run --backend both tests/scenarios

clean:
	$(CARGO) clean
