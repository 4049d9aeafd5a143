#!/usr/bin/env bash
# The coverage-guided fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) on the model:
#   bpf_calls        arbitrary (cmd, attr bytes, size, user memory) call sequences
#   scenario_parser  arbitrary text as a .bpfs scenario file
# Each must run without a panic, a hang (-timeout) or unbounded memory (-rss_limit_mb).
#
#   scripts/fuzz.sh 30          each target for 30 s; new inputs go to a temporary directory
#                               (what `make test` runs, as `make fuzz-short`)
#   scripts/fuzz.sh 600 --keep  the long run (`make fuzz`): new inputs join fuzz/corpus/, which
#                               is then minimised (cargo fuzz cmin) so the tree keeps a small set
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the run; copy it to
# fuzz/regressions/<target>/ with a name that says what it found, so tests/fuzz_corpus.rs
# replays it forever. Installs the nightly toolchain and cargo-fuzz if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
keep=${2:-}

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: rustup toolchain install nightly" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo install cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

cd fuzz
cargo +nightly fuzz build >/dev/null
status=0
for target in bpf_calls scenario_parser; do
  mkdir -p "corpus/$target"
  seeds=()
  case $target in
    bpf_calls) seeds=(seeds/bpf_calls) ;;
    scenario_parser) seeds=(../tests/scenarios) ;;
  esac
  if [ "$keep" = "--keep" ]; then
    out="corpus/$target"
  else
    out=$(mktemp -d)
  fi
  start=$(date +%s)
  log=$(mktemp)
  if cargo +nightly fuzz run "$target" "$out" "corpus/$target" "${seeds[@]}" -- \
      -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -max_len=8192 \
      -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $target: $runs inputs in $(( $(date +%s) - start )) s, no crash"
  else
    status=1
    echo "fuzz: $target FAILED; the end of its log:" >&2
    tail -n 40 "$log" >&2
  fi
  rm -f "$log"
  if [ "$keep" = "--keep" ]; then
    cargo +nightly fuzz cmin "$target" "corpus/$target" >/dev/null 2>&1 || true
  else
    rm -rf "$out"
  fi
done
exit $status
