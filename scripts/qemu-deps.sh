#!/usr/bin/env bash
# Installs what `make qemu-test` needs and the machine lacks: QEMU for riscv64 with its
# OpenSBI firmware and QEMU for x86_64, the riscv64 cross linker and libc (the guest runner is
# a static binary),
# the tools that fetch and unpack kernel packages, clang (tests/load_maps.rs compiles BPF
# objects with -target bpf), gcc, libbpf-dev and bpftool (tests/preload.rs runs real clients
# against the LD_PRELOAD library and the kernel), and the Rust target. Idempotent: a machine
# that has everything is left alone.
set -euo pipefail

pkgs=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in qemu-system-misc qemu-system-x86 opensbi gcc-riscv64-linux-gnu libc6-dev-riscv64-cross curl xz-utils clang \
         gcc libbpf-dev bpftool; do
  have_pkg "$p" || pkgs+=("$p")
done

if [ ${#pkgs[@]} -gt 0 ]; then
  echo "qemu-deps: installing ${pkgs[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

target=riscv64gc-unknown-linux-gnu
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "qemu-deps: rustup target add $target" >&2
  rustup target add "$target"
fi
