#!/usr/bin/env python3
"""The edges of the pvsim command line, run as a user would: hostile scenario files, output
paths that name inputs or devices, signals in the middle of a run, floods that must be capped.

usage: cli_edges.py PVSIM GROUP      (GROUP: input, output, signals, caps, bench; or all)

Each check runs pvsim in a fresh temporary directory and states what must hold: the exit
code, that an error is exactly one line naming the file and the JSON path (or position),
that no input was overwritten and no temporary was left behind. Every check here was a
defect once; the comment above it says what happened before."""
import json, os, signal, stat, subprocess, sys, tempfile, time

PVSIM = os.path.abspath(sys.argv[1])
GROUP = sys.argv[2] if len(sys.argv) > 2 else 'all'
HERE = os.path.dirname(os.path.abspath(__file__))
HELLO_BIN = os.path.join(HERE, 'good', 'hello.bin')  # prints "hi\n", exits with status 1
# mov al,'x'; out 0xe9,al; jmp back: a console flood that never ends.
FLOOD_BIN = bytes([0xb0, 0x78, 0xe6, 0xe9, 0xeb, 0xfa])
# A loop with no exit at all: runs until a limit or a signal stops it.
SPIN_BIN = bytes([0xeb, 0xfe])

failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print('FAIL:', what)


class Result:
    """What a run that hung looks like: no exit code, the reason on stderr."""
    def __init__(self, why):
        self.returncode, self.stdout, self.stderr = None, b'', why.encode()


def run(args, cwd, **kw):
    try:
        return subprocess.run([PVSIM] + args, cwd=cwd, capture_output=True, timeout=kw.pop('timeout', 120), **kw)
    except subprocess.TimeoutExpired as e:
        check(False, f'pvsim {" ".join(args)!r} did not finish within {e.timeout} s')
        return Result(f'(timed out after {e.timeout} s)\n')


def one_line_error(p, must_contain, what):
    """Exit 2 and exactly one line on stderr (no ESC byte) containing every string given."""
    err = p.stderr.decode('utf-8', 'replace')
    check(p.returncode == 2, f'{what}: exit code {p.returncode}, wanted 2 (stderr: {err!r})')
    check(err.count('\n') == 1 and err.endswith('\n'), f'{what}: error is not exactly one line: {err!r}')
    check('\x1b' not in err and '\x00' not in err, f'{what}: raw control bytes reach the terminal: {err!r}')
    for s in must_contain:
        check(s in err, f'{what}: {s!r} missing from {err!r}')


def scenario(d, name='s.json', image='img.bin', body='', image_bytes=None, raw=None):
    if image_bytes is not None:
        with open(os.path.join(d, image), 'wb') as f:
            f.write(image_bytes)
    text = raw if raw is not None else (
        '{"description": "edge test", "machine": {"ram_mib": 4}, '
        f'"guest": {{"image": {json.dumps(image)}, "format": "flat"}}' + (', ' + body if body else '') + '}')
    p = os.path.join(d, name)
    with open(p, 'w' if isinstance(text, str) else 'wb') as f:
        f.write(text)
    return p


def leftovers(d):
    return sorted(n for n in os.listdir(d) if 'partial' in n)


def hello(d, body=''):
    with open(HELLO_BIN, 'rb') as f:
        return scenario(d, image_bytes=f.read(), body=body)


# ---------------------------------------------------------------------------------------------
def group_input(d):
    hello(d)
    # A value nested 10^5 levels deep crashed `pvsim validate` (SIGSEGV: unbounded recursion
    # printing it for the error message). Now: refused at a bounded depth, with its position.
    deep = '{"description": "x", "machine": {"vcpus": ' + '[' * 100000 + ']' * 100000 + '}}'
    scenario(d, 'deep.json', raw=deep)
    p = run(['validate', 'deep.json'], d)
    one_line_error(p, ['deep.json: /machine/vcpus/0/0', 'nested deeper than 32 levels', 'line 1, column'],
                   'deep nesting')
    check(len(p.stderr) < 600, f'deep nesting: message of {len(p.stderr)} bytes is not bounded')
    # "vcpus": 1e400 was an internal error (exit 1) from the JSON parser's number overflow.
    scenario(d, 'big.json', raw='{"description": "x", "machine": {"vcpus": 1e400}}')
    one_line_error(run(['validate', 'big.json'], d),
                   ['big.json: /machine/vcpus: number 1e400 is out of range (at line 1, column 43)'], 'number overflow')
    # /dev/zero as the scenario read until std::bad_alloc; a directory, FIFO or device is now
    # named as what it is.
    one_line_error(run(['validate', '/dev/zero'], d), ['/dev/zero: scenario file is a character device'], '/dev/zero')
    one_line_error(run(['run', '/dev/zero'], d), ['/dev/zero: scenario file is a character device'], 'run /dev/zero')
    os.mkdir(os.path.join(d, 'dir.json'))
    one_line_error(run(['validate', 'dir.json'], d), ['dir.json: scenario file is a directory'], 'directory')
    os.mkfifo(os.path.join(d, 'fifo.json'))
    one_line_error(run(['validate', 'fifo.json'], d, timeout=20), ['fifo.json: scenario file is a FIFO'], 'FIFO')
    with open(os.path.join(d, 'huge.json'), 'wb') as f:
        f.truncate(17 << 20)
    one_line_error(run(['validate', 'huge.json'], d), ['huge.json: scenario file is larger than 16 MiB'], 'huge')
    # An image that is a directory or /dev/null reported "image file not found".
    os.mkdir(os.path.join(d, 'imgdir'))
    scenario(d, 'imgdir.json', image='imgdir')
    one_line_error(run(['validate', 'imgdir.json'], d), ['imgdir.json: /guest/image: ', 'imgdir is a directory'],
                   'image directory')
    scenario(d, 'imgnull.json', image='/dev/null')
    one_line_error(run(['validate', 'imgnull.json'], d),
                   ['imgnull.json: /guest/image: /dev/null is a character device'], 'image /dev/null')
    # Duplicate keys: the last one won silently.
    scenario(d, 'dup.json', raw='{"description": "x",\n "machine": {"vcpus": 1,\n  "vcpus": 99},'
                                ' "guest": {"image": "img.bin"}}')
    one_line_error(run(['validate', 'dup.json'], d),
                   ['dup.json: /machine/vcpus: duplicate key "vcpus" at line 3, column 3 (first at line 2, column 14)'],
                   'duplicate key')
    # A NUL in the image path booted the file named by the part before it.
    scenario(d, 'nul.json', raw='{"description": "x", "guest": {"image": "img.bin\\u0000junk", "format": "flat"}}')
    one_line_error(run(['validate', 'nul.json'], d), ['nul.json: /guest/image: contains a NUL character'], 'NUL')
    # Keys, register names, feature names and paths with line breaks or ANSI escapes produced
    # multi-line errors and reached the terminal raw.
    scenario(d, 'esc1.json', raw='{"description": "x", "ke\\u001b[31my\\nz": 1, "guest": {"image": "img.bin"}}')
    one_line_error(run(['validate', 'esc1.json'], d), ['/ke\\u001b[31my\\nz: unknown key'], 'escaped key')
    scenario(d, 'esc2.json', body='"expect": {"registers": [{"vcpu": 0, "reg": "r\\n\\u001b[2Jx", "value": 1}]}')
    one_line_error(run(['validate', 'esc2.json'], d), ['unknown register "r\\n\\u001b[2Jx"'], 'escaped register')
    scenario(d, 'esc3.json', raw='{"description": "x", "machine": {"kvm_cpuid": {"features": ["ASYNC\\nPF"]}}, '
                                 '"guest": {"image": "img.bin"}}')
    one_line_error(run(['validate', 'esc3.json'], d), ['unknown KVM feature name "ASYNC\\nPF"'], 'escaped feature')
    scenario(d, 'esc4.json', image='missing\n\x1b[31m.bin')
    one_line_error(run(['validate', 'esc4.json'], d), ['image file not found:', 'missing\\n\\u001b[31m.bin'],
                   'escaped path')
    name = 'new\nline\x1b.json'
    with open(os.path.join(d, name), 'w') as f:
        f.write('{')
    one_line_error(run(['validate', name], d), ['new\\nline\\u001b.json: invalid JSON'], 'escaped file name')
    # An unknown option with a control character in it.
    one_line_error(run(['run', '--tr\x1bace', 's.json'], d), ['\\u001b'], 'escaped option')


# ---------------------------------------------------------------------------------------------
def group_output(d):
    s = hello(d)
    original = open(s, 'rb').read()
    image = open(os.path.join(d, 'img.bin'), 'rb').read()
    # `--trace s.json` overwrote the scenario with the trace, `--trace IMAGE` the image.
    one_line_error(run(['run', 's.json', '--trace', 's.json'], d), ['--trace s.json: is the scenario file'],
                   'trace onto scenario')
    one_line_error(run(['run', 's.json', '--trace-jsonl', 'img.bin'], d), ['--trace-jsonl img.bin: is the guest image'],
                   'trace onto image')
    os.symlink('s.json', os.path.join(d, 'link-to-scenario'))
    one_line_error(run(['run', 's.json', '--trace', 'link-to-scenario'], d), ['is the scenario file'],
                   'trace onto a link to the scenario')
    check(open(s, 'rb').read() == original, 'the scenario file changed')
    check(open(os.path.join(d, 'img.bin'), 'rb').read() == image, 'the image changed')
    # The same path for --trace and --trace-jsonl left a garbled file.
    one_line_error(run(['run', 's.json', '--trace', 't.txt', '--trace-jsonl', 't.txt'], d),
                   ['--trace-jsonl t.txt: is the same file as --trace t.txt'], 'same output twice')
    check(not os.path.exists(os.path.join(d, 't.txt')), 'same output twice: a file was written')
    one_line_error(run(['run', 's.json', '--trace', '-', '--trace-jsonl', '-'], d),
                   ['--trace-jsonl -: --trace already writes to standard output'], 'stdout twice')
    # A directory or an empty name as the trace ran the whole scenario and then failed,
    # leaving "d.partial". Now refused before the run: nothing is written, exit 2.
    os.mkdir(os.path.join(d, 'd'))
    one_line_error(run(['run', 's.json', '--trace', 'd'], d), ['--trace d: is a directory'], 'trace is a directory')
    one_line_error(run(['run', 's.json', '--trace', ''], d), ['--trace: the file name is empty'], 'empty trace name')
    one_line_error(run(['run', 's.json', '--trace', 'nodir/t.txt'], d), ['directory nodir does not exist'],
                   'missing directory')
    check(leftovers(d) == [], f'leftover temporaries: {leftovers(d)}')
    # Devices and pipes are written directly: a symlink to a character device (as /dev/stdout
    # is) used to be replaced by a regular file through the rename.
    os.symlink('/dev/null', os.path.join(d, 'devlink'))
    p = run(['run', 's.json', '-q', '--trace', 'devlink'], d)
    check(p.returncode == 0, f'trace to a device link: exit {p.returncode} {p.stderr!r}')
    check(os.path.islink(os.path.join(d, 'devlink')), 'the symlink to /dev/null was replaced')
    # '-' is standard output: the trace alone there, console and summary on stderr.
    p = run(['run', 's.json', '--trace', '-'], d)
    out = p.stdout.decode()
    check(p.returncode == 0 and all(l.startswith('CPU 0/KVM-0 [000] ') for l in out.splitlines()) and out.endswith('\n'),
          f'--trace -: stdout is not just the trace: {out[:200]!r}')
    check('expectations' in p.stderr.decode() or 'stop: exit' in p.stderr.decode(), '--trace -: summary not on stderr')
    # A FIFO is written in place (a reader on the other end gets the trace).
    fifo = os.path.join(d, 'trace.fifo')
    os.mkfifo(fifo)
    reader = subprocess.Popen(['cat', fifo], stdout=subprocess.PIPE)
    p = run(['run', 's.json', '-q', '--trace', fifo], d)
    try:
        got = reader.communicate(timeout=60)[0].decode()
    except subprocess.TimeoutExpired:
        reader.kill()
        got = '(nothing: the FIFO was never opened for writing)'
        reader.communicate()
    check(p.returncode == 0 and got.startswith('CPU 0/KVM-0') and 'pvsim_stop' in got, f'FIFO trace: {got[:100]!r}')
    check(stat.S_ISFIFO(os.stat(fifo).st_mode), 'the FIFO was replaced')
    # A regular file behind a symlink: the file is replaced, the link kept.
    open(os.path.join(d, 'real.txt'), 'w').write('old\n')
    os.symlink('real.txt', os.path.join(d, 'tlink'))
    p = run(['run', 's.json', '-q', '--trace', 'tlink'], d)
    check(p.returncode == 0 and os.path.islink(os.path.join(d, 'tlink')) and
          open(os.path.join(d, 'real.txt')).read().startswith('CPU 0/KVM-0'), 'trace through a symlink')
    # A run that fails keeps the old file untouched.
    open(os.path.join(d, 'keep.txt'), 'w').write('old\n')
    bad = scenario(d, 'bad.json', image='missing.bin')
    p = run(['run', 'bad.json', '--trace', 'keep.txt'], d)
    check(p.returncode == 2 and open(os.path.join(d, 'keep.txt')).read() == 'old\n', 'failed run clobbered the output')
    check(leftovers(d) == [], f'leftover temporaries: {leftovers(d)}')
    # A read-only existing file is not replaced behind the user's back.
    ro = os.path.join(d, 'ro.txt')
    open(ro, 'w').write('old\n')
    os.chmod(ro, 0o444)
    if os.geteuid() != 0:  # root may write anything; the check is about permissions
        one_line_error(run(['run', 's.json', '--trace', 'ro.txt'], d), ['cannot write'], 'read-only trace')


# ---------------------------------------------------------------------------------------------
def group_signals(d):
    # SIGINT or SIGTERM mid-run left ".partial" files of hundreds of MB. Now the temporaries
    # are removed and the exit status is 128 + the signal, as shells report it.
    scenario(d, image_bytes=SPIN_BIN, body='"limits": {"max_instructions": 9007199254740992, "max_virtual_ms": 1000000000}')
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)):
        p = subprocess.Popen([PVSIM, 'run', 's.json', '-q', '--trace', 'sig.txt', '--trace-jsonl', 'sig.jsonl'], cwd=d,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        # Wait until the temporaries exist, so the signal arrives mid-run.
        deadline = time.time() + 30
        while len(leftovers(d)) < 2 and time.time() < deadline and p.poll() is None:
            time.sleep(0.02)
        check(len(leftovers(d)) == 2, f'{sig.name}: temporaries not created before the run ({leftovers(d)})')
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
        check(p.returncode == code, f'{sig.name}: exit {p.returncode}, wanted {code}')
        check(leftovers(d) == [], f'{sig.name}: temporaries left behind: {leftovers(d)}')
        check(not os.path.exists(os.path.join(d, 'sig.txt')), f'{sig.name}: a trace file was written')
        check(err.decode().count('\n') == 1, f'{sig.name}: message is not one line: {err!r}')


# ---------------------------------------------------------------------------------------------
def group_caps(d):
    # The console was kept in memory without a cap (10^8 bytes → 300 MB resident) and the
    # trace had no size cap (a console flood wrote 32 GB). Both now end the run as a limit.
    scenario(d, image_bytes=FLOOD_BIN, body='"limits": {"max_instructions": 9007199254740992}')
    p = run(['run', 's.json', '-q', '--max-console', '100K', '--max-trace', '0'], d)
    out = p.stdout.decode()
    check(p.returncode == 1 and 'stop: limit (the guest console reached limits.max_console_bytes (100 KiB)' in out,
          f'console cap: {p.returncode} {out!r}')
    p = run(['run', 's.json', '--max-console', '1000', '--max-trace', '0'], d)
    console = p.stdout.decode().split('stop: ')[0]
    check(console.strip('\n') == 'x' * 1000, f'console cap: not exactly 1000 bytes printed ({len(console)})')
    p = run(['run', 's.json', '-q', '--trace', 't.txt', '--max-trace', '1M', '--max-console', '0'], d)
    size = os.path.getsize(os.path.join(d, 't.txt'))
    check(p.returncode == 1 and 'stop: limit (the trace reached limits.max_trace_bytes (1 MiB))' in p.stdout.decode(),
          f'trace cap: {p.stdout!r}')
    check((1 << 20) < size < (1 << 20) + 4096, f'trace cap: file of {size} bytes')
    # The defaults stop a flood without any option: here the 1 GiB trace cap comes first
    # (every console byte is three trace lines), with the console not held in memory.
    p = run(['run', 's.json', '-q'], d, timeout=300)
    check('stop: limit (the trace reached limits.max_trace_bytes (1 GiB))' in p.stdout.decode(),
          f'default caps: {p.stdout!r}')
    p = run(['run', 's.json', '-q', '--max-trace', '0', '--max-console', '2M'], d, timeout=300)
    check('limits.max_console_bytes (2 MiB)' in p.stdout.decode(), f'console cap alone: {p.stdout!r}')
    # Without an expectation that needs it, the console is streamed and not held: 4 MiB of
    # console costs no more memory than a run that prints nothing.
    def max_rss_kib(args):
        # Under AddressSanitizer freed memory waits in a quarantine of up to 256 MiB, which
        # would count as resident here; with it off, what remains is what pvsim keeps.
        env = dict(os.environ)
        env['ASAN_OPTIONS'] = ':'.join(filter(None, [env.get('ASAN_OPTIONS', ''), 'quarantine_size_mb=0',
                                                      'thread_local_quarantine_size_kb=0']))
        child = subprocess.Popen([PVSIM] + args, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        return usage.ru_maxrss
    quiet_rss = max_rss_kib(['run', 's.json', '-q', '--max-trace', '0', '--max-console', '1'])
    flood_rss = max_rss_kib(['run', 's.json', '-q', '--max-trace', '0', '--max-console', '4M'])
    check(flood_rss - quiet_rss < 2048, f'console held in memory: {flood_rss} KiB against {quiet_rss} KiB')
    # The scenario keys work as the options do, and bad values are usage errors.
    scenario(d, 's2.json', image='img.bin', body='"limits": {"max_console_bytes": 10, "max_trace_bytes": 0}')
    p = run(['run', 's2.json'], d)
    check('limits.max_console_bytes (10 bytes)' in p.stdout.decode(), f'limits.max_console_bytes: {p.stdout!r}')
    one_line_error(run(['run', 's.json', '--max-console', '12Q'], d), ['--max-console: "12Q" is not a size'], 'bad size')
    one_line_error(run(['run', 's.json', '--max-trace', '99999999999T'], d), ['--max-trace'], 'huge size')


# ---------------------------------------------------------------------------------------------
def group_bench(d):
    # `pvsim bench --dir` defaulted to a path baked in at build time. It is now found next to
    # the binary (installed tree or source tree) — and a missing one is said so.
    p = run(['bench', '--help'], d)
    check(p.returncode == 0 and b'share/pvsim/scenarios/bench' in p.stdout, 'bench --help does not say where it looks')
    # From an unrelated directory, the source tree the binary was built in is found.
    p = run(['bench', '-n', '1', '-q', '--filter', 'no-such-workload'], d)
    check(p.returncode == 2 and b'no scenarios to run' in p.stderr, f'bench default dir: {p.stderr!r}')
    # A copy of the binary with no scenarios anywhere near it says what it tried.
    lone = os.path.join(d, 'bin', 'pvsim')
    os.makedirs(os.path.dirname(lone))
    with open(PVSIM, 'rb') as src, open(lone, 'wb') as dst:
        dst.write(src.read())
    os.chmod(lone, 0o755)
    p = subprocess.run([lone, 'bench', '-n', '1'], cwd=d, capture_output=True, timeout=60)
    one_line_error(p, ['no bench scenarios found (tried ', 'share/pvsim/scenarios/bench'], 'bench without scenarios')
    one_line_error(run(['bench', '--dir', 'nowhere'], d), ['--dir: nowhere is not a directory'], 'bench --dir missing')


def group_golden(d):
    # Goldens were only hashes ("hash differs"); now they are text beside the scenario, with a
    # first-difference report, and --update-golden rewrites them.
    hello(d, body='"expect": {"stop": "exit", "golden_trace": "golden/s.txt"}')
    os.mkdir(os.path.join(d, 'golden'))
    one_line_error(run(['run', 's.json'], d), ['s.json: /expect/golden_trace: ', 'golden/s.txt: cannot open golden trace',
                                               'pvsim run --update-golden writes it'], 'missing golden')
    one_line_error(run(['validate', 's.json'], d), ['s.json: /expect/golden_trace: ', 'missing'], 'validate: missing golden')
    p = run(['run', 's.json', '-q', '--update-golden'], d)
    g = os.path.join(d, 'golden', 's.txt')
    check(p.returncode == 0 and os.path.isfile(g) and 'golden trace written: ' in p.stdout.decode(),
          f'--update-golden: {p.returncode} {p.stdout!r} {p.stderr!r}')
    lines = open(g).read().splitlines()
    check(lines and lines[-1].endswith('pvsim_stop: reason exit: vCPU 0 wrote port 0xf4'), 'golden content')
    p = run(['run', 's.json', '-q'], d)
    check(p.returncode == 0 and 'expectations: all met' in p.stdout.decode(), f'golden matches: {p.stdout!r}')
    t = os.path.join(d, 't.txt')
    run(['run', 's.json', '-q', '--trace', t], d)
    check(open(t).read() == open(g).read(), '--trace and the golden differ')
    # One changed line: exit 1, the FAILED line names the line, the report shows context.
    changed = lines[:]
    changed[5] = changed[5].replace('kvm_', 'kvm_X', 1)
    open(g, 'w').write('\n'.join(changed) + '\n')
    p = run(['run', 's.json', '-q'], d)
    out = p.stdout.decode()
    check(p.returncode == 1 and 'FAILED expect.golden_trace: the trace differs from golden/s.txt at line 6: expected ' in out,
          f'golden difference: {out!r}')
    check(f'  -        6  {changed[5]}' in out and f'  +        6  {lines[5]}' in out and f'           5  {lines[4]}' in out,
          f'golden report: {out!r}')
    # The golden is an input: --trace onto it is refused; --update-golden may write it.
    one_line_error(run(['run', 's.json', '--trace', 'golden/s.txt'], d), ['is the golden trace'], 'trace onto golden')
    # A golden shorter than the trace.
    open(g, 'w').write('\n'.join(lines[:3]) + '\n')
    p = run(['run', 's.json', '-q'], d)
    check('golden/s.txt ends at line 3, but the trace goes on' in p.stdout.decode(), f'short golden: {p.stdout!r}')
    # --update-golden on a scenario without a golden is a usage error.
    hello(d)
    one_line_error(run(['run', 's.json', '--update-golden'], d), ['--update-golden: s.json has no expect.golden_trace'],
                   'update without golden')

    trace_diff_cases(os.path.join(d, 'diff'))


def first_line(p):
    return p.stdout.decode('utf-8', 'replace').split('\n', 1)[0]


def trace_diff_cases(d):
    # `pvsim diff A B` (tools/platform/trace_diff.h): exit 0 identical, 1 different, 2 bad
    # input, as cmp(1); the first stdout line is the verdict, scripts read it.
    os.mkdir(d)
    hello(d)
    p = run(['run', 's.json', '-q', '--trace', 't.txt', '--trace-jsonl', 't.jsonl'], d)
    n = len(open(os.path.join(d, 't.txt')).read().splitlines())
    check(p.returncode == 0 and f'({n} events)' in p.stdout.decode(), f'diff: the run: {p.stdout!r}')
    for a, b in (('t.txt', 't.jsonl'), ('t.jsonl', 't.txt'), ('t.txt', 't.txt')):
        p = run(['diff', a, b], d)
        check(p.returncode == 0 and p.stdout.decode() == f'traces are identical: {n} events\n' and not p.stderr,
              f'diff {a} {b}: {p.returncode} {p.stdout!r} {p.stderr!r}')
    lines = open(os.path.join(d, 't.txt')).read().splitlines()
    changed = lines[:]
    changed[4] = changed[4].replace('kvm_', 'kvm_X', 1)
    open(os.path.join(d, 'c.txt'), 'w').write('\n'.join(changed) + '\n')
    p = run(['diff', 't.jsonl', 'c.txt'], d)
    out = p.stdout.decode()
    check(p.returncode == 1 and first_line(p) == 'traces differ at event 5: A line 5, B line 5 (- A = t.jsonl, + B = c.txt)',
          f'diff: a changed line: {p.returncode} {out!r}')
    check(f'  -        5  {lines[4]}\n' in out and f'  +        5  {changed[4]}\n' in out and
          f'           4  {lines[3]}\n' in out, f'diff: the block: {out!r}')
    open(os.path.join(d, 'short.txt'), 'w').write('\n'.join(lines[:3]) + '\n')
    p = run(['diff', 't.txt', 'short.txt'], d)
    check(p.returncode == 1 and first_line(p) == 'traces differ at event 4: B ends after 3 events; A continues at line 4 '
          '(- A = t.txt, + B = short.txt)', f'diff: a prefix: {p.returncode} {p.stdout!r}')
    # --ignore-time: the same trace 1 us later.
    shifted = [l.replace('[000] 0.', '[000] 1.', 1) for l in lines]
    open(os.path.join(d, 'late.txt'), 'w').write('\n'.join(shifted) + '\n')
    p = run(['diff', 't.txt', 'late.txt'], d)
    check(p.returncode == 1 and first_line(p).startswith('traces differ at event 1: '), f'diff: shifted: {p.stdout!r}')
    p = run(['diff', '--ignore-time', 't.txt', 'late.txt'], d)
    check(p.returncode == 0 and first_line(p) == f'traces are identical: {n} events (timestamps ignored)',
          f'diff --ignore-time: {p.returncode} {p.stdout!r}')
    p = run(['diff', '--vcpu', '0', '--context', '1', 't.txt', 'c.txt'], d)
    check(p.returncode == 1 and first_line(p).startswith('traces differ at event 5 of vCPU 0: ') and
          len(p.stdout.decode().splitlines()) == 6, f'diff --vcpu --context: {p.stdout!r}')
    p = run(['diff', '--vcpu', '1', 't.txt', 'c.txt'], d)
    check(p.returncode == 0 and first_line(p) == 'traces are identical: 0 events of vCPU 1', f'diff --vcpu 1: {p.stdout!r}')
    # '-' reads one side from standard input, and a pipe streams (process substitution).
    p = run(['diff', '-', 't.txt'], d, input=open(os.path.join(d, 't.jsonl'), 'rb').read())
    check(p.returncode == 0 and first_line(p) == f'traces are identical: {n} events', f'diff -: {p.stdout!r} {p.stderr!r}')
    p = run(['diff', 't.txt', '/dev/stdin'], d, input=open(os.path.join(d, 'c.txt'), 'rb').read())
    check(p.returncode == 1 and first_line(p).endswith('(- A = t.txt, + B = /dev/stdin)'), f'diff pipe: {p.stdout!r}')
    p = run(['diff', '--help'], d)
    check(p.returncode == 0 and '--ignore-time' in p.stdout.decode() and '--vcpu' in p.stdout.decode(), 'diff --help')
    # Bad input: one line naming the file (and the line), exit 2, nothing on stdout.
    open(os.path.join(d, 'bad.txt'), 'w').write(lines[0] + '\nhello \x1b[31mworld\n')
    open(os.path.join(d, 'bad.jsonl'), 'w').write('{"ts_ns": 1, "vcpu": 0, "event": "kvm_entry"}\n')
    os.mkdir(os.path.join(d, 'dir'))
    for args, want in (
            (['t.txt', 'bad.txt'], ['bad.txt: line 2: not a pvsim trace line', '\\u001b[31m']),
            (['bad.jsonl', 't.txt'], ['bad.jsonl: line 1: kvm_entry has no field "rip"']),
            (['t.txt', 'nowhere.txt'], ['nowhere.txt: cannot open trace file: No such file or directory']),
            (['dir', 't.txt'], ['dir: trace file is a directory, not a trace']),
            (['/dev/zero', 't.txt'], ['/dev/zero: line 1: longer than 1 MiB: not a pvsim trace line']),
            (['s.json', 't.txt'], ['s.json: line 1: not a pvsim JSON Lines event: a nested object or array']),
            (['t.txt'], ['pvsim diff: error: two traces expected (A and B), got 1']),
            (['-', '-'], ['only one of A and B can be standard input']),
            (['--frobnicate', 't.txt', 't.txt'], ['pvsim diff: error: ', "'--frobnicate'"]),
            (['--context', 'x', 't.txt', 't.txt'], ['pvsim diff: error: --context: "x" is not a number from 0 to 10000']),
            (['--context', '10001', 't.txt', 't.txt'], ['--context: "10001" is not a number from 0 to 10000']),
            (['--vcpu', '-1', 't.txt', 't.txt'], ['pvsim diff: error: --vcpu: "-1" is not a vCPU index']),
            (['--vcpu', '4294967296', 't.txt', 't.txt'], ['--vcpu: "4294967296" is not a vCPU index'])):
        p = run(['diff'] + args, d)
        one_line_error(p, want, f'diff {args}')
        check(p.stdout == b'', f'diff {args}: stdout {p.stdout!r}')


def group_trace_expect(d):
    # Descriptions said things the trace did not show; expect.trace claims are now checked
    # on the running trace, and a description must cite them.
    body = ('"expect": {"stop": "exit", "trace": ['
            '{"name": "out-then-exit", "in_order": ["kvm_pio: pio_write at 0xe9 size 1 count 1 val 0x68",'
            ' "kvm_pio: pio_write at 0xe9 size 1 count 1 val 0x69", "kvm_pio: pio_write at 0xf4"]},'
            '{"name": "three-chars", "count": "pio_write at 0xe9", "min": 3, "max": 3},'
            '{"name": "no-nmi", "absent": "pvsim_inj_nmi"}]}')
    hello(d, body=body)
    raw = open(os.path.join(d, 's.json')).read().replace('"edge test"', '"h, i [out-then-exit]; [three-chars]; [no-nmi]"')
    open(os.path.join(d, 's.json'), 'w').write(raw)
    p = run(['run', 's.json', '-q'], d)
    check(p.returncode == 0 and 'expectations: all met' in p.stdout.decode(), f'trace claims hold: {p.stdout!r}')
    open(os.path.join(d, 'bad.json'), 'w').write(raw.replace('"min": 3, "max": 3', '"min": 4')
                                                 .replace('val 0x69', 'val 0x6a'))
    p = run(['run', 'bad.json', '-q'], d)
    out = p.stdout.decode()
    check(p.returncode == 1 and 'FAILED expect.trace[0] [out-then-exit]: 1 of 3 patterns found in order' in out and
          'FAILED expect.trace[1] [three-chars]: "pio_write at 0xe9" matches 3 line(s), expected at least 4' in out,
          f'trace claims fail: {out!r}')
    open(os.path.join(d, 'uncited.json'), 'w').write(raw.replace('[no-nmi]', 'no NMI'))
    one_line_error(run(['validate', 'uncited.json'], d), ['/expect/trace/2/name: "no-nmi" is not cited in /description'],
                   'uncited claim')


def group_ram(d):
    # ram_mib 65536 on a host that cannot reserve that much address space was an internal
    # error (exit 1). The host's limit is simulated with an RLIMIT_AS of 4 GiB (not under
    # AddressSanitizer, which needs terabytes of address space for its shadow memory).
    hello(d, body='"expect": {"stop": "exit"}')
    raw = open(os.path.join(d, 's.json')).read().replace('"ram_mib": 4', '"ram_mib": 65536')
    open(os.path.join(d, 'big.json'), 'w').write(raw)
    for cmd in ('validate', 'run'):
        p = subprocess.run(['sh', '-c', f'ulimit -v 4194304 && exec "$0" {cmd} big.json', PVSIM], cwd=d,
                           capture_output=True, timeout=60)
        one_line_error(p, ['big.json: /machine/ram_mib: 65536 MiB of guest RAM: cannot reserve'], f'{cmd} ram_mib')


def group_schedule(d):
    # --schedule and pvsim explore (scenarios/README.md "schedule", tools/platform/explore.h):
    # bad input is one line and exit 2; a fired entry is traced; explore's replay command
    # reproduces its variant's trace hash; shards merge to the single run.
    s = hello(d, body='"expect": {"stop": "exit"}')
    one_line_error(run(['run', 's.json', '--schedule', 'v0.insn=5: preemt v0 1us'], d),
                   ["--schedule: position 12: unknown action 'preemt'"], 'schedule typo')
    one_line_error(run(['run', 's.json', '--schedule', 'v3.insn=5: stop'], d),
                   ['--schedule: entry 1: vCPU 3 does not exist (machine.vcpus is 1)'], 'schedule vCPU')
    one_line_error(run(['run', 's.json', '--schedule', 'v0.rip=main: stop'], d),
                   ['--schedule: entry 1: the guest image has no symbol "main" (it has no symbol table at all)'],
                   'schedule symbol in a flat image')
    raw = open(s).read().replace('"expect"', '"schedule": ["v0.rip=main#2: stop"], "expect"')
    open(os.path.join(d, 'sym.json'), 'w').write(raw)
    one_line_error(run(['validate', 'sym.json'], d),
                   ['sym.json: /schedule/0: the guest image has no symbol "main" (it has no symbol table at all)'],
                   'validate resolves schedule symbols')
    one_line_error(run(['run', 's.json', '--schedule', 'v0.insn=1: stop', '--update-golden'], d),
                   ['--update-golden excludes --schedule and --stop-at'], 'schedule + update-golden')
    t = os.path.join(d, 't.txt')
    p = run(['run', 's.json', '-q', '--schedule', 'v0.insn=2: stop', '--trace', t], d)
    out = p.stdout.decode()
    check(p.returncode == 1 and 'stop: point (schedule: v0.insn=2: stop)' in out, f'schedule stop: {out!r}')
    check('pvsim_action: v0.insn=2: stop' in open(t).read(), 'schedule stop is traced')
    # explore: bad windows and shards, then a real exploration, its JSON Lines and a merge.
    one_line_error(run(['explore', 's.json', '--window', 'v0.insn=9..3', '--place', 'stop'], d),
                   ['--window: the window ends before it starts'], 'explore window')
    one_line_error(run(['explore', 's.json', '--window', 'v0.insn=1..3', '--place', 'stop', '--shard', '3/2'], d),
                   ['--shard: "3/2" is not i/N'], 'explore shard')
    one_line_error(run(['explore', 's.json', '--window', 'v0.insn=1..3', '--place', 'stop', '--outcome', 'reg:v0.xyz'], d),
                   ['--outcome: "reg:v0.xyz" is not an outcome field'], 'explore outcome')
    one_line_error(run(['explore', 's.json', '--window', 'v0.insn=100000..100001', '--place', 'stop'], d),
                   ['the run ends before vCPU 0 retires 100000 instructions'], 'explore window past the end')
    p = run(['explore', 's.json', '-q', '--window', 'v0.insn=1..6', '--place', 'stop', '--jsonl', 'all.jsonl'], d)
    out = p.stdout.decode()
    check(p.returncode == 1 and '6 variants in 1 group; 6 failing' in out, f'explore: {out!r}')
    check("replay variant 0: pvsim run s.json --schedule 'v0.insn=1: stop'" in out, f'explore replay: {out!r}')
    lines = open(os.path.join(d, 'all.jsonl')).read().splitlines()
    check(len(lines) == 6 and all(json.loads(l)['pass'] is False for l in lines), f'explore jsonl: {lines!r}')
    for i in (1, 2):
        run(['explore', 's.json', '-q', '--window', 'v0.insn=1..6', '--place', 'stop', '--shard', f'{i}/2',
             '--jsonl', f'part{i}.jsonl'], d)
    merged = run(['explore', '--merge', 'part1.jsonl', 'part2.jsonl'], d).stdout.decode()
    check(merged == out.split('\n', 1)[1], f'merge differs: {merged!r} vs {out!r}')
    one_line_error(run(['explore', '--merge', 'part1.jsonl'], d), ['variant 1 is in none of the files'], 'merge gap')
    one_line_error(run(['explore', '--merge', 'part1.jsonl', 'part1.jsonl'], d), ['(a shard given twice?)'],
                   'merge twice')


def group_section(d):
    # machine.kvm.bugs and the scenario's "explore" section (scenarios/README.md "explore",
    # pvmsr/README.md §2.5): bad input is one line naming the JSON path, exit 2; the section
    # runs without options and its expect counts decide the exit status.
    def with_body(name, body):
        raw = open(hello(d)).read()[:-1] + ', ' + body + '}'
        if body.startswith('"machine"'):
            raw = raw.replace('"machine": {"ram_mib": 4}, ', '', 1)
        open(os.path.join(d, name), 'w').write(raw)
        return name
    bad = [
        ('"machine": {"ram_mib": 4, "kvm": {"bugs": ["kvmclock_no_backwards_clamp"]}}',
         's.json: /machine/kvm/bugs/0: "kvmclock_no_backwards_clamp" is a bug of the orig profile'),
        ('"machine": {"ram_mib": 4, "kvm": {"abi": "orig", "bugs": {"apf_token_zero": true}}}',
         '/machine/kvm/bugs/apf_token_zero: "apf_token_zero" is a bug of the modern profile'),
        ('"machine": {"ram_mib": 4, "kvm": {"bugs": {"apf_token_zer0": true}}}',
         '/machine/kvm/bugs/apf_token_zer0: unknown bug "apf_token_zer0"'),
        ('"machine": {"ram_mib": 4, "kvm": {"bugs": {"apf_token_zero": "yes"}}}',
         '/machine/kvm/bugs/apf_token_zero: must be true or false'),
        ('"machine": {"ram_mib": 4, "kvm": {"bugs": "apf_token_zero"}}', '/machine/kvm/bugs: must be an array'),
        ('"explore": {"place": "stop"}', '/explore: missing required key "window"'),
        ('"explore": {"window": "v0.insn=1..3"}', '/explore: give exactly one of "place", "interleave" or "pct"'),
        ('"explore": {"window": "v0.insn=3..1", "place": "stop"}', '/explore/window: the window ends before it starts'),
        ('"explore": {"window": "v1.insn=1..3", "place": "stop"}', '/explore/window: vCPU 1 does not exist'),
        ('"explore": {"window": "v0.insn=1..3", "place": "stpo"}', "/explore/place: position 1: unknown action 'stpo'"),
        ('"explore": {"window": "v0.insn=1..3", "place": "preempt v4 1us"}', '/explore/place: vCPU 4 does not exist'),
        ('"explore": {"window": "v0.insn=1..3", "interleave": "v0"}', '/explore/interleave: at least two vCPUs'),
        ('"explore": {"window": "v0.insn=1..3", "place": "stop", "bound": 2}', '/explore/bound: only meaningful with'),
        ('"explore": {"window": "v0.insn=1..3", "place": "stop", "outcome": ["exit", "colour"]}',
         '/explore/outcome: "colour" is not an outcome field'),
        ('"explore": {"window": "v0.insn=1..3", "place": "stop", "expect": {"variants": 4}}',
         '/explore/expect/variants: the exploration has 3 variants, not 4'),
        ('"explore": {"window": "v0.insn=1..3", "place": "stop", "expect": {"failing": 5}}',
         '/explore/expect/failing: more than the 3 variants'),
        ('"explore": {"window": "v0.insn=1..3", "place": "stop", "expect": {"fails": 1}}', '/explore/expect/fails: unknown key'),
    ]
    for k, (body, msg) in enumerate(bad):
        name = with_body(f'b{k}.json', body)
        one_line_error(run(['explore', name], d), [msg.replace('s.json', name)], f'section {k}')
        one_line_error(run(['validate', name], d), [msg.replace('s.json', name)], f'validate section {k}')
    one_line_error(run(['explore', 's.json'], d), ['s.json has no "explore" section'], 'no section')
    one_line_error(run(['bugs', '--profile', 'new'], d), ['--profile: "new" is not orig or modern'], 'bugs profile')
    out = run(['bugs', '--profile', 'modern'], d).stdout.decode()
    check('apf_token_zero' in out and 'kvmclock_even_version_copy' not in out and '6f3c1fc53d86' in out,
          f'bugs --profile modern: {out!r}')
    # The section: six placements of a stop, all failing (the guest never prints its lines).
    ok = with_body('x.json', '"expect": {"stop": "exit"}, '
                   '"explore": {"window": "v0.insn=1..6", "place": "stop", "expect": {"variants": 6, "failing": 6}}')
    p = run(['explore', ok, '-q'], d)
    out = p.stdout.decode()
    check(p.returncode == 0 and 'explore.expect holds: 6 variants, 6 failing, 1 group' in out, f'section run: {out!r}')
    wrong = with_body('y.json', '"expect": {"stop": "exit"}, '
                      '"explore": {"window": "v0.insn=1..6", "place": "stop", "expect": {"failing": 0, "groups": 2}}')
    p = run(['explore', wrong, '-q'], d)
    err = p.stderr.decode()
    check(p.returncode == 1 and 'explore.expect does not hold: failing 6 (expected 0), groups 1 (expected 2)' in err,
          f'section mismatch: {p.returncode} {err!r}')
    # Options still win over the section: the same file explored elsewhere ignores its counts.
    p = run(['explore', wrong, '-q', '--window', 'v0.insn=1..2', '--place', 'stop'], d)
    check(p.returncode == 1 and '2 variants in 1 group; 2 failing' in p.stdout.decode(), 'options over section')


GROUPS = {'section': group_section, 'schedule': group_schedule, 'input': group_input, 'ram': group_ram, 'golden': group_golden, 'trace_expect': group_trace_expect, 'output': group_output, 'signals': group_signals, 'caps': group_caps,
          'bench': group_bench}
for name, fn in GROUPS.items():
    if GROUP in ('all', name):
        with tempfile.TemporaryDirectory(prefix=f'pvsim-edges-{name}-') as d:
            fn(d)
if GROUP != 'all' and GROUP not in GROUPS:
    sys.exit(f'unknown group {GROUP}')
print(f'{checks - len(failures)} of {checks} checks passed')
sys.exit(1 if failures else 0)
