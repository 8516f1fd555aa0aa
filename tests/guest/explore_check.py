#!/usr/bin/env python3
"""ctest guest.explore.<stem>: runs a scenario's own exploration (`pvsim explore SCENARIO`,
scenarios/README.md "explore"), which exits 0 only when its explore.expect counts hold, and
then replays the first variant of every failing group with the command explore printed for
it: the replay must fail too and give the same trace hash (README "The race catalogue").

Usage: explore_check.py PVSIM SCENARIO"""
import re
import shlex
import subprocess
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    pvsim, scenario = sys.argv[1], sys.argv[2]
    p = subprocess.run([pvsim, 'explore', '-q', scenario], capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        print(f'FAIL: pvsim explore {scenario} exited {p.returncode}')
        return 1
    # "group N: C variants, FAIL ...", "  replay variant K: pvsim run FILE --schedule '...'",
    # "  trace xxh3 H"
    groups = re.findall(r"^group \d+: \d+ variants?, (pass|FAIL)[^\n]*\n  replay variant \d+: pvsim (run [^\n]*)\n"
                        r"  trace xxh3 ([0-9a-f]{16})$", p.stdout, re.M)
    if not groups:
        print('FAIL: no groups in the output')
        return 1
    failures = 0
    for verdict, command, digest in groups:
        if verdict != 'FAIL':
            continue
        args = shlex.split(command)
        r = subprocess.run([pvsim] + args + ['-q'], capture_output=True, text=True)
        ok = r.returncode == 1 and f'trace xxh3 {digest}' in r.stdout
        print(f"{'ok' if ok else 'FAIL'}: replay {command} -> exit {r.returncode}, "
              f"{'same trace hash' if f'trace xxh3 {digest}' in r.stdout else 'a different trace hash'}")
        failures += not ok
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
