#!/usr/bin/env bash
# Builds every fuzz target and runs each for FUZZ_SECONDS seconds (default 60), starting from
# the committed seeds in fuzz/corpus/<target>/. Fails when any target crashes (a panic, a broken
# invariant, a sanitizer report, a timeout or running out of memory); the input that did it is
# left in fuzz/artifacts/<target>/ and the tail of libFuzzer's report is printed.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Works on the stable toolchain:
# RUSTC_BOOTSTRAP=1 lets stable rustc take the unstable flags cargo-fuzz passes. The address
# sanitizer is used when it builds (FUZZ_SANITIZER=none skips it; the build falls back to none
# by itself if the sanitizer runtime is missing).
#
#   fuzz/run.sh                    # every target, 60 s each
#   FUZZ_SECONDS=600 fuzz/run.sh path_normalize translate
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-address}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

selected=$#
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# Per target: the dictionary of its input's tokens, and the largest input worth trying.
dict_of() {
  case "$1" in
    h1_*) echo http ;;
    path_normalize) echo path ;;
    host_lookup) echo host ;;
    *) echo manifest ;;
  esac
}
max_len_of() {
  case "$1" in
    h1_chunked) echo 8192 ;; # past the 4 KiB chunk-size line limit
    h1_response_head) echo 4096 ;;
    path_normalize | host_lookup) echo 1024 ;;
    *) echo 16384 ;;
  esac
}

# Builds the chosen targets (all of them in one cargo run when none were named).
build() {
  : >"$logs/build.log"
  if [ "$selected" -gt 0 ]; then
    local target
    for target in "${targets[@]}"; do
      cargo fuzz build --fuzz-dir fuzz -s "$1" "$target" >>"$logs/build.log" 2>&1 || return 1
    done
  else
    cargo fuzz build --fuzz-dir fuzz -s "$1" >>"$logs/build.log" 2>&1
  fi
}
started=$SECONDS
if ! build "$sanitizer"; then
  if [ "$sanitizer" = none ]; then
    tail -n 40 "$logs/build.log"
    exit 1
  fi
  echo "fuzz: the build with -s $sanitizer failed (tail below); building without a sanitizer"
  tail -n 5 "$logs/build.log"
  sanitizer=none
  if ! build none; then
    tail -n 40 "$logs/build.log"
    exit 1
  fi
fi
echo "fuzz: built ${#targets[@]} targets with -s $sanitizer in $((SECONDS - started)) s"

failed=()
for target in "${targets[@]}"; do
  # New inputs go to a scratch directory; the committed seeds are only read.
  scratch="$logs/corpus-$target"
  mkdir -p "$scratch" "fuzz/artifacts/$target"
  log="$logs/$target.log"
  status=0
  cargo fuzz run --fuzz-dir fuzz -s "$sanitizer" "$target" "$scratch" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len_of "$target")" -dict="fuzz/dict/$(dict_of "$target").dict" \
    >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -oE '(cov|ft): [0-9]+' "$log" | tail -n 2 | tr '\n' ' ')
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    echo "fuzz: $target FAILED (exit $status) after ${runs:-?} executions; report:"
    grep -E 'panicked at|ERROR: |SUMMARY: |Test unit written to|Reproduce|artifact_prefix' "$log" | head -n 20 || true
    tail -n 30 "$log"
  else
    echo "fuzz: $target ok: ${runs:-?} executions in ${seconds} s (${cov% })"
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]} (inputs in fuzz/artifacts/; rerun one with" \
    "RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -s $sanitizer TARGET fuzz/artifacts/TARGET/FILE)"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds} s each without a crash"
