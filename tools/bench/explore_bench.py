#!/usr/bin/env python3
"""Variants per second of `pvsim explore` (README "Speed", "Exploring races").

The race window of the benchmark: 1000 instruction boundaries of vCPU 0 in pv-tlb-orig (two
vCPUs), a steal-time update for vCPU 1 placed at each one, every variant run from the
snapshot at the window's start to a stop at its end (1000 instructions of vCPU 0 and what
vCPU 1 runs meanwhile). Each measurement is a whole `pvsim explore` process (start-up,
the run to the window, the snapshot, 1000 variants); the median of --runs is reported, for
--jobs 1 and 2, interleaved so that drift on a shared machine hits both alike. The same
exploration on the same guest with 1 GiB of RAM instead of 16 MiB shows that a restore
costs what the variant touched, not what the machine has.

usage: tools/bench/explore_bench.py [--pvsim build/tools/pvsim] [--runs 21]
"""
import argparse
import os
import statistics
import json
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument('--pvsim', default=os.path.join(ROOT, 'build', 'tools', 'pvsim'))
ap.add_argument('--runs', type=int, default=21)
a = ap.parse_args()
if a.runs < 1:
    sys.exit('explore_bench.py: --runs must be at least 1')
scenario = os.path.join(ROOT, 'scenarios', 'pv-tlb-orig.json')
cmd = [a.pvsim, 'explore', scenario, '--window', 'v0.insn=20000..20999', '--place', 'steal v1',
       '--schedule', 'v0.insn=21000: stop', '-q']
# The same scenario with 1 GiB of RAM (comments stripped; the image path made absolute).
with open(scenario) as f:
    text = re.sub(r'^\s*//.*$', '', f.read(), flags=re.M)
big = json.loads(text)
big.setdefault('machine', {})['ram_mib'] = 1024
big['guest']['image'] = os.path.join(os.path.dirname(scenario), big['guest']['image'])
big['expect'] = {}
big['description'] = 'pv-tlb-orig with 1 GiB of RAM (tools/bench/explore_bench.py)'
tmp = tempfile.NamedTemporaryFile('w', suffix='.json', delete=False)
json.dump(big, tmp)
tmp.close()
runs = {('16 MiB', 1): [], ('16 MiB', 2): [], ('1 GiB', 1): []}
try:
    for r in range(a.runs):
        for (ram, jobs) in runs:
            c = cmd[:]
            if ram == '1 GiB':
                c[2] = tmp.name
            t0 = time.perf_counter()
            p = subprocess.run(c + ['--jobs', str(jobs)], capture_output=True)
            t1 = time.perf_counter()
            if p.returncode not in (0, 1) or b'1000 variants in' not in p.stdout:
                sys.exit(f'explore_bench.py: pvsim explore failed: {p.stderr.decode(errors="replace")}')
            runs[(ram, jobs)].append(t1 - t0)
finally:
    os.unlink(tmp.name)
print(f'command: {" ".join(cmd)} --jobs J')
for (ram, jobs), t in runs.items():
    med = statistics.median(t)
    print(f'RAM {ram:>6}, --jobs {jobs}: 1000 variants in {med * 1000:.1f} ms (median of {a.runs}), '
          f'{1000 / med:,.0f} variants/s (whole process; min {min(t) * 1000:.1f} ms, max {max(t) * 1000:.1f} ms)')
