#!/usr/bin/env python3
"""The trace options of the pvsim command line, run as a user would.

usage: cli.py PVSIM SOURCE_DIR GROUP     (GROUP: list, events, time_order)

list:       `pvsim trace --list-events [--format] [GLOB]` names every event of the table (the
            event methods core/trace.h declares), with fields; --format as ftrace's files.
events:     `pvsim run --events` filters --trace and --trace-jsonl, not the hash or the
            expectations; a glob that matches nothing is one line naming --events, exit 2.
time_order: `pvsim run --time-order` writes the same lines sorted by time (stable)."""
import json, os, re, subprocess, sys, tempfile

PVSIM = os.path.abspath(sys.argv[1])
SRC = os.path.abspath(sys.argv[2])
GROUP = sys.argv[3]
SCEN = os.path.join(SRC, 'scenarios')

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print('FAIL:', what)


def run(args, cwd=None):
    return subprocess.run([PVSIM] + args, cwd=cwd, capture_output=True, timeout=300)


def one_line_error(p, must_contain, what):
    err = p.stderr.decode('utf-8', 'replace')
    check(p.returncode == 2, f'{what}: exit code {p.returncode}, wanted 2 (stderr: {err!r})')
    check(err.count('\n') == 1 and err.endswith('\n'), f'{what}: error is not exactly one line: {err!r}')
    for s in must_contain:
        check(s in err, f'{what}: {s!r} missing from {err!r}')


def declared_events():
    """The event methods of core/trace.h: "void kvm_xxx(Tick ts" / "void pvsim_xxx(Tick ts"."""
    text = open(os.path.join(SRC, 'core', 'trace.h')).read()
    return set(re.findall(r'void ((?:kvm|pvsim)_[a-z0-9_]+)\(Tick ts', text))


def summary_hash(p):
    m = re.search(rb'trace xxh3 ([0-9a-f]{16}) \((\d+) events\)', p.stdout + p.stderr)
    return m.groups() if m else None


def ts_of(line):
    m = re.match(r'CPU \d+/KVM-\d+ \[\d{3,}\] (\d+)\.(\d{9}): ', line)
    return int(m.group(1)) * 10**9 + int(m.group(2))


def event_of(line):
    return line.split(': ', 2)[1]


def group_list(d):
    p = run(['trace', '--list-events'])
    check(p.returncode == 0, f'--list-events: exit {p.returncode}: {p.stderr!r}')
    lines = p.stdout.decode().splitlines()
    names = {}
    for l in lines:
        m = re.fullmatch(r'(kvm|pvsim):([a-z0-9_]+)\((.*)\)', l)
        check(m is not None, f'--list-events line {l!r} is not "system:name(fields)"')
        if m:
            names[m.group(2)] = m.group(3)
    declared = declared_events()
    check(len(declared) >= 30, f'core/trace.h declares only {len(declared)} events?')
    check(set(names) == declared, f'--list-events {sorted(set(names) ^ declared)} differ from core/trace.h')
    check(names.get('kvm_exit', '').startswith('unsigned int exit_reason, unsigned long guest_rip'),
          f'kvm_exit fields: {names.get("kvm_exit")!r}')
    check(names.get('pvsim_marker') == 'string text', f'pvsim_marker fields: {names.get("pvsim_marker")!r}')
    check(names.get('pvsim_inj_nmi') == '', f'pvsim_inj_nmi fields: {names.get("pvsim_inj_nmi")!r}')

    p = run(['trace', '--list-events', 'kvm_async_pf*'])
    got = [l.split('(')[0] for l in p.stdout.decode().splitlines()]
    check(p.returncode == 0 and got == ['kvm:kvm_async_pf_repeated_fault', 'kvm:kvm_async_pf_doublefault',
                                        'kvm:kvm_async_pf_not_present', 'kvm:kvm_async_pf_ready',
                                        'kvm:kvm_async_pf_completed'], f'glob: {got!r}')

    p = run(['trace', '--list-events', '--format'])
    check(p.returncode == 0, f'--format: exit {p.returncode}')
    blocks = re.split(r'\n\n(?=name: )', p.stdout.decode())
    # Each block: name, ID, format:, the common fields, a blank line, the event's fields, print fmt.
    check(len(blocks) == len(declared), f'--format: {len(blocks)} blocks for {len(declared)} events')
    ids = set()
    for b in blocks:
        bl = b.strip('\n').split('\n')
        name = bl[0][len('name: '):]
        check(bl[0].startswith('name: ') and name in declared, f'--format block starts {bl[0]!r}')
        check(re.fullmatch(r'ID: \d+', bl[1]) is not None, f'{name}: {bl[1]!r}')
        ids.add(bl[1])
        check(bl[2] == 'format:', f'{name}: {bl[2]!r}')
        check(bl[3] == '\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;', f'{name}: {bl[3]!r}')
        check(bl[6] == '\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;', f'{name}: {bl[6]!r}')
        fields = [l for l in bl[8:] if l.startswith('\tfield:')]
        check(all(re.fullmatch(r'\tfield:[^;]+ [a-z0-9_]+;\toffset:\d+;\tsize:\d+;\tsigned:[01];', l) for l in fields),
              f'{name}: field lines {fields!r}')
        want = len(names[name].split(', ')) if names[name] else 0
        check(len(fields) == want, f'{name}: {len(fields)} field lines, {want} fields listed')
        check(bl[-1].startswith('print fmt: "'), f'{name}: last line {bl[-1]!r}')
    check(len(ids) == len(blocks), 'event IDs are not unique')
    p = run(['trace', '--list-events', '--format', 'kvm_msr'])
    check(p.stdout.decode().startswith('name: kvm_msr\nID: ') and
          '\tfield:u64 data;\toffset:16;\tsize:8;\tsigned:0;\n' in p.stdout.decode() and
          '\nprint fmt: "msr_%s %x = 0x%llx%s", REC->write ? "write" : "read", REC->ecx, REC->data, '
          'REC->exception ? " (#GP)" : ""\n' in p.stdout.decode(), f'kvm_msr format: {p.stdout!r}')

    one_line_error(run(['trace', '--list-events', 'nothing*']), ['pvsim trace: error: ', '"nothing*" matches no event'],
                   'list glob matching nothing')
    one_line_error(run(['trace']), ['--list-events expected'], 'trace without --list-events')
    one_line_error(run(['trace', '--list-events', 'a', 'b']), ['one GLOB expected, got 2'], 'two globs')
    p = run(['--help'])
    check(b'trace --list-events' in p.stdout, 'pvsim --help does not list the trace command')


def group_events(d):
    s = os.path.join(SCEN, 'apf-orig-2.json')
    full = run(['run', s, '-q', '--trace', 'all.txt', '--trace-jsonl', 'all.jsonl'], d)
    part = run(['run', s, '-q', '--events', 'kvm_async_pf*,kvm_msr', '--trace', 'some.txt', '--trace-jsonl',
                'some.jsonl'], d)
    check(full.returncode == part.returncode, f'exit {full.returncode} vs {part.returncode} with --events')
    check(summary_hash(full) is not None and summary_hash(full) == summary_hash(part),
          f'summary hash {summary_hash(full)} vs {summary_hash(part)} with --events')
    all_lines = open(os.path.join(d, 'all.txt')).read().splitlines()
    some = open(os.path.join(d, 'some.txt')).read().splitlines()
    want = [l for l in all_lines if event_of(l).startswith('kvm_async_pf') or event_of(l) == 'kvm_msr']
    check(len(want) > 10 and some == want, f'--events text: {len(some)} lines, {len(want)} wanted')
    js = [json.loads(l) for l in open(os.path.join(d, 'some.jsonl'))]
    check([j['event'] for j in js] == [event_of(l) for l in want], '--events JSON Lines: other events')
    # kvm_*,-kvm_apic: every kvm_ event but kvm_apic (kvm_apic_ipi stays).
    run(['run', s, '-q', '--events', 'kvm_*,-kvm_apic', '--trace', 'k.txt'], d)
    k = open(os.path.join(d, 'k.txt')).read().splitlines()
    check(k == [l for l in all_lines if event_of(l).startswith('kvm_') and event_of(l) != 'kvm_apic'],
          '--events kvm_*,-kvm_apic')
    # A word that matches nothing: one line naming the option and the word, no output left.
    p = run(['run', s, '-q', '--events', 'kvm_msr,kvm_frobnicate', '--trace', 'bad.txt'], d)
    one_line_error(p, ['pvsim run: error: --events: "kvm_frobnicate" matches no event'], 'unknown event')
    check(not os.path.exists(os.path.join(d, 'bad.txt')), '--events error left bad.txt behind')
    one_line_error(run(['run', s, '-q', '--events', 'kvm_msr,,kvm_pio'], d), ['--events: "" matches no event'],
                   'empty term')


def group_time_order(d):
    s = os.path.join(SCEN, 'hello-smp4.json')
    a = run(['run', s, '-q', '--trace', 'a.txt', '--trace-jsonl', 'a.jsonl'], d)
    b = run(['run', s, '-q', '--time-order', '--trace', 'b.txt', '--trace-jsonl', 'b.jsonl'], d)
    check(a.returncode == b.returncode and summary_hash(a) == summary_hash(b), 'the run changed with --time-order')
    al = open(os.path.join(d, 'a.txt')).read().splitlines()
    bl = open(os.path.join(d, 'b.txt')).read().splitlines()
    back = sum(ts_of(al[i]) < ts_of(al[i - 1]) for i in range(1, len(al)))
    check(back > 0, 'the default trace of hello-smp4 never goes back in time: nothing to test')
    check(all(ts_of(bl[i - 1]) <= ts_of(bl[i]) for i in range(1, len(bl))), '--time-order output is not sorted')
    check(bl == sorted(al, key=ts_of), '--time-order is not the stable sort of the default output')
    aj = open(os.path.join(d, 'a.jsonl')).read().splitlines()
    bj = open(os.path.join(d, 'b.jsonl')).read().splitlines()
    order = sorted(range(len(aj)), key=lambda i: json.loads(aj[i])['ts_ns'])
    check(bj == [aj[i] for i in order], '--time-order JSON Lines')
    # With --events the sorted output holds the selected events only.
    run(['run', s, '-q', '--time-order', '--events', 'kvm_pio', '--trace', 'c.txt'], d)
    cl = open(os.path.join(d, 'c.txt')).read().splitlines()
    check(cl == [l for l in bl if event_of(l) == 'kvm_pio'], '--time-order with --events')


with tempfile.TemporaryDirectory() as d:
    {'list': group_list, 'events': group_events, 'time_order': group_time_order}[GROUP](d)
if failures:
    print(f'{len(failures)} check(s) failed')
    sys.exit(1)
print('ok')
