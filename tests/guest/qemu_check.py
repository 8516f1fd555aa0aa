#!/usr/bin/env python3
"""Do the shipped guest programs run only on pvsim? For every program in
scenarios/guest/programs/, boots the very image of one of its shipped scenarios (the -O2
ELF that `pvsim run` loads, wrapped byte for byte for QEMU's Multiboot loader by
tools/bench/guestboot.py) under QEMU with that scenario's vCPU count and RAM, and checks
that it prints the same result lines as `pvsim run` of the scenario:

  result lines  the kvm-unit-tests-style "PASS: ", "FAIL: ", "SKIP: " and "SUMMARY: "
                lines of scenarios/guest/lib/report.c, plus "Unhandled exception" and the
                Multiboot front end's own "multiboot: " lines, in order;
  exit status   QEMU's isa-debug-exit status, which is pvsim's "exit status".

Where a program legitimately behaves differently under QEMU, DIFFERENCES below says
exactly which lines differ, under which accelerator, how and why; the check fails if the
difference is not what happens (or if a documented line no longer exists). Everything
else must match to the byte.

  --accel tcg   QEMU's TCG (always available where QEMU is)
  --accel kvm   QEMU with KVM; exits 77 (ctest: skipped), saying why, when /dev/kvm is
                missing or cannot be opened
Exits 0 when everything matches, 1 on the first mismatch of any program (one line each:
program, accelerator, first differing line), 2 on a usage or set-up error, and 77 when
qemu-system-x86_64 is not installed. Standard library only.
"""

import argparse
import concurrent.futures
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools" / "bench"))
import guestboot  # noqa: E402

SCENARIOS = REPO / "scenarios"
PROGRAMS = REPO / "scenarios" / "guest" / "programs"

# The shipped scenario each check boots: its guest image, machine.vcpus, machine.ram_mib
# and machine.start. Every programs/*.c must appear (the check fails on a program that
# has none, so a new program cannot be forgotten). One scenario per program, except hello,
# which also runs on 4 vCPUs to exercise the front end's start of vCPUs that only finish.
CASES = [
    "cpuid_msr-O2", "divmul-O2", "exceptions-O2", "garbage-1", "hello-O2", "hello-smp4", "init", "init-bsp",
    "ipi", "kvmclock-modern", "lapic_timer", "nmi", "printf-O2", "quicksort-O2", "scale/scale-1",
    "spinlock-q10000", "tpr", "usermode-O2", "wallclock", "default", "apf-repeat", "apf-limit", "apf-cpl0",
    "apf-irqoff", "apf-disable", "apf-reenable", "apf-early-wake", "apf-lapic-off",
    "pv-steal", "pv-tlb-modern", "pv-eoi", "pv-spinlock", "pv-ipi", "pv-clock-torn-modern", "pv-clock-stopped",
    "pv-clock-pairs", "pv-hypercall",
]

RESULT_RE = re.compile(r"^(PASS|FAIL|SKIP|SUMMARY): |^Unhandled exception |^multiboot: ")
DEFAULT_TIMEOUT = 120.0  # seconds per QEMU run; longer is a failure (KVM via PVM takes up to 20 s unloaded)


# ---------------------------------------------------------------------------------------
# Documented differences.
#
# Accelerator keys: "tcg"; "kvm" = QEMU with any KVM, including "pvm"; "pvm" = KVM provided
# by the kvm_pvm module (PVM: KVM without VMX/SVM, the guest kernel runs deprivileged and
# privileged work is emulated), which cannot run some of these bare-metal guests as
# hardware KVM does; "qemu" = every QEMU run.
#
# Kinds of difference, applied to pvsim's result lines to give the expected QEMU lines:
#   Vary(regex, status)   the pvsim line whose text (after "PASS: " etc.) fully matches
#                         regex: QEMU prints the same check and its text must match regex
#                         too (the parts the regex leaves open may differ); with status, its
#                         PASS/FAIL may differ as well. The SUMMARY line and the exit status
#                         must then be what QEMU's own lines add up to.
#   Replace(regex, lines) the pvsim line (whole, with its "PASS: ") matching regex becomes
#                         exactly these lines (none: the line is absent under QEMU); a line
#                         may use the regex's groups (\1, \g<1>) for parts pvsim printed.
#   Append(lines)         exactly these lines follow pvsim's last result line.
#   Only(lines)           QEMU prints exactly these result lines, whatever pvsim printed.
#   Ends(kind, lines)     QEMU does not get to the end: kind "kvm-internal-error" (QEMU
#                         reports "KVM internal error" and stops the VM; the check ends the
#                         QEMU process) after exactly the first `lines` expected lines; kind
#                         "not-compared" (random code: the end is not compared, QEMU runs
#                         until the program's timeout or stops).
#   Lines(regex)          for this program, lines matching regex count as result lines too.
# Every regex must match a pvsim line (the check fails when a documented line is gone).

@dataclass
class Vary:
    regex: str
    status: bool = False


@dataclass
class Replace:
    regex: str
    lines: tuple = ()


@dataclass
class Append:
    lines: tuple


@dataclass
class Only:
    lines: tuple


@dataclass
class Ends:
    kind: str
    lines: int = 0


@dataclass
class Lines:
    regex: str


@dataclass
class Difference:
    program: str
    accel: str
    why: str
    changes: list = field(default_factory=list)


TIMING = ("the guest's timing checks assume pvsim's cost model (a VM exit of about 1200 cycles, SLACK_CYCLES "
          "4000) and the scenario's 2.5 GHz TSC; under QEMU the TSC is the host's (KVM here cannot scale it, and "
          "TCG follows host time) and every exit or translation costs real time, so how late an interrupt is seen "
          "varies from run to run and usually exceeds the slack")

# The async-PF programs: under TCG, CPUID has no KVM leaves, so each says so (SKIP) and ends;
# apf_tasks still runs its tasks, with every touch an ordinary access. Under KVM they are not
# run at all (APF_PROGRAMS): a real host swaps nothing out on the scenario's cue, so what
# they check — which touch faulted, how long the host took — is not reproducible there.
APF_SKIP = "SKIP: async page faults: CPUID 0x40000001 offers neither ASYNC_PF (bit 4) nor ASYNC_PF_INT (bit 14)"
APF_EDGES = ("apf_repeat", "apf_limit", "apf_cpl0", "apf_irqoff", "apf_disable", "apf_reenable", "apf_early_wake",
             "apf_lapic_off")
APF_PROGRAMS = ("apf_tasks",) + APF_EDGES
APF_TCG = "TCG offers no KVM CPUID leaves, so the guest finds no async PF to enable"

# The paravirtual programs (scenarios/guest/README.md "Paravirtual features"): under TCG,
# CPUID has no KVM leaves, so each says what it misses (SKIP) and ends. Under KVM they are not
# run (PV_PROGRAMS): most checks rest on what the scenario's host does on cue (preemption
# windows, a busy host thread, a pause, KVM's stores spaced in time, a shortened clock-update
# delay), a host with APICv never arms PV EOI (pvmsr/README.md §7), and which PV features the
# guest finds (PV_UNHALT, PV_SEND_IPI, PV_TLB_FLUSH, ...) depends on QEMU's CPU model and
# version, not on the scenario.
PV_PROGRAMS = ("pv_steal", "pv_tlb", "pv_spinlock", "pv_clock_torn", "pv_clock_stopped", "pv_clock_pairs",
               "pv_eoi", "pv_ipi", "pv_hypercall")
PV_TCG = "TCG offers no KVM CPUID leaves: no kvmclock, steal time, PV EOI or hypercalls to use"

# The race catalogue's programs (apf_race_*, pv_race_*; README "The race catalogue") are run
# under neither accelerator: each one's point is a historic KVM bug that pvsim's
# machine.kvm.bugs turns on and a host action that `pvsim explore` places at an exact
# instruction; QEMU can do neither, so all they could show there is "no KVM leaves" (TCG)
# or today's KVM passing (KVM), which their fix scenarios already show under pvsim.
def race_program(program):
    return re.match(r"^(apf|pv)_race_", program) is not None

DIFFERENCES = [
    Difference("apf_tasks", "tcg", APF_TCG,
               [Only(("SKIP: async PF not offered by CPUID (no ASYNC_PF, bit 4): every touch stalls in the host",
                      "PASS: 12 pages: each first read found zeros, then the pattern written read back intact",
                      "PASS: all 6 workers and 2 compute tasks finished", "SUMMARY: 3 tests, 1 skipped"))]),
] + [Difference(p, "tcg", APF_TCG, [Only((APF_SKIP, "SUMMARY: 1 tests, 1 skipped"))]) for p in APF_EDGES] + [
    Difference(p, "tcg", PV_TCG, [Only((skip, "SUMMARY: 1 tests, 1 skipped"))]) for p, skip in (
        ("pv_steal", "SKIP: STEAL_TIME (bit 5) not offered by CPUID"),
        ("pv_tlb", "SKIP: CPUID offers no kvmclock"),
        ("pv_spinlock", "SKIP: no kvmclock"),
        ("pv_ipi", "SKIP: PV_SEND_IPI (bit 11) not offered by CPUID"),
        ("pv_clock_torn", "SKIP: CPUID offers no kvmclock"),
        ("pv_clock_stopped", "SKIP: CPUID offers no kvmclock"),
        ("pv_clock_pairs", "SKIP: CPUID offers no kvmclock"),
        ("pv_hypercall", "SKIP: no KVM signature in CPUID: no hypercalls"))] + [
    Difference("pv_eoi", "tcg", PV_TCG,
               [Only(("PASS: PV EOI off: 32 interrupts, 32 EOI writes", "SKIP: PV_EOI (bit 6) not offered by CPUID",
                      "SUMMARY: 2 tests, 1 skipped"))]),
] + [
    # --- every QEMU run ---------------------------------------------------------------
    Difference("cpuid_msr", "qemu",
               "CPUID describes QEMU's CPU model, not pvsim's: the highest basic leaf, the vendor and the leaf 1 ECX "
               "bits are the model's; and a 1-vCPU QEMU machine reports 0 in CPUID.1:EBX[23:16], which is "
               "architecturally meaningful only with CPUID.1:EDX.HTT set (SDM Vol.2A, CPUID): the program's check is "
               "stricter than the architecture (reported as a program fix)",
               [Vary(r'cpuid: leaf 0: max basic leaf 0x[0-9a-f]+, vendor "[ -~]{12}"'),
                Vary(r"cpuid: leaf 1: ECX\[31\] hypervisor bit set \(ecx 0x[0-9a-f]{8}\)"),
                Replace(r"PASS: cpuid: leaf 1: EBX\[23:16\] = 1 logical processors \(boot says 1\)",
                        ("FAIL: cpuid: leaf 1: EBX[23:16] = 0 logical processors (boot says 1)",))]),
    Difference("init", "qemu", "the counters depend on how far vCPU 1 got in real time",
               [Vary(r"vCPU 1 is running \(counter \d+ -> \d+\)"),
                Vary(r"after INIT vCPU 1 makes no progress \(counter \d+ -> \d+\)")]),
    Difference("nmi", "qemu", "how long vCPU 1 spins before the NMI lands depends on real time",
               [Vary(r"IF=0 loop: the NMI was taken inside the loop \(after \d+ spins\)")]),
    Difference("garbage", "qemu",
               "random bytes run as code: after the first line (the seed, which proves the same RAM size and so "
               "the same bytes) the rounds depend on how each CPU treats undefined encodings (e.g. QEMU's TCG "
               "raises #GP where pvsim and hardware raise #SS) and on what QEMU's devices do with random port "
               "writes; pvsim's run ends on a hole or a deadlock, QEMU's usually runs until the timeout",
               [Lines(r"garbage: seed .*"), Ends("not-compared", 1)]),
    Difference("lapic_timer", "qemu", TIMING,
               [Vary(r"one-shot: current count decreases while counting: \d+ then \d+ \(initial 10000\)", status=True),
                Vary(r"one-shot: fired once, 400000 cycles after the write \(\+-?\d+, slack 4000\)", status=True),
                Vary(r"periodic: \d+ periods taken", status=True),
                Vary(r"periodic: first expiry one period after the write \(\+-?\d+\)", status=True),
                Vary(r"periodic: consecutive expiries one period apart \(within 2000 cycles\)", status=True),
                Vary(r"periodic: 4 periods span \d+ cycles \(expected 500000\): no drift", status=True),
                Vary(r"periodic: stopped after 5 periods \(\d+ taken\)", status=True)]),
    # --- TCG ------------------------------------------------------------------------------
    Difference("cpuid_msr", "tcg",
               "QEMU 7.2's TCG advertises no KVM leaves (signature TCGTCGTCGTCG, features 0) and, unlike hardware "
               "and KVM, raises no #GP for RDMSR/WRMSR of an unknown MSR, for reserved EFER bits or for a "
               "non-canonical FS_BASE",
               [Replace(r'PASS: cpuid: leaf 0x40000000: signature "KVMKVMKVM"',
                        ('FAIL: cpuid: leaf 0x40000000: signature "TCGTCGTCGTCG"',)),
                Replace(r"PASS: cpuid: leaf 0x40000001: features 0x01007efb \(scenario says 0x01007efb\)",
                        ("FAIL: cpuid: leaf 0x40000001: features 0x00000000 (scenario says 0x01007efb)",)),
                Replace(r"PASS: fs/gs base: non-canonical FS_BASE -> #GP \(vector 13\), unchanged",
                        ("FAIL: fs/gs base: non-canonical FS_BASE -> #GP (vector 0), unchanged",)),
                Replace(r"PASS: #GP: rdmsr_safe\(0xdeadbeef\) -> vector 13 error 0x0",
                        ("FAIL: #GP: rdmsr_safe(0xdeadbeef) -> vector 0 error 0x0",)),
                Replace(r"PASS: #GP: wrmsr_safe\(0xdeadbeef\) -> vector 13 error 0x0",
                        ("FAIL: #GP: wrmsr_safe(0xdeadbeef) -> vector 0 error 0x0",)),
                Replace(r"PASS: #GP: EFER \|= bit 1 \(reserved\) -> vector 13",
                        ("FAIL: #GP: EFER |= bit 1 (reserved) -> vector 0",)),
                Replace(r"PASS: #GP: EFER \|= bit 63 \(reserved\) -> vector 13",
                        ("FAIL: #GP: EFER |= bit 63 (reserved) -> vector 0",))]),
    Difference("exceptions", "tcg",
               "QEMU 7.2's TCG raises #GP, not #SS, for a non-canonical stack (RSP-based) access (SDM Vol.3A 6.15, "
               "#SS: 'non-canonical address referencing the SS segment'), and no #GP for RDMSR of an unknown MSR",
               [Replace(r"PASS: faults: non-canonical RSP-based load -> #SS\(0\) \(vector 12 error 0x0\)",
                        ("FAIL: faults: non-canonical RSP-based load -> #SS(0) (vector 13 error 0x0)",)),
                Replace(r"PASS: fixup: rdmsr_safe\(0xdeadbeef\) -> #GP, value zeroed",
                        ("FAIL: fixup: rdmsr_safe(0xdeadbeef) -> #GP, value zeroed",))]),
    Difference("usermode", "tcg",
               "QEMU 7.2's TCG gives INT n through a gate with DPL < CPL the error code n * 16 + 2 (the 64-bit IDT "
               "entry offset) instead of n * 8 + 2 (the IDT index in the selector-format error code, SDM Vol.3A "
               "6.13)",
               [Replace(r"PASS: (privileged: INT 0x81 through a DPL0 gate: #GP\()0x40a(\) \(want 0x40a\) at rip "
                        r"0x[0-9a-f]+ from CPL 3, vector 13)", (r"FAIL: \g<1>0x812\2",))]),
    Difference("ipi", "tcg", "QEMU 7.2's TCG has no x2APIC (CPUID.1:ECX[21] clear), so the program skips that phase",
               [Replace(r"PASS: x2APIC: ID of vCPU i is i, LDR = .*", ("SKIP: x2APIC: CPUID.1:ECX[21] not offered",)),
                Replace(r"PASS: x2APIC physical: .*"), Replace(r"PASS: x2APIC SELF IPI register: .*"),
                Replace(r"PASS: x2APIC logical cluster 0 mask 0xc")]),
    Difference("lapic_timer", "tcg",
               "QEMU 7.2's TCG has no TSC-deadline timer (CPUID.1:ECX[24] clear), so the program skips that phase",
               [Replace(r"PASS: tsc-deadline: IA32_TSC_DEADLINE reads back the armed deadline",
                        ("SKIP: tsc-deadline: CPUID.1:ECX[24] (TSC-deadline) not offered",)),
                Replace(r"PASS: tsc-deadline: fired at the deadline .*"),
                Replace(r"PASS: tsc-deadline: IA32_TSC_DEADLINE reads 0 after it fired"),
                Replace(r"PASS: tsc-deadline: a deadline in the past fires immediately"),
                Replace(r"PASS: tsc-deadline: writing 0 to IA32_TSC_DEADLINE disarms the timer")]),
    Difference("kvmclock", "tcg", "TCG offers no kvmclock (CPUID 0x40000001 is 0); the program skips",
               [Only(("SKIP: CPUID 0x40000001 offers no kvmclock (CLOCKSOURCE/CLOCKSOURCE2)",
                      "SUMMARY: 1 tests, 1 skipped"))]),
    Difference("wallclock", "tcg",
               "TCG offers no kvmclock and the program does not check CPUID first (reported as a program fix): "
               "the MSR writes are ignored, every structure stays 0 and the checks that need it fail",
               [Only(("FAIL: kvmclock registered with MSR 0x0", "FAIL: first write: version 0 (0 + 2)",
                      "PASS: nsec 0 is below one second", "FAIL: RDMSR 0x4b564d00 returns the address",
                      "FAIL: 0x11 and 0x4b564d00 are one value: 0x4b564d00 now reads the address written to 0x11",
                      "FAIL: MSR 0x11 filled the second structure (version 0)",
                      "PASS: both give the same boot epoch (difference 0 ns)",
                      "FAIL: the first structure was not touched by the write to 0x11",
                      "FAIL: second write to the same structure: version 0",
                      "SUMMARY: 9 tests, 7 unexpected failures"))]),
    # --- KVM ------------------------------------------------------------------------------
    Difference("cpuid_msr", "kvm",
               "CPUID 0x40000001 lists the features QEMU and the host's KVM offer, not the scenario's "
               "machine.kvm_cpuid.features",
               [Vary(r"cpuid: leaf 0x40000001: features 0x[0-9a-f]{8} \(scenario says 0x01007efb\)", status=True)]),
    Difference("wallclock", "kvm",
               "the wall clock is the host's, not the scenario's host.wall_clock_ns, and the two MSRs' epochs "
               "are computed from different TSC readings",
               [Vary(r"nsec \d+ is below one second"),
                Vary(r"both give the same boot epoch \(difference -?\d+ ns\)")]),
    Difference("lapic_timer", "kvm", TIMING,
               [Vary(r"tsc-deadline: fired at the deadline \(\+-?\d+, slack 4000\)", status=True)]),
    # --- KVM through kvm_pvm ----------------------------------------------------------------
    Difference("exceptions", "pvm",
               "PVM cannot emulate INT3 for a guest that is not PVM-aware: the first test's INT3 ends in 'KVM "
               "internal error' (emulation failure) before anything is printed",
               [Ends("kvm-internal-error", 0)]),
    Difference("garbage", "pvm",
               "PVM cannot emulate INT n for a guest that is not PVM-aware: the INT 0x20 that starts round 0 ends "
               "in 'KVM internal error' (emulation failure) right after the seed line",
               [Ends("kvm-internal-error", 1)]),
    Difference("cpuid_msr", "pvm", "PVM raises no #GP for a non-canonical FS_BASE (hardware does, SDM Vol.4 WRMSR)",
               [Replace(r"PASS: fs/gs base: non-canonical FS_BASE -> #GP \(vector 13\), unchanged",
                        ("FAIL: fs/gs base: non-canonical FS_BASE -> #GP (vector 0), unchanged",))]),
    Difference("usermode", "pvm",
               "PVM runs the guest kernel itself at CPL3, and its emulation of the guest's own CPL3 (IRETQ to user "
               "segments, INT n through gates) differs from hardware: user CS/SS read back wrongly, INT raises #UD",
               [Replace(r"PASS: cpl3: INT 0x80 through a DPL3 gate returns to CPL0 \(vector 0x80\)",
                        ("FAIL: cpl3: INT 0x80 through a DPL3 gate returns to CPL0 (vector 0x6)",)),
                Replace(r"PASS: cpl3: CS in user mode is 0x23 \(CPL 3\)", ("FAIL: cpl3: CS in user mode is 0x33 (CPL 3)",)),
                Replace(r"PASS: cpl3: SS in user mode is 0x1b", ("FAIL: cpl3: SS in user mode is 0x2b",)),
                Replace(r"PASS: cpl3: user code may write a U page", ("FAIL: cpl3: user code may write a U page",)),
                Replace(r"PASS: (privileged: INT 0x81 through a DPL0 gate: #GP\()0x40a(\) \(want 0x40a\) at rip "
                        r"0x[0-9a-f]+ from CPL 3, vector )13", (r"FAIL: \g<1>0x0\g<2>6",))]),
    Difference("tpr", "pvm",
               "PVM's local APIC emulation reads PPR as 0 while a vector is in service and delivers a self-IPI "
               "unblocked by a TPR write only at a later exit, so the priority checks see a different order "
               "from run to run (hardware KVM updates PPR on every ISR change, SDM Vol.3A 11.8.3.1)",
               [Vary(r"TPR: TPR 0x3f \(class 3\): delivered once the class is above", status=True),
                Vary(r"in-service priority: inside 0x61's handler: PPR 0x[0-9a-f]+, ISR bit 0x61 set", status=True),
                Vary(r"in-service priority: 0x72 preempted 0x61, 0x52 waited for its EOI", status=True)]),
]


# ---------------------------------------------------------------------------------------
# Result lines and the expected QEMU result lines.

@dataclass
class Item:
    kind: str           # PASS, FAIL, SKIP, SUMMARY or OTHER (Unhandled exception, multiboot:, Lines())
    text: str           # the line after "KIND: " (the whole line for OTHER)
    vary: Vary = None   # set when a documented difference lets this line differ

    def line(self):
        return self.text if self.kind == "OTHER" else f"{self.kind}: {self.text}"


def parse_line(line):
    m = re.match(r"(PASS|FAIL|SKIP|SUMMARY): (.*)", line)
    return Item(m.group(1), m.group(2)) if m else Item("OTHER", line)


def result_lines(console, extra=None):
    out = []
    for line in console.splitlines():
        if RESULT_RE.match(line) or (extra and re.fullmatch(extra, line)):
            out.append(parse_line(line))
    return out


def summary_of(items):
    """What report_summary() prints after these lines (scenarios/guest/lib/report.c)."""
    tests = sum(i.kind in ("PASS", "FAIL", "SKIP") for i in items)
    fails = sum(i.kind == "FAIL" for i in items)
    skips = sum(i.kind == "SKIP" for i in items)
    text = f"{tests} tests" + (f", {fails} unexpected failures" if fails else "") + (f", {skips} skipped" if skips else "")
    status = 3 if fails else 77 if tests and skips == tests else 1  # isa-debug-exit: (v << 1) | 1
    return text, status


def applicable(program, accel, flavour):
    """The entries for this run, least specific first ("qemu", then "tcg"/"kvm", then "pvm"),
    so that where two give an Only or an Ends the more specific one wins."""
    rank = {"qemu": 0, accel: 1, "pvm": 2} if flavour == "pvm" else {"qemu": 0, accel: 1}
    found = [d for d in DIFFERENCES if d.program == program and d.accel in rank]
    return sorted(found, key=lambda d: rank[d.accel])


class TableError(Exception):
    pass


def expected_lines(program, pv_items, diffs):
    """(expected items, end kind or None, lines kept before the end) from pvsim's items."""
    changes = [c for d in diffs for c in d.changes]
    used = set()
    out = []
    for it in pv_items:
        rep = next((c for c in changes if isinstance(c, Replace) and re.fullmatch(c.regex, it.line())), None)
        m = rep and re.fullmatch(rep.regex, it.line())
        var = next((c for c in changes if isinstance(c, Vary) and it.kind != "OTHER" and re.fullmatch(c.regex, it.text)),
                   None)
        if rep:
            used.add(id(rep))
            out += [parse_line(m.expand(line)) for line in rep.lines]
        elif var:
            used.add(id(var))
            out.append(Item(it.kind, it.text, var))
        else:
            out.append(Item(it.kind, it.text))
    for c in changes:
        if isinstance(c, Append):
            out += [parse_line(line) for line in c.lines]
        if isinstance(c, (Replace, Vary)) and id(c) not in used:
            raise TableError(f"{program}: documented line /{c.regex}/ is not among pvsim's result lines "
                             "(the program changed: update DIFFERENCES)")
    only = [c for c in changes if isinstance(c, Only)]
    if only:
        out = [parse_line(line) for line in only[-1].lines]
    ends = [c for c in changes if isinstance(c, Ends)]
    ends = ends[-1] if ends else None
    return out, ends


def compare(expected, ends, actual, pv_status, outcome, q_status):
    """None when QEMU's run is what the table says, else the first difference (one line)."""
    keep = len(expected) if ends is None else ends.lines
    resolved = []
    for i, exp in enumerate(expected[:keep]):
        act = actual[i] if i < len(actual) else None
        if act is None:
            return f"line {i + 1}: pvsim '{exp.line()}', QEMU printed nothing more ({outcome})"
        if exp.kind == "SUMMARY":
            text, _ = summary_of(resolved)
            exp = Item("SUMMARY", text)
        if exp.vary:
            kinds_ok = act.kind == exp.kind or (exp.vary.status and {act.kind, exp.kind} <= {"PASS", "FAIL"})
            if not kinds_ok or act.kind == "OTHER" or not re.fullmatch(exp.vary.regex, act.text):
                return f"line {i + 1}: pvsim '{exp.line()}', QEMU '{act.line()}' (documented: may differ only as /{exp.vary.regex}/" + \
                       (" with PASS/FAIL" if exp.vary.status else "") + ")"
            resolved.append(act)
            continue
        if act.line() != exp.line():
            return f"line {i + 1}: pvsim '{exp.line()}', QEMU '{act.line()}'"
        resolved.append(act)
    if ends is not None and ends.kind == "not-compared":
        return None
    if len(actual) > keep:
        return f"line {keep + 1}: pvsim printed nothing more, QEMU '{actual[keep].line()}'"
    if ends is not None:  # kvm-internal-error
        return None if outcome == "kvm-internal-error" else \
            f"the run should end in 'KVM internal error' after {keep} lines, but QEMU ended with {outcome}"
    if outcome != "exit":
        return f"QEMU {outcome} after the last result line"
    want = summary_of(resolved)[1] if expected and expected[-1].kind == "SUMMARY" else pv_status
    if q_status != want:
        return f"exit status: expected {want} (pvsim: {pv_status}), QEMU {q_status}"
    return None


# ---------------------------------------------------------------------------------------
# Running

@dataclass
class Case:
    scenario: str
    program: str
    image: Path
    vcpus: int
    ram_mib: int
    start_bsp: bool


def load_case(name):
    path = SCENARIOS / f"{name}.json"
    try:
        s = json.loads(path.read_text())
        image = (path.parent / s["guest"]["image"]).resolve()
        m = s["machine"]
        program = re.fullmatch(r"(.+)-O[02s]\.elf", image.name).group(1)
        return Case(name, program, image, int(m["vcpus"]), int(m["ram_mib"]), m.get("start") == "bsp")
    except (OSError, ValueError, KeyError, AttributeError) as e:
        raise guestboot.BootError(f"{path}: cannot take the guest image and machine from it ({e})") from e


def run_pvsim(pvsim, case):
    p = subprocess.run([str(pvsim), "run", str(SCENARIOS / f"{case.scenario}.json")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, errors="replace")
    if p.returncode not in (0, 1):
        raise guestboot.BootError(f"pvsim run {case.scenario}: exit {p.returncode}: {p.stderr.strip()[:200]}")
    # The console comes first, then pvsim's own report from the "stop: " line on.
    cut = p.stdout.rfind("\nstop: ")
    console = p.stdout[:cut + 1] if cut >= 0 else p.stdout
    m = re.search(r"^exit status: (\d+|none)$", p.stdout, re.M)
    status = int(m.group(1)) if m and m.group(1) != "none" else None
    return console, status


def kvm_flavour():
    """"pvm" when /dev/kvm comes from the kvm_pvm module (no kvm_intel/kvm_amd), else "kvm"."""
    mods = Path("/sys/module")
    if (mods / "kvm_pvm").is_dir() and not (mods / "kvm_intel").is_dir() and not (mods / "kvm_amd").is_dir():
        return "pvm"
    return "kvm"


def check_case(case, accel, flavour, pvsim, builder, qemu, timeout):
    """(ok, message) for one scenario under one accelerator."""
    diffs = applicable(case.program, accel, flavour)
    extra = next((c.regex for d in diffs for c in d.changes if isinstance(c, Lines)), None)
    console, pv_status = run_pvsim(pvsim, case)
    pv_items = result_lines(console, extra)
    # report.c's SUMMARY must agree with the lines before it, or the comparison below
    # (which recomputes it) would hide a disagreement.
    for i, it in enumerate(pv_items):
        if it.kind == "SUMMARY" and it.text != summary_of(pv_items[:i])[0]:
            return False, f"pvsim's own SUMMARY '{it.text}' does not add up its result lines"
    expected, ends = expected_lines(case.program, pv_items, diffs)
    image = builder.wrap_elf(case.image, name=f"{case.scenario.replace('/', '_')}-{accel}")
    append = f"pvsim.vcpus={case.vcpus}" + (" pvsim.start=bsp" if case.start_bsp else "")
    cpu = "host" if accel == "kvm" else None  # TCG: QEMU's default model (qemu64)
    enough = None
    if ends is not None and ends.kind == "not-compared":
        # Nothing after the first ends.lines result lines counts: stop once they are out.
        enough = lambda con: len(result_lines(con, extra)) >= ends.lines  # noqa: E731
    cmd = guestboot.qemu_command(qemu, image, accel, case.ram_mib, case.vcpus, append, cpu=cpu)
    t0 = time.monotonic()
    status, q_console, q_err, outcome = guestboot.run_qemu_watch(
        cmd, timeout, {"KVM internal error": "kvm-internal-error"}, enough)
    secs = time.monotonic() - t0
    if outcome == "exit" and status is not None and status != 0 and status % 2 == 0:
        err = q_err.strip().splitlines()
        outcome = f"QEMU error (status {status}): {err[-1] if err else ''}"
    elif outcome == "timeout":
        outcome = f"the {timeout:.0f} s timeout"
    actual = result_lines(q_console, extra)
    problem = compare(expected, ends, actual, pv_status, outcome, status)
    if problem and not actual and q_err.strip():
        problem += f"; QEMU's stderr: {q_err.strip().splitlines()[-1][:160]}"
    name = accel if flavour == "kvm" or accel == "tcg" else "kvm (PVM)"
    where = f"{case.program} ({case.scenario}, {case.vcpus} vCPU{'s' if case.vcpus > 1 else ''}, {case.ram_mib} MiB)"
    if problem:
        return False, f"FAIL: {where} under {name}: {problem}"
    note = f"; documented differences: {', '.join(sorted({d.accel for d in diffs}))}" if diffs else ""
    compared = len(expected) if ends is None else ends.lines
    return True, f"ok: {where} under {name}: {compared} result lines{note} ({secs:.1f} s)"


# ---------------------------------------------------------------------------------------
# Self-test (--self-test, ctest guest.qemu.selftest): the comparison and the wrapper, without
# QEMU, so they are checked on every machine.

def self_test(work):
    problems = []

    def expect(cond, what):
        if not cond:
            problems.append(what)

    def items(*lines):
        return [parse_line(line) for line in lines]

    pv = items("PASS: a 1", "PASS: timing +160", "SUMMARY: 2 tests")
    timing = Difference("p", "qemu", "test", [Vary(r"timing \+-?\d+", status=True)])
    exp, ends = expected_lines("p", pv, [])
    expect(compare(exp, ends, items("PASS: a 1", "PASS: timing +160", "SUMMARY: 2 tests"), 1, "exit", 1) is None,
           "identical lines were not accepted")
    bad = compare(exp, ends, items("PASS: a 1", "Unhandled exception 8 #DF at rip 0x8", "FAIL: unhandled exception"),
                  1, "exit", 3)
    expect(bad and bad.startswith("line 2: ") and "#DF" in bad, f"a #DF was not reported at line 2: {bad}")
    expect(compare(exp, ends, items("PASS: a 1", "PASS: timing +160", "SUMMARY: 2 tests"), 1, "exit", 3),
           "a wrong exit status was accepted")
    expect(compare(exp, ends, items("PASS: a 1"), 1, "timeout", None), "missing lines were accepted")
    expect(compare(exp, ends, exp[:2] + items("PASS: extra", "SUMMARY: 3 tests"), 1, "exit", 1),
           "an extra line was accepted")
    # A documented timing line may change its numbers and PASS/FAIL; SUMMARY and status must follow.
    exp, ends = expected_lines("p", pv, [timing])
    expect(compare(exp, ends, items("PASS: a 1", "FAIL: timing +99999", "SUMMARY: 2 tests, 1 unexpected failures"),
                   1, "exit", 3) is None, "a documented timing difference was not accepted")
    expect(compare(exp, ends, items("PASS: a 1", "FAIL: timing +99999", "SUMMARY: 2 tests"), 1, "exit", 3),
           "a SUMMARY that does not add up was accepted")
    expect(compare(exp, ends, items("PASS: a 1", "FAIL: timing +99999", "SUMMARY: 2 tests, 1 unexpected failures"),
                   1, "exit", 1), "an exit status that does not follow the SUMMARY was accepted")
    expect(compare(exp, ends, items("PASS: a 1", "PASS: timing late", "SUMMARY: 2 tests"), 1, "exit", 1),
           "a line outside the documented pattern was accepted")
    # Replace and Append are exact; a documented line pvsim does not print is a table error.
    rep = Difference("p", "tcg", "test", [Replace(r"PASS: a 1", ("FAIL: a 0",)), Append(("PASS: more",))])
    exp, ends = expected_lines("p", pv, [rep])
    expect([e.line() for e in exp] == ["FAIL: a 0", "PASS: timing +160", "SUMMARY: 2 tests", "PASS: more"],
           f"Replace/Append gave {[e.line() for e in exp]}")
    expect(compare(exp, ends, items("FAIL: a 2", "PASS: timing +160", "SUMMARY: 2 tests, 1 unexpected failures",
                                    "PASS: more"), 1, "exit", 3), "a replaced line with other text was accepted")
    try:
        expected_lines("p", pv, [Difference("p", "tcg", "test", [Vary(r"no such line")])])
        problems.append("a documented line missing from pvsim's output was not reported")
    except TableError:
        pass
    # A documented end: the run must really end that way.
    exp, ends = expected_lines("p", pv, [Difference("p", "pvm", "test", [Ends("kvm-internal-error", 1)])])
    expect(compare(exp, ends, items("PASS: a 1"), 1, "kvm-internal-error", None) is None,
           "a documented internal error was not accepted")
    expect(compare(exp, ends, items("PASS: a 1"), 1, "exit", 1), "a run that did not end as documented was accepted")

    # The wrapper keeps the guest's bytes and puts a valid header in the first 8 KiB.
    guest = SCENARIOS / "guest" / "bin" / "hello-O2.elf"
    if not guest.is_file():
        problems.append(f"{guest} is missing (build the target guests)")
        return problems
    wrapped = guestboot.ImageBuilder(work).wrap_elf(guest)
    data = wrapped.read_bytes()
    _, segs = guestboot.read_elf64(guest)
    e_machine, entry, phoff = struct.unpack_from("<H", data, 18)[0], *struct.unpack_from("<II", data, 24)
    phnum = struct.unpack_from("<H", data, 44)[0]
    ph = [struct.unpack_from("<8I", data, phoff + 32 * i) for i in range(phnum)]
    expect(data[4] == 1 and e_machine == 3, "the wrapper is not an i386 ELF32 file")
    expect(len(ph) == len(segs) + 1, f"{len(ph)} program headers for {len(segs)} guest segments")
    stub = ph[0]
    expect(stub[2] <= entry < stub[2] + stub[5], "the entry point is not in the stub")
    for (paddr, memsz, blob), h in zip(segs, ph[1:]):
        expect(h[3] == paddr and data[h[1]:h[1] + h[4]] == blob and h[5] >= memsz,
               f"guest segment at {paddr:#x} not copied byte for byte")
    expect(ph[-1][3] + ph[-1][5] == stub[2], "the stub does not follow the guest's last segment")
    hdr = guestboot.check_multiboot(wrapped, elf=True)
    expect(hdr["offset"] == stub[1], "the Multiboot header does not open the stub")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--self-test", action="store_true", help="check the comparison and the image wrapper, no QEMU")
    ap.add_argument("--pvsim", help="the pvsim binary")
    ap.add_argument("--accel", choices=["tcg", "kvm"])
    ap.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU binary (default: %(default)s)")
    ap.add_argument("--only", action="append", default=[], help="only these scenarios (repeatable)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per QEMU run (default %(default)s)")
    ap.add_argument("--jobs", type=int, default=1, help="QEMU runs at a time (default %(default)s)")
    ap.add_argument("--work-dir", help="keep the wrapped images here (default: a temporary directory)")
    ap.add_argument("--guest-bin", help="boot QEMU with the images of this directory (same file names) instead of "
                                        "the scenarios' own, e.g. images built from another revision")
    args = ap.parse_args(argv)
    if args.self_test:
        with tempfile.TemporaryDirectory(prefix="pvsim-qemu-check-") as tmp:
            try:
                problems = self_test(tmp)
            except (guestboot.BootError, TableError) as e:
                problems = [str(e)]
        for p in problems:
            print(f"FAIL: self-test: {p}")
        if not problems:
            print("ok: self-test: comparison rules and the Multiboot wrapper")
        return 1 if problems else 0
    if not args.pvsim or not args.accel:
        ap.error("--pvsim and --accel are required (or --self-test)")

    qemu = guestboot.find_qemu(args.qemu)
    if not qemu:
        print(f"SKIP: {args.qemu} is not installed, so the guest programs were not compared with QEMU "
              "(Debian: apt-get install qemu-system-x86)")
        return guestboot.SKIP
    flavour = "tcg"
    if args.accel == "kvm":
        why = guestboot.kvm_unusable_reason()
        if why:
            print(f"SKIP: KVM half not run: {why} (the TCG half runs without it)")
            return guestboot.SKIP
        flavour = kvm_flavour()
    pvsim = Path(args.pvsim)
    if not os.access(pvsim, os.X_OK):
        print(f"qemu_check.py: --pvsim {pvsim}: not an executable", file=sys.stderr)
        return 2

    names = args.only or CASES
    try:
        cases = [load_case(n) for n in names]
        if args.guest_bin:
            for c in cases:
                c.image = Path(args.guest_bin) / c.image.name
                if not c.image.is_file():
                    raise guestboot.BootError(f"--guest-bin: {c.image} does not exist")
        if not args.only:
            programs = sorted(p.stem for p in PROGRAMS.glob("*.c"))
            missing = sorted(set(programs) - {c.program for c in cases} - {p for p in programs if race_program(p)})
            if missing:
                print(f"FAIL: no scenario in qemu_check.py's CASES runs {', '.join(missing)}: add one")
                return 1
        known = set(p.stem for p in PROGRAMS.glob("*.c"))
        for d in DIFFERENCES:
            if d.program not in known:
                print(f"FAIL: DIFFERENCES names '{d.program}', which is not in scenarios/guest/programs/")
                return 1
    except guestboot.BootError as e:
        print(f"qemu_check.py: {e}", file=sys.stderr)
        return 2

    if not args.only:
        races = sorted(p.stem for p in PROGRAMS.glob("*.c") if race_program(p.stem))
        if races:
            print(f"note: not run under QEMU: {', '.join(races)} (race catalogue: a historic KVM bug and a host action "
                  "at an exact instruction, which QEMU cannot reproduce)")
    if args.accel == "kvm":
        skipped = [c for c in cases if c.program in APF_PROGRAMS]
        if skipped:
            print(f"note: not run under KVM: {', '.join(c.scenario for c in skipped)} (async-PF programs: a real host "
                  "swaps nothing out on the scenario's cue)")
        pv = [c for c in cases if c.program in PV_PROGRAMS]
        if pv:
            print(f"note: not run under KVM: {', '.join(c.scenario for c in pv)} (paravirtual programs: their checks "
                  "need the scenario's host and KVM features, not the real host's and QEMU's)")
        cases = [c for c in cases if c.program not in APF_PROGRAMS and c.program not in PV_PROGRAMS]

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pvsim-qemu-check-") as tmp:
        builder = guestboot.ImageBuilder(args.work_dir or tmp)
        failures = 0
        try:
            with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
                futures = [pool.submit(check_case, c, args.accel, flavour, pvsim, builder, qemu, args.timeout)
                           for c in cases]
                for f in futures:
                    ok, msg = f.result()
                    print(msg, flush=True)
                    failures += not ok
        except (guestboot.BootError, TableError) as e:
            print(f"qemu_check.py: {e}", file=sys.stderr)
            return 2
    name = "kvm (PVM: kvm_pvm module)" if flavour == "pvm" else args.accel
    print(f"{'FAIL' if failures else 'ok'}: {len(cases) - failures} of {len(cases)} scenarios print pvsim's result "
          f"lines under QEMU {name} (documented differences aside), {time.monotonic() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
