#!/usr/bin/env python3
"""The gdb session of tools/platform/README.md "Debugging with gdb", run by Debian's gdb in
batch mode against `pvsim run SCENARIO --gdb 0`.

On a 2-vCPU scenario whose guest reads kvmclock on both vCPUs (pv-clock-stopped): break in
the kvmclock reader on vCPU 1 (thread 2), read its pvclock structure (address from `monitor
pv`), stepi, reverse-stepi, and check that every register and the structure are what they
were; then watch the structure, reverse-continue to the hypervisor's last write to it
(`monitor why` says who wrote), and continue to the end: the run's trace hash must equal a
run without gdb. Exits 77 (ctest's SKIP_RETURN_CODE) when gdb is not installed.

usage: gdb_batch_test.py PVSIM SCENARIO_DIR
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

GDB = shutil.which("gdb")

GDB_SCRIPT = r'''
import gdb, re

def ex(cmd):
    return gdb.execute(cmd, to_string=True)

def check(cond, what):
    if not cond:
        print("GDB-TEST-FAIL: " + what)
        gdb.execute("kill")
        raise SystemExit(1)

ex("set pagination off")
ex("set confirm off")
ex("file @ELF@")
ex("target remote 127.0.0.1:@PORT@")
ex("break kvmclock_sample thread 2")
out = ex("continue")
check(gdb.selected_thread().num == 2, "the breakpoint stops thread 2: " + out)
check(int(gdb.parse_and_eval("$pc")) == int(gdb.parse_and_eval("(long)&kvmclock_sample")), "pc at kvmclock_sample")
pv = ex("monitor pv v1")
m = re.search(r"kvmclock \(MSR 0x[0-9a-f]+\) at GPA (0x[0-9a-f]+)", pv)
check(m is not None, "monitor pv names the pvclock structure: " + pv)
addr = int(m.group(1), 16)
regs0 = ex("info registers")
mem0 = ex("x/8wx %#x" % addr)
print("pvclock of vCPU 1 at %#x:\n%s" % (addr, mem0))
ex("stepi")
regs1 = ex("info registers")
check(regs1 != regs0, "stepi changes the registers")
ex("reverse-stepi")
check(ex("info registers") == regs0, "reverse-stepi restores every register")
check(ex("x/8wx %#x" % addr) == mem0, "reverse-stepi restores the pvclock structure")
ex("watch *(unsigned int *)%#x" % addr)
ex("reverse-continue")
why = ex("monitor why")
print(why)
check("watchpoint at %#x" % addr in why, "reverse-continue stops at the watchpoint: " + why)
check("hypervisor" in why and "before" in why, "the write was the hypervisor's: " + why)
check(ex("x/8wx %#x" % addr) != mem0, "before that write the structure held something else")
check(gdb.selected_thread().num == 2, "the write is vCPU 1's")
exits = []
gdb.events.exited.connect(lambda e: exits.append(getattr(e, "exit_code", None)))
ex("delete")
ex("continue")
check(exits == [1], "the run continues to its end (the guest exits with status 1): %r" % exits)
print("GDB-TEST-OK")
'''


def run_plain(pvsim, scenario):
    r = subprocess.run([pvsim, "run", scenario, "-q"], capture_output=True, text=True, timeout=120)
    m = re.search(r"trace xxh3 ([0-9a-f]{16})", r.stdout)
    if not m:
        sys.exit("plain run printed no trace hash:\n" + r.stdout + r.stderr)
    return m.group(1)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    if GDB is None:
        print("SKIP: gdb is not installed (Debian package gdb)")
        sys.exit(77)
    pvsim, scen_dir = sys.argv[1], sys.argv[2]
    scenario = os.path.join(scen_dir, "pv-clock-stopped.json")
    elf = os.path.join(scen_dir, "guest", "bin", "pv_clock_stopped-O2.elf")
    plain = run_plain(pvsim, scenario)

    proc = subprocess.Popen([pvsim, "run", scenario, "-q", "--gdb", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    m = re.search(r"waiting for gdb on 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        sys.exit("pvsim did not print its gdb port: " + line)
    port = m.group(1)
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "session.py")
        with open(script, "w") as f:
            f.write(GDB_SCRIPT.replace("@ELF@", elf).replace("@PORT@", port))
        t0 = time.monotonic()
        g = subprocess.run([GDB, "-batch", "-nx", "-x", script], capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
    out, err = proc.communicate(timeout=60)
    print(g.stdout)
    print("gdb session took %.2f s" % took)
    if "GDB-TEST-OK" not in g.stdout:
        print(g.stderr)
        sys.exit("the gdb session failed")
    m = re.search(r"trace xxh3 ([0-9a-f]{16})", out)
    if not m:
        sys.exit("pvsim printed no summary after the session:\n" + out + err)
    if m.group(1) != plain:
        sys.exit("trace hash after the gdb session %s differs from the plain run's %s" % (m.group(1), plain))
    if proc.returncode != 0:
        sys.exit("pvsim exited %d:\n%s%s" % (proc.returncode, out, err))
    print("trace hash %s equals the plain run's" % plain)


if __name__ == "__main__":
    main()
