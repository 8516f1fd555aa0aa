#!/usr/bin/env python3
"""The example trace in README.md ("The trace") is cut from a real run, so it cannot go stale:
this script runs `pvsim run scenarios/cpuid_msr-O2.json --trace FILE`, takes the first three
lines and the four lines around the first MSR write that faults (kvm_exit, kvm_msr ... (#GP),
kvm_inj_exception, kvm_entry), and compares them with the block between the README's
trace-example markers.

usage: readme_example.py PVSIM README [--update]   (--update rewrites the block)"""
import os, subprocess, sys, tempfile

pvsim, readme = sys.argv[1], sys.argv[2]
update = '--update' in sys.argv[3:]
root = os.path.dirname(os.path.abspath(readme))
BEGIN, END = '<!-- trace-example: begin (tests/platform/readme_example.py writes this block) -->', \
             '<!-- trace-example: end -->'

with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, 't.txt')
    p = subprocess.run([pvsim, 'run', os.path.join(root, 'scenarios', 'cpuid_msr-O2.json'), '-q', '--trace', out],
                       capture_output=True, timeout=120)
    if p.returncode != 0:
        sys.exit(f'readme_example: pvsim run failed ({p.returncode}): {p.stdout.decode()}{p.stderr.decode()}')
    lines = open(out).read().splitlines()
gp = next(i for i, l in enumerate(lines) if ': kvm_msr: msr_write ' in l and l.endswith('(#GP)'))
block = lines[:3] + ['...'] + lines[gp - 1:gp + 3]
want = '\n'.join([BEGIN, '```'] + block + ['```', END])

text = open(readme).read()
if BEGIN not in text or END not in text:
    sys.exit(f'readme_example: {readme} has no trace-example markers')
a, b = text.index(BEGIN), text.index(END) + len(END)
if text[a:b] == want:
    print('readme_example: README.md example matches the trace')
    sys.exit(0)
if update:
    open(readme, 'w').write(text[:a] + want + text[b:])
    print('readme_example: README.md example rewritten')
    sys.exit(0)
print('readme_example: the README example differs from a run; rerun with --update. Expected block:')
print(want)
sys.exit(1)
