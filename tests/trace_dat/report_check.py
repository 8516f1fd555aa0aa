#!/usr/bin/env python3
"""`trace-cmd report` on a `pvsim run --trace-dat` file prints the events of `--trace`.

For each scenario below: pvsim run S --trace T.txt --trace-dat T.dat, then
`trace-cmd report -N -t -i T.dat`, and per vCPU, in time order, every line must carry the
same event with the same text as the canonical trace. Columns trace-cmd lays out its own way
are normalised: its comm-pid column must read "CPU i/KVM-<1000+i>" (pid i would be ftrace's
idle task; tools/platform/trace_dat.h), the [cpu] column i, the timestamp the same virtual ns
(-t prints all nine digits), and the event name is followed by padding instead of one space.

-N: without it, libtraceevent's kvm plugin prints kvm_exit and kvm_entry in its own layout
instead of their print fmt, as it does for a real KVM trace; the run with plugins is checked
too, for every other event, and for parsing every line.

Exit 77 (ctest SKIP) with one line saying why when trace-cmd is not installed.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Between them these runs trace every event the shipped scenarios produce: async PFs on 4
# vCPUs (modern protocol) and a repeated fault, the host scheduler with steal time, PV
# spinlock hypercalls and PV TLB flushes, PV EOI, IPIs and NMIs, guest exceptions, guest
# markers and schedule actions. A few thousand events each; the whole check takes a few seconds.
SCENARIOS = ["apf-modern-4.json", "apf-repeat.json", "pv-spinlock.json", "pv-eoi.json", "nmi.json",
             "exceptions-Os.json", "pv-version-wrap.json"]
# The events those runs must show (so a scenario change cannot quietly shrink the check).
EXPECTED_EVENTS = """kvm_apic kvm_apic_accept_irq kvm_apic_ipi kvm_async_pf_completed kvm_async_pf_not_present
    kvm_async_pf_ready kvm_async_pf_repeated_fault kvm_cpuid kvm_entry kvm_eoi kvm_exit kvm_hypercall
    kvm_inj_exception kvm_inj_virq kvm_msr kvm_page_fault kvm_pio kvm_pv_eoi kvm_pv_tlb_flush
    kvm_pvclock_update kvm_try_async_get_page pvsim_action pvsim_apf pvsim_exception pvsim_host
    pvsim_inj_nmi pvsim_marker pvsim_pv_eoi pvsim_sched_in pvsim_sched_out pvsim_steal pvsim_stop pvsim_vcpu""".split()
# And one filtered run: --trace-dat prints what --trace prints under the same --events.
FILTERED = ("apf-modern-4.json", "kvm_async_pf*,kvm_msr")

CANON = re.compile(r"^CPU (\d+)/KVM-(\d+) \[(\d{3})\] (\d+)\.(\d{9}): ([A-Za-z0-9_]+): (.*)$")
REPORT = re.compile(r"^\s*(.*)-(\d+)\s+\[(\d{3})\]\s+(\d+)\.(\d{9}): ([A-Za-z0-9_]+):( .*)$")
PID_BASE = 1000


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def canonical(path):
    """vCPU -> [(ts_ns, event, text)] in trace order."""
    out = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = CANON.match(line)
            if not m:
                fail(f"{path}:{n}: not a canonical trace line: {line!r}")
            vcpu = int(m.group(1))
            ts = int(m.group(4)) * 1_000_000_000 + int(m.group(5))
            out.setdefault(vcpu, []).append((ts, m.group(6), m.group(7)))
    return out


def report(dat, plugins):
    cmd = ["trace-cmd", "report", "-t", "-i", dat]
    if not plugins:
        cmd.insert(2, "-N")
    p = subprocess.run(cmd, capture_output=True)
    if p.returncode != 0:
        fail(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}")
    out = {}
    lines = p.stdout.decode("utf-8", errors="surrogateescape").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or not lines[0].startswith("cpus="):
        fail(f"{' '.join(cmd)}: no 'cpus=' header: {lines[:2]!r}")
    for n, line in enumerate(lines[1:], 2):
        m = REPORT.match(line)
        if not m:
            fail(f"{' '.join(cmd)} line {n}: unexpected layout: {line!r}")
        comm, pid, cpu = m.group(1), int(m.group(2)), int(m.group(3))
        if comm != f"CPU {cpu}/KVM" or pid != PID_BASE + cpu:
            fail(f"{' '.join(cmd)} line {n}: task {comm}-{pid} on CPU {cpu}, expected CPU {cpu}/KVM-{PID_BASE + cpu}")
        ts = int(m.group(4)) * 1_000_000_000 + int(m.group(5))
        out.setdefault(cpu, []).append((ts, m.group(6), m.group(7)))
    return out


def text_matches(padded, text):
    """trace-cmd pads the event name: one or more spaces, then exactly the text."""
    if not padded.endswith(text):
        return False
    pad = padded[: len(padded) - len(text)]
    return len(pad) >= 1 and set(pad) == {" "}


def compare(name, canon, rep, problems, skip_events=()):
    """Appends to `problems` the first difference of each event kind; returns the count of
    identical lines and the event names seen."""
    compared = 0
    events = set()
    reported = set()
    if sorted(canon) != sorted(rep):
        problems.append(f"{name}: vCPUs with events: trace {sorted(canon)}, trace-cmd report {sorted(rep)}")
        return compared, events
    for vcpu in sorted(canon):
        # A ring buffer is in time order; the canonical trace is in emission order, where an
        # event done on a vCPU's behalf can come stamped before that vCPU's latest one.
        want = sorted(canon[vcpu], key=lambda e: e[0])
        got = rep[vcpu]
        if len(want) != len(got):
            problems.append(f"{name}: vCPU {vcpu}: {len(want)} events in --trace, {len(got)} in trace-cmd report")
            continue
        for i, ((wts, wev, wtext), (gts, gev, gtext)) in enumerate(zip(want, got)):
            where = f"{name}: vCPU {vcpu} event {i}"
            if wts != gts or wev != gev:
                problems.append(f"{where}: --trace has {wev} at {wts} ns, trace-cmd report {gev} at {gts} ns")
                break  # the rest of this vCPU is out of step
            events.add(gev)
            if "FAILED TO PARSE" in gtext:
                if gev not in reported:
                    reported.add(gev)
                    problems.append(f"{where}: trace-cmd could not evaluate {gev}'s print fmt: {gtext!r}")
                continue
            if gev in skip_events:
                continue
            if not text_matches(gtext, wtext):
                if gev not in reported:
                    reported.add(gev)
                    problems.append(f"{where} ({gev}):\n  --trace:          {wtext!r}\n"
                                    f"  trace-cmd report: {gtext.lstrip(' ')!r}")
                continue
            compared += 1
    return compared, events


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pvsim", required=True)
    ap.add_argument("--scenarios", required=True)
    args = ap.parse_args()
    if shutil.which("trace-cmd") is None:
        print("skipped: trace-cmd is not installed (Debian package trace-cmd); --trace-dat is checked by "
              "trace_dat/* without it")
        return 77
    runs = [(s, None) for s in SCENARIOS] + [FILTERED]
    seen = set()
    all_problems = []
    with tempfile.TemporaryDirectory(prefix="pvsim-trace-dat-") as tmp:
        for scen, events in runs:
            path = os.path.join(args.scenarios, scen)
            tag = scen if events is None else f"{scen} --events '{events}'"
            txt = os.path.join(tmp, "t.txt")
            dat = os.path.join(tmp, "t.dat")
            cmd = [args.pvsim, "run", path, "-q", "--trace", txt, "--trace-dat", dat]
            if events is not None:
                cmd += ["--events", events]
            p = subprocess.run(cmd, capture_output=True)
            # 1 is a run whose expectations failed (a guest image out of date, say): its trace
            # is still a trace, and the files are written all the same.
            if p.returncode not in (0, 1) or not os.path.exists(dat):
                fail(f"{' '.join(cmd)} exited {p.returncode}: {p.stdout.decode(errors='replace')[-1500:]}"
                     f"{p.stderr.decode(errors='replace')[-1500:]}")
            canon = canonical(txt)
            if not canon:
                fail(f"{tag}: empty trace")
            problems = []
            n, ev = compare(tag, canon, report(dat, plugins=False), problems)
            # With plugins: same events and times; kvm_exit and kvm_entry in the kvm plugin's layout.
            compare(tag + " (with plugins)", canon, report(dat, plugins=True), problems,
                    skip_events=("kvm_exit", "kvm_entry"))
            if problems:
                all_problems += problems
                continue
            if events is not None:
                bad = sorted(e for e in ev if not (e.startswith("kvm_async_pf") or e == "kvm_msr"))
                if bad:
                    fail(f"{tag}: events outside the filter: {bad}")
            seen |= ev
            print(f"ok: {tag}: {n} events on {len(canon)} vCPUs identical")
    if all_problems:
        fail("\n".join(all_problems))
    missing = sorted(set(EXPECTED_EVENTS) - seen)
    if missing:
        fail(f"events no run compared: {', '.join(missing)} (the scenarios above no longer trace them?)")
    print(f"events compared: {', '.join(sorted(seen))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
