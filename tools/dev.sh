#!/usr/bin/env bash
# pvsim developer entry point: installs missing Debian 12 packages, configures, builds, and
# runs the main job or the tests. Idempotent: a second call only rebuilds what changed.
#
#   tools/dev.sh run [SCENARIO] [pvsim run options]   build (Release) and run a scenario
#                                                      (default: scenarios/default.json)
#   tools/dev.sh test                                   build (Release) and run every test
#   tools/dev.sh test-asan                              the same with ASan+UBSan (build-asan/)
#   tools/dev.sh bench [pvsim bench options]            build (Release) and run the benchmarks
#   tools/dev.sh deps                                   only install the Debian packages
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Debian 12 packages the build and the tests need (README "Dependencies" says why each).
packages=(cmake ninja-build g++ gcc binutils pkg-config python3 python3-jsonschema
          libboost-program-options-dev catch2 nlohmann-json3-dev libfmt-dev libxxhash-dev
          libzydis-dev libunicorn-dev)

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
    build build -DCMAKE_BUILD_TYPE=Release
    cd build && exec ctest --output-on-failure -j "$jobs" "$@" ;;
  test-asan)
    install_deps
    build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPVSIM_SANITIZE=ON
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export PVSIM_ORACLE_CASES=${PVSIM_ORACLE_CASES:-2000}
    cd build-asan && exec ctest --output-on-failure -j "$jobs" "$@" ;;
  bench)
    install_deps
    build build -DCMAKE_BUILD_TYPE=Release
    exec build/tools/pvsim bench "$@" ;;
  *)
    awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"
    [ -z "$cmd" ] || [ "$cmd" = "-h" ] || [ "$cmd" = "--help" ] || exit 2 ;;
esac
