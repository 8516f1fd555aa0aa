#!/usr/bin/env python3
"""pvsim run --stop-at / --dump / --junit / --tap against shipped scenarios.

usage: inspect_cli.py PVSIM SCENARIO_DIR GROUP   (GROUP: stop, dump, reports, errors)

Each check compares what the option prints with an independent source: the trace of the
same run, the trace of the full run, or the scenario file itself.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

PVSIM, SCEN, GROUP = sys.argv[1], sys.argv[2], sys.argv[3]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args, expect_rc=None):
    p = subprocess.run([PVSIM, "run", *args], capture_output=True, text=True, timeout=240)
    if expect_rc is not None and p.returncode != expect_rc:
        print(p.stdout[-2000:], p.stderr[-2000:])
        check(False, f"pvsim run {' '.join(args)}: exit {p.returncode}, expected {expect_rc}")
    return p


def scen(name):
    return os.path.join(SCEN, name)


tmp = tempfile.mkdtemp(prefix="pvsim-inspect-")


def trace_lines(path):
    with open(path) as f:
        return f.read().splitlines()


if GROUP == "stop":
    # Stopping at an instruction point does not disturb the run: the stopped run's trace is
    # a prefix of the full run's, and the vCPU has retired exactly COUNT instructions.
    s = scen("apf-modern-4.json")
    full = os.path.join(tmp, "full.txt")
    run(s, "-q", "--trace", full, expect_rc=0)
    part = os.path.join(tmp, "part.txt")
    p = run(s, "-q", "--trace", part, "--stop-at", "v1.insn=20000", "--dump", "regs", expect_rc=0)
    a, b = trace_lines(full), trace_lines(part)
    check(len(b) < len(a), "the stopped run's trace is shorter")
    # The stopped run ends in two lines of its own: the action and the stop.
    check(a[: len(b) - 2] == b[:-2], "the stopped run's trace (but its two stop lines) is a prefix of the full run's")
    check("pvsim_action: v1.insn=20000: stop" in b[-2] + b[-1], "the stop is traced as a schedule action")
    check("=== vCPU 1: 20000 instructions," in p.stdout, "the dump shows vCPU 1 at exactly 20000 instructions")
    check("stopped at --stop-at v1.insn=20000" in p.stdout, "the summary names the point")
    # The dumped RIP is where the vCPU is: RIP= in the register dump equals the header's rip.
    m = re.search(r"rip 0x([0-9a-f]+) ===", p.stdout)
    m2 = re.search(r"RIP=([0-9a-f]{16})", p.stdout)
    check(m and m2 and int(m.group(1), 16) == int(m2.group(1), 16), "header rip equals RIP=")
    # A time point: every vCPU's dump header shows a virtual time at or past it.
    p = run(s, "-q", "--stop-at", "t=20us", "--dump", "regs", expect_rc=0)
    times = [float(t) for t in re.findall(r"virtual time (\d+\.\d+)", p.stdout)]
    check(len(times) == 4 and all(t >= 0.000020 for t in times), f"t=20us: every vCPU at or past 20us ({times})")
    # A point the run never reaches: exit 1 and the summary says so.
    p = run(s, "-q", "--stop-at", "v1.insn=999999999", expect_rc=1)
    check("the run ended before --stop-at v1.insn=999999999 was reached" in p.stdout, "unreached point is reported")
    # A symbol point (resolved in the guest image): the dumped RIP is the symbol's address.
    p = run(scen("kvmclock-modern.json"), "-q", "--stop-at", "v2.rip=kvmclock_sample#3", "--dump", "regs", expect_rc=0)
    check("stopped at --stop-at v2.rip=kvmclock_sample#3" in p.stdout, "rip point reached")
    nm = subprocess.run(["nm", os.path.join(SCEN, "guest/bin/kvmclock-O2.elf")], capture_output=True, text=True)
    sym = [l.split()[0] for l in nm.stdout.splitlines() if l.endswith(" kvmclock_sample")]
    m2 = re.search(r"RIP=([0-9a-f]{16})", p.stdout)
    check(sym and m2 and int(sym[0], 16) == int(m2.group(1), 16), "stopped at the symbol's address")

elif GROUP == "dump":
    # pv: the decoded kvmclock of each vCPU agrees with the last kvm_pvclock_update the trace
    # printed for it (the trace and the dump read different sources: the event's arguments
    # and guest memory).
    s = scen("kvmclock-modern.json")
    t = os.path.join(tmp, "t.txt")
    p = run(s, "-q", "--trace", t, "--stop-at", "t=1ms", "--dump", "pv", expect_rc=0)
    last = {}
    for line in trace_lines(t):
        m = re.match(r"CPU (\d+)/KVM.*kvm_pvclock_update: vcpu_id \d+, pvclock \{ version (\d+), tsc_timestamp (0x[0-9a-f]+), "
                     r"system_time (0x[0-9a-f]+)", line)
        if m:
            last[int(m.group(1))] = (int(m.group(2)), int(m.group(3), 16), int(m.group(4), 16))
    dumped = {}
    cur = None
    for line in p.stdout.splitlines():
        m = re.match(r"=== vCPU (\d+):", line)
        if m:
            cur = int(m.group(1))
        m = re.search(r"kvmclock \(MSR 0x4b564d01\) at GPA (0x[0-9a-f]+): version (\d+)[^,]*, tsc_timestamp (0x[0-9a-f]+), "
                      r"system_time (0x[0-9a-f]+)", line)
        if m and cur is not None:
            dumped[cur] = (int(m.group(2)), int(m.group(3), 16), int(m.group(4), 16), int(m.group(1), 16))
    check(len(last) == 4 and sorted(dumped) == [0, 1, 2, 3], f"four vCPUs with kvmclock ({sorted(last)}, {sorted(dumped)})")
    for v in dumped:
        check(dumped[v][:3] == last.get(v), f"vCPU {v}: dump {dumped[v][:3]} equals the last kvm_pvclock_update {last.get(v)}")
    # mem=: the raw bytes of vCPU 0's pvclock struct are the decoded values.
    if 0 in dumped:
        gpa = dumped[0][3]
        p = run(s, "-q", "--stop-at", "t=1ms", "--dump", f"mem={gpa:#x}+32", "--dump-vcpu", "0", expect_rc=0)
        data = bytes()
        for line in p.stdout.splitlines():
            m = re.match(r"  ([0-9a-f]{16}):((?: [0-9a-f]{2}| {3}| --)+)  \|", line)
            if m:
                base = int(m.group(1), 16)
                cells = [m.group(2)[i:i + 3] for i in range(0, len(m.group(2)), 3)]
                for k, c in enumerate(cells):
                    if c.strip() and gpa <= base + k < gpa + 32:
                        data += bytes([int(c, 16)])
        check(len(data) == 32, f"32 bytes dumped ({len(data)})")
        if len(data) == 32:
            version = int.from_bytes(data[0:4], "little")
            tsc = int.from_bytes(data[8:16], "little")
            st = int.from_bytes(data[16:24], "little")
            check((version, tsc, st) == dumped[0][:3], "the hex dump holds the decoded pvclock fields")
    # lapic and msrs: the x2APIC/xAPIC ID line and the kvmclock MSR by name.
    p = run(scen("apf-modern-4.json"), "-q", "--stop-at", "v2.insn=5000", "--dump", "lapic,msrs", expect_rc=0)
    check("lapic: xAPIC (IA32_APIC_BASE 0xfee00800), ID 0x2" in p.stdout, "vCPU 2's LAPIC ID")
    check(re.search(r"4b564d01 MSR_KVM_SYSTEM_TIME_NEW +0x[0-9a-f]{16}", p.stdout) is not None, "kvmclock MSR listed")
    check("=== vCPU 0" not in p.stdout, "only the point's vCPU by default")
    # --dump-file: the same text in a file, nothing of it on stdout.
    f = os.path.join(tmp, "dump.txt")
    p = run(scen("apf-modern-4.json"), "-q", "--stop-at", "v2.insn=5000", "--dump", "lapic,msrs", "--dump-file", f,
            expect_rc=0)
    check("lapic:" not in p.stdout and "lapic: xAPIC" in open(f).read(), "--dump-file gets the dump")
    # Without --stop-at the dump is of the machine at the end of the run.
    p = run(scen("hello-O2.json"), "-q", "--dump", "regs", expect_rc=0)
    check("=== vCPU 0:" in p.stdout and "RIP=" in p.stdout, "dump at the end of a run")

elif GROUP == "reports":
    s = scen("race-10-lapic-bug.json")
    j = os.path.join(tmp, "ok.xml")
    tap = os.path.join(tmp, "ok.tap")
    run(s, "-q", "--junit", j, "--tap", tap, expect_rc=0)
    spec = json.load(open(s))["expect"]
    n_expect = sum(1 for k in ("stop", "exit_status", "console", "trace_hash", "golden_trace") if k in spec) + sum(
        len(spec.get(k, [])) for k in ("console_contains", "console_excludes", "registers", "msrs", "trace"))
    root = ET.parse(j).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    check(len(cases) == n_expect + 1, f"one case per expectation plus run ({len(cases)} vs {n_expect}+1)")
    check(suite.get("failures") == "0" and all(c.find("failure") is None for c in cases), "all pass")
    lines = open(tap).read().splitlines()
    check(lines[0] == "TAP version 13" and lines[1] == f"1..{n_expect + 1}", "TAP plan")
    check(all(l.startswith("ok ") for l in lines[2:]), "TAP all ok")
    # A scenario whose expectations fail: the failing cases carry the summary's FAILED lines.
    bad = json.load(open(s))
    bad["expect"]["exit_status"] = 7
    bad["expect"]["console_contains"].append("text the guest never prints")
    bad["guest"]["image"] = os.path.join(SCEN, bad["guest"]["image"])
    bad.pop("explore", None)
    bp = os.path.join(tmp, "bad.json")
    json.dump(bad, open(bp, "w"))
    p = run(bp, "-q", "--junit", j, "--tap", tap, expect_rc=1)
    failed = re.findall(r"^FAILED (.*)$", p.stdout, re.M)
    suite = ET.parse(j).getroot().find("testsuite")
    msgs = [c.find("failure").get("message") for c in suite.findall("testcase") if c.find("failure") is not None]
    check(suite.get("failures") == "3", f"two expectations and the run fail ({suite.get('failures')})")
    check(sorted(msgs[:-1]) == sorted(failed), f"failure messages are the summary's FAILED lines: {msgs} vs {failed}")
    tl = open(tap).read()
    check(tl.count("\nnot ok ") == 3, "three not ok in TAP")
    # Deterministic bytes: a second run writes the same report.
    j2 = os.path.join(tmp, "again.xml")
    run(bp, "-q", "--junit", j2, expect_rc=1)
    check(open(j).read() == open(j2).read(), "the JUnit report is byte-identical on a second run")
    # --stop-at: expectations are skipped, the run case says whether the point was reached.
    run(s, "-q", "--stop-at", "v0.insn=1000", "--junit", j, expect_rc=0)
    suite = ET.parse(j).getroot().find("testsuite")
    check(suite.get("skipped") == str(n_expect) and suite.get("failures") == "0", "stop-at skips the expectations")

elif GROUP == "errors":
    s = scen("apf-modern-4.json")
    cases = [
        (["--dump", "regs,cpu"], 'pvsim run: error: --dump: position 6: unknown item "cpu"'),
        (["--stop-at", "v9.insn=1"], "--stop-at"),
        (["--stop-at", "t=1ms: preempt v1 1us"], "pvsim run: error: --stop-at: position 6: a guest point only"),
        (["--dump-vcpu", "1"], "pvsim run: error: --dump-vcpu needs --dump"),
        (["--dump", "regs", "--dump-vcpu", "7"], "pvsim run: error: --dump-vcpu: position 1: vCPU 7 does not exist"),
        (["--stop-at", "v0.rip=no_such_symbol"], "no_such_symbol"),
        (["--junit", s], "pvsim run: error: --junit"),
        (["--stop-at", "v0.insn=5", "--update-golden"], "pvsim run: error: --update-golden excludes"),
    ]
    for args, want in cases:
        p = run(s, "-q", *args, expect_rc=2)
        lines = p.stderr.strip().splitlines()
        check(len(lines) == 1 and want in lines[0], f"{args}: one line containing {want!r}, got {p.stderr!r}")
        check(p.stdout == "", f"{args}: nothing on stdout")
else:
    sys.exit(f"unknown group {GROUP}")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print(f"inspect {GROUP}: all checks passed")
