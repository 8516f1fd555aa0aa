#!/usr/bin/env bash
# tests/kut/run_kut.sh — kvm-unit-tests' runner against `pvsim qemu` (tests/kut/CMakeLists.txt).
#
#   PVSIM_KUT_DIR=KUT run_kut.sh probes PVSIM      the runner's probes pass for every test pvsim targets
#   PVSIM_KUT_DIR=KUT run_kut.sh test PVSIM NAME   `run_tests.sh -v NAME` says "PASS NAME"
#
# KUT, a built kvm-unit-tests tree, is copied to a temporary directory (the runner writes
# logs/ beside itself) and $QEMU is a pvsim-qemu symlink to PVSIM there. Exit 77 (ctest
# SKIP_RETURN_CODE) when there is no kvm-unit-tests build at KUT.

# No `set -u`: the runner's scripts, sourced below, read unset variables.
mode=$1 pvsim=$2 name=${3:-}
kut=${PVSIM_KUT_DIR:-}

if [ -z "$kut" ] || [ ! -x "$kut/run_tests.sh" ] || [ ! -f "$kut/config.mak" ] || [ ! -d "$kut/x86" ]; then
  echo "kvm-unit-tests binaries not found at ${kut:-(PVSIM_KUT_DIR is not set)} (set -DPVSIM_KUT_DIR=...)"
  exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pvsim-kut.XXXXXX") || exit 1
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/bin"
ln -s "$(readlink -f "$pvsim")" "$work/bin/pvsim-qemu"
cp -r "$kut/." "$work/kut" && chmod -R u+w "$work/kut" || exit 1
cd "$work/kut" || exit 1
export QEMU="$work/bin/pvsim-qemu" ACCEL=tcg

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
failures=0

# The kvm-unit-tests configurations pvsim runs (x86/unittests.cfg): the nine tests, with
# smptest3 and apic's two variants.
targets=" kvmclock_test msr smptest smptest3 setjmp tsc realmode hypercall x2apic xapic asyncpf "

case "$mode" in
probes)
  # search_qemu_binary (scripts/arch-run.bash): `--help` output containing QEMU.
  "$QEMU" --help 2>/dev/null | grep -q QEMU || fail "\$QEMU --help does not mention QEMU"
  # env_params: the version from the first line of -h.
  IFS='[ .]' read -r _ _ _ major minor micro _ <<<"$("$QEMU" -h | head -1)"
  [ "$major.$minor.$micro" = 7.2.0 ] || fail "-h's first line gives version '$major.$minor.$micro', not 7.2.0"
  # x86/run's device probe.
  "$QEMU" -device '?' 2>&1 | grep -qF '"pc-testdev"' || fail "-device '?' does not list \"pc-testdev\""
  if "$QEMU" -device '?' 2>&1 | grep -qF pci-testdev; then fail "-device '?' lists pci-testdev"; fi

  # The runner's premature-failure probe (scripts/runtime.bash run, premature_failure): each
  # test's real options with -kernel _NO_FILE_4Uhere_, through x86/run. A refused option
  # would turn the test into "SKIP (reason)".
  source config.mak
  source scripts/common.bash
  RUNTIME_arch_run=./$TEST_SUBDIR/run
  source scripts/runtime.bash
  RUNTIME_log_stderr() { cat >/dev/null; }
  probed=""
  probe_one() {
    local testname=$1 groups=$2 smp=$3 kernel=$4 test_args=$5 opts=$6 arch=$7 machine=$8
    local accel=$ACCEL timeout=${11:-90s} log
    case "$targets" in *" $testname "*) ;; *) return ;; esac
    probed="$probed $testname"
    if log=$(premature_failure); then
      fail "$testname: the runner would report SKIP ($(tail -1 <<<"$log"))"
    elif ! grep -qF "could not load kernel '_NO_FILE_4Uhere_'" <<<"$(eval "$(get_cmdline _NO_FILE_4Uhere_)" 2>&1)"; then
      fail "$testname: no \"could not load kernel\" line"
    else
      echo "ok: $testname: options accepted ($smp $test_args $opts)"
    fi
  }
  for_each_unittest "$TEST_DIR/unittests.cfg" probe_one
  for t in $targets; do
    case " $probed " in *" $t "*) ;; *) fail "$t: not found in $TEST_DIR/unittests.cfg" ;; esac
  done

  # --probe-maxsmp (scripts/vmm.bash qemu_probe_maxsmp): the "SMP CPUs ... (N)" line caps MAX_SMP.
  MAX_SMP=65
  qemu_probe_maxsmp "$RUNTIME_arch_run" 2>/dev/null
  [ "$MAX_SMP" = 64 ] || fail "--probe-maxsmp: MAX_SMP is $MAX_SMP, not 64"
  ;;
test)
  out=$(./run_tests.sh -v "$name" 2>&1)
  # The runner colours PASS/FAIL/SKIP (scripts/runtime.bash); compare without the escapes.
  plain=$(sed 's/\x1b\[[0-9;]*m//g' <<<"$out")
  echo "$plain"
  if ! grep -qE "^PASS $name( |$)" <<<"$plain"; then
    fail "$name: the runner did not say PASS"
    [ -f "logs/$name.log" ] && { echo "--- logs/$name.log"; cat "logs/$name.log"; }
  fi
  ;;
*)
  echo "usage: PVSIM_KUT_DIR=KUT run_kut.sh probes|test PVSIM [NAME]"
  exit 2
  ;;
esac
[ "$failures" = 0 ]
