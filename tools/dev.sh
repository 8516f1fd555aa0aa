#!/usr/bin/env bash
# pvsim developer entry point: installs missing Debian 12 packages, configures, builds, and
# runs the main job or the tests. Idempotent: a second call only rebuilds what changed.
#
#   tools/dev.sh run [SCENARIO] [pvsim run options]   build (Release) and run a scenario
#                                                      (default: scenarios/default.json)
#   tools/dev.sh test                                   build (Release) and run every test, then
#                                                      the short fuzz campaign (build-fuzz/); with
#                                                      ctest arguments (-R ...) only ctest
#   tools/dev.sh test-asan                              ctest with ASan+UBSan (build-asan/)
#   tools/dev.sh bench [pvsim bench options]            build (Release) and run the benchmarks
#   tools/dev.sh fuzz [SECONDS]                         long fuzz campaign: SECONDS (default 600)
#                                                      per target (tests/fuzz/README.md)
#   tools/dev.sh fuzz-short                             only the short fuzz campaign
#   tools/dev.sh fuzz-keep TARGET CRASH NAME            minimise a fuzzer's crash input into
#                                                      tests/fuzz/regressions/TARGET/NAME
#   tools/dev.sh update-goldens                         rewrite every scenarios/golden/*.txt from a
#                                                      run (review `git diff` afterwards)
#   tools/dev.sh deps                                   only install the Debian packages
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Debian 12 packages the build and the tests need (README "Dependencies" says why each).
packages=(cmake ninja-build g++ gcc binutils pkg-config python3 python3-jsonschema
          libboost-program-options-dev catch2 nlohmann-json3-dev libfmt-dev libxxhash-dev
          libzydis-dev libunicorn-dev
          clang-14 libclang-rt-14-dev llvm-14)  # fuzzing: clang, libFuzzer, llvm-symbolizer

# Optional: QEMU runs every guest program a second time in guest.qemu.* (README
# "Dependencies"). `test` installs it when it can; without it those checks skip, saying so.
optional_packages=(qemu-system-x86)

install_optional() {
  local p
  for p in "${optional_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      local sudo=()
      [ "$(id -u)" -ne 0 ] && sudo=(sudo -n)
      echo "dev.sh: installing optional Debian package $p (the guest.qemu.* checks skip without it)" >&2
      { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1; } ||
        echo "dev.sh: could not install $p; the QEMU checks will be skipped" >&2
    fi
  done
}

install_deps() {
  local missing=()
  for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "dev.sh: installing missing Debian packages: ${missing[*]}" >&2
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

jobs=$(nproc 2>/dev/null || echo 2)

# build DIR [cmake -D options...]
build() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S "$root" -B "$dir" -G Ninja "$@"
  else
    cmake "$dir" "$@" >/dev/null
  fi
  cmake --build "$dir" -j "$jobs"
}

# ---- fuzzing (tests/fuzz/README.md) ----
# A clang build of only the fuzz targets, with libFuzzer's coverage feedback, ASan and UBSan.
fuzz_build_dir=build-fuzz
fuzz_dir=$fuzz_build_dir/fuzz  # seeds, dictionary, corpora, crashes, logs
fuzz_targets=(scenario validate loader decoder vcpu trace_check)
# Per target: the largest input of the short and of the long campaign, and the short
# campaign's executions. The short sizes keep one execution in the milliseconds (no 1 MB
# JSON); the run counts are tuned so the five targets together take about 40 s on 2 cores.
declare -A fuzz_short_len=([scenario]=4096 [validate]=65536 [loader]=65536 [decoder]=64 [vcpu]=512 [trace_check]=2048)
declare -A fuzz_long_len=([scenario]=65536 [validate]=131072 [loader]=131072 [decoder]=256 [vcpu]=2048 [trace_check]=8192)
declare -A fuzz_short_runs=([scenario]=40000 [validate]=15000 [loader]=8000 [decoder]=30000 [vcpu]=2000 [trace_check]=8000)
fuzz_build() {
  # Readable stack traces: the sanitizers look for "llvm-symbolizer", which llvm-14
  # installs under a versioned name only.
  if [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
    export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-14/bin/llvm-symbolizer}
  fi
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  local opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14
              -DPVSIM_FUZZ=ON -DPVSIM_BUILD_TESTS=OFF -DPVSIM_BUILD_GUESTS=OFF)
  if [ ! -f "$fuzz_build_dir/build.ninja" ]; then
    cmake -S "$root" -B "$fuzz_build_dir" -G Ninja "${opts[@]}"
  else
    cmake "$fuzz_build_dir" "${opts[@]}" >/dev/null
  fi
  cmake --build "$fuzz_build_dir" -j "$jobs" --target pvsim_fuzzers
}

# Seed corpora and the JSON dictionary, made from the shipped scenarios and images. The
# guest ELFs are build outputs: without them the image seeds are only the hand-made ones,
# so build them (and only them) when they are missing.
fuzz_seeds() {
  if ! compgen -G "scenarios/guest/bin/*.elf" >/dev/null; then
    [ -f build/build.ninja ] || cmake -S "$root" -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build -j "$jobs" --target guests
  fi
  local t
  for t in "${fuzz_targets[@]}"; do python3 tests/fuzz/make_corpus.py "$t" "$fuzz_dir/seeds/$t" >/dev/null; done
  python3 tests/fuzz/make_corpus.py --dict "$fuzz_dir/json.dict" >/dev/null
}

# fuzz_inputs TARGET: the input directories after the one libFuzzer writes to (seeds, then
# the committed regression inputs); fuzz_dict TARGET: the dictionary of the JSON targets.
fuzz_inputs() {
  local t=$1
  echo "$fuzz_dir/seeds/$t"
  [ -d "tests/fuzz/regressions/$t" ] && echo "tests/fuzz/regressions/$t"
  return 0
}
fuzz_dict() {
  case $1 in scenario|validate) echo "-dict=$fuzz_dir/json.dict" ;; esac
}

# How to keep a crash as a regression input (tests/fuzz/README.md "Crashes"), unless it
# is one already (a committed regression input that still fails: the bug is not fixed).
fuzz_keep_hint() {
  local known
  for known in tests/fuzz/regressions/"$1"/*; do
    if [ -f "$known" ] && cmp -s "$known" "$2"; then
      echo "  this is the committed regression input $known: its bug is not fixed yet"
      return 0
    fi
  done
  echo "  keep it as a regression input: tools/dev.sh fuzz-keep $1 $2 SHORT-DESCRIPTIVE-NAME"
}

# One short campaign: fixed seed and number of executions, one worker, a fresh working
# corpus, so the same build explores the same inputs every time (README: what is and is
# not deterministic). Writes its log and "cov ft seconds" to $fuzz_dir/short/.
fuzz_short_one() {
  local t=$1 work=$fuzz_dir/short/$t
  rm -rf "$work" "$fuzz_dir/short/$t.crash"
  mkdir -p "$work" "$fuzz_dir/short/$t.crash"
  local start end rc=0
  # What would make two runs differ: -reload re-reads the corpus directory every second;
  # CMP-guided mutations (-use_cmp) copy compared values into inputs, and the parsers
  # compare pointers whose values depend on the heap's history (and with it on when
  # libFuzzer's own timed output allocated); address-space randomisation moves the rest.
  # The dictionary stands in for CMP on the JSON targets.
  local norand=()
  if setarch "$(uname -m)" -R true 2>/dev/null; then norand=(setarch "$(uname -m)" -R); fi
  start=$(date +%s.%N)
  "${norand[@]}" "$fuzz_build_dir/tests/fuzz/pvsim_fuzz_$t" -seed=1 -runs="${fuzz_short_runs[$t]}" \
    -reload=0 -use_cmp=0 \
    -max_len="${fuzz_short_len[$t]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$fuzz_dir/short/$t.crash/" $(fuzz_dict "$t") \
    "$work" $(fuzz_inputs "$t") >"$fuzz_dir/short/$t.log" 2>&1 || rc=$?
  end=$(date +%s.%N)
  echo "$rc $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')" >"$fuzz_dir/short/$t.result"
}

fuzz_short() {
  fuzz_build
  fuzz_seeds
  mkdir -p "$fuzz_dir/short"
  echo "dev.sh: short fuzz campaign (${fuzz_targets[*]}), $jobs at a time; logs in $fuzz_dir/short/"
  local t running=0 failed=0
  for t in "${fuzz_targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
    fuzz_short_one "$t" &
    running=$((running + 1))
  done
  wait
  for t in "${fuzz_targets[@]}"; do
    local rc secs stats
    read -r rc secs <"$fuzz_dir/short/$t.result"
    stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$fuzz_dir/short/$t.log" | sed -E 's/^#([0-9]+).*cov: ([0-9]+) ft: ([0-9]+).*/\1 runs, cov \2, ft \3/' || true)
    if [ "$rc" -eq 0 ]; then
      echo "fuzz/$t: ${stats:-?} in ${secs} s"
    else
      failed=$((failed + 1))
      echo "fuzz/$t: FAILED (exit $rc after ${secs} s); the end of $fuzz_dir/short/$t.log:"
      tail -n 40 "$fuzz_dir/short/$t.log" | sed 's/^/  | /'
      local c
      for c in "$fuzz_dir/short/$t.crash"/*; do [ -f "$c" ] && fuzz_keep_hint "$t" "$c"; done
    fi
  done
  echo "fuzz: $(( ${#fuzz_targets[@]} - failed )) passed, $failed failed"
  [ "$failed" -eq 0 ]
}

# The long campaign: each target for SECONDS in libFuzzer's fork mode (a crash, timeout or
# out-of-memory is saved and fuzzing goes on), on a corpus kept between campaigns.
fuzz_long() {
  local secs=$1
  fuzz_build
  fuzz_seeds
  local stamp=$fuzz_dir/long.stamp t
  mkdir -p "$fuzz_dir"
  touch "$stamp"
  echo "dev.sh: long fuzz campaign, $secs s per target (${fuzz_targets[*]}); crashes go to $fuzz_dir/crashes/TARGET/"
  for t in "${fuzz_targets[@]}"; do
    mkdir -p "$fuzz_dir/corpus/$t" "$fuzz_dir/crashes/$t"
    echo "fuzz/$t: $secs s, corpus $fuzz_dir/corpus/$t, log $fuzz_dir/long-$t.log"
    "$fuzz_build_dir/tests/fuzz/pvsim_fuzz_$t" -fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
      -max_total_time="$secs" -max_len="${fuzz_long_len[$t]}" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$fuzz_dir/crashes/$t/" $(fuzz_dict "$t") \
      "$fuzz_dir/corpus/$t" $(fuzz_inputs "$t") >"$fuzz_dir/long-$t.log" 2>&1 || true
    grep -E '^#[0-9]+: cov:' "$fuzz_dir/long-$t.log" | tail -n 1 | sed 's/^/  last: /' || true
  done
  local found=0 c
  for t in "${fuzz_targets[@]}"; do
    while IFS= read -r c; do
      found=$((found + 1))
      echo "new finding: $c"
      fuzz_keep_hint "$t" "$c"
    done < <(find "$fuzz_dir/crashes/$t" -type f -newer "$stamp" | sort)
  done
  echo "fuzz: $found new crash, timeout or out-of-memory inputs in $fuzz_dir/crashes/"
  [ "$found" -eq 0 ]
}

# fuzz-keep TARGET CRASH NAME: minimise CRASH (libFuzzer -minimize_crash) and store it as
# tests/fuzz/regressions/TARGET/NAME, which ctest then replays as fuzz/TARGET/regression/NAME.
fuzz_keep() {
  local t=$1 crash=$2 name=$3
  [[ " ${fuzz_targets[*]} " == *" $t "* ]] || { echo "dev.sh: unknown fuzz target '$t' (${fuzz_targets[*]})" >&2; exit 2; }
  [ -f "$crash" ] || { echo "dev.sh: no such file: $crash" >&2; exit 2; }
  [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || { echo "dev.sh: NAME must be letters, digits, '.', '_', '-'" >&2; exit 2; }
  local dest=tests/fuzz/regressions/$t/$name
  [ -e "$dest" ] && { echo "dev.sh: $dest exists already" >&2; exit 2; }
  fuzz_build
  mkdir -p "tests/fuzz/regressions/$t"
  "$fuzz_build_dir/tests/fuzz/pvsim_fuzz_$t" -minimize_crash=1 -max_total_time=120 -timeout=10 \
    -exact_artifact_path="$dest" "$crash" >"$fuzz_dir/keep-$t.log" 2>&1 || true
  if [ ! -s "$dest" ]; then
    echo "dev.sh: minimising did not give a smaller crashing input (log: $fuzz_dir/keep-$t.log); keeping it as it is"
    cp "$crash" "$dest"
  fi
  echo "added $dest ($(stat -c %s "$dest") bytes, was $(stat -c %s "$crash")); ctest runs it as fuzz/$t/regression/$name"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  deps)
    install_deps ;;
  run)
    install_deps
    build build -DCMAKE_BUILD_TYPE=Release
    scenario=scenarios/default.json
    if [ $# -gt 0 ] && [[ "$1" != -* ]]; then scenario=$1; shift; fi
    exec build/tools/pvsim run "$scenario" "$@" ;;
  test)
    install_deps
    install_optional
    build build -DCMAKE_BUILD_TYPE=Release
    (cd build && ctest --output-on-failure -j "$jobs" "$@")
    # With ctest arguments (-R ...) the caller asked for a subset: no fuzzing then.
    if [ $# -eq 0 ]; then fuzz_short; fi ;;
  test-asan)
    install_deps
    build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPVSIM_SANITIZE=ON
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export PVSIM_ORACLE_CASES=${PVSIM_ORACLE_CASES:-2000}
    cd build-asan && exec ctest --output-on-failure -j "$jobs" "$@" ;;
  fuzz)
    install_deps
    secs=${1:-600}
    [[ "$secs" =~ ^[1-9][0-9]*$ ]] || { echo "dev.sh: fuzz SECONDS must be a positive integer" >&2; exit 2; }
    fuzz_long "$secs" ;;
  fuzz-short)
    install_deps
    fuzz_short ;;
  fuzz-keep)
    [ $# -eq 3 ] || { echo "usage: tools/dev.sh fuzz-keep TARGET CRASH-FILE NAME" >&2; exit 2; }
    install_deps
    fuzz_keep "$@" ;;
  update-goldens)
    install_deps
    build build -DCMAKE_BUILD_TYPE=Release
    failed=0
    while IFS= read -r f; do
      build/tools/pvsim run "$f" -q --update-golden >/dev/null || { echo "dev.sh: $f: other expectations fail (golden written anyway)" >&2; failed=1; }
      echo "rewrote the golden trace of $f"
    done < <(grep -l '"golden_trace"' scenarios/*.json scenarios/*/*.json | grep -v 'scenario.schema.json' | sort)
    exit "$failed" ;;
  bench)
    install_deps
    build build -DCMAKE_BUILD_TYPE=Release
    exec build/tools/pvsim bench "$@" ;;
  *)
    awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"
    [ -z "$cmd" ] || [ "$cmd" = "-h" ] || [ "$cmd" = "--help" ] || exit 2 ;;
esac
