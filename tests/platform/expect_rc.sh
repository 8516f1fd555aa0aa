#!/bin/sh
# usage: expect_rc.sh RC REGEX COMMAND...  — runs COMMAND, requires exit code RC and that its
# combined stdout+stderr matches the extended REGEX.
want_rc=$1; pattern=$2; shift 2
out=$("$@" 2>&1); rc=$?
printf '%s\n' "$out"
if [ "$rc" -ne "$want_rc" ]; then echo "expect_rc: exit code $rc, wanted $want_rc" >&2; exit 1; fi
if ! printf '%s\n' "$out" | grep -Eq -- "$pattern"; then echo "expect_rc: output does not match: $pattern" >&2; exit 1; fi
exit 0
