#!/usr/bin/env python3
"""Side-by-side benchmark: pvsim against native code, QEMU (TCG, with and without icount)
and Bochs, on the five guest workloads of scenarios/bench/ (README.md "Speed").

Every column runs the same C code (scenarios/guest/bench/*_algo.h):
  pvsim       `pvsim bench --json`: exact guest instruction count, median host seconds.
  native      the workload as a Linux program, timed in-process around the work only.
  QEMU, Bochs the guest image wrapped for Multiboot (scenarios/guest/multiboot/, flat build of
              tools/bench/guestboot.py), booted by QEMU's -kernel or by GRUB from an ISO under
              Bochs; console on port 0xe9.
MIPS is always pvsim's exact guest instruction count divided by a column's seconds, so the
columns compare speed on identical work. For QEMU and Bochs the seconds are the wall time
of a run minus the median wall time of a null image (same machine, same loader, same .bss
size; boots, prints, exits), which removes start-up, firmware and loader cost.

Standard library only. Needs gcc, ld and objcopy; QEMU, Bochs (+ GRUB tools) are optional.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import guestboot  # noqa: E402  (same directory: building and booting Multiboot images)

REPO = guestboot.REPO
GUEST_SRC = guestboot.GUEST_SRC
BENCH_SCENARIOS = REPO / "scenarios" / "bench"

# (key, row label as in README.md's "Speed" table). The key names scenarios/bench/<key>.json (scenario
# name "bench-<key>"), scenarios/guest/bench/<key>.c and tools/bench/native.c's BENCH_<KEY>.
WORKLOADS = [
    ("alu", "tight ALU loop"),
    ("sieve", "sieve over 32 MiB"),
    ("hash", "hash table, 64 MiB, random keys"),
    ("bytecode", "byte-code interpreter"),
    ("sort", "sort of 4 Mi 64-bit keys"),
]
COLUMNS = [  # (key, table heading)
    ("native", "native"),
    ("qemu", "QEMU TCG"),
    ("qemu_icount", "QEMU TCG icount"),
    ("bochs", "Bochs (Debian)"),
]
GUEST_RAM_MIB = 256  # the largest workload uses 64 MiB of .bss above 1 MiB
SKIP = guestboot.SKIP  # ctest SKIP_RETURN_CODE used by smoke_test.py
BenchError = guestboot.BootError  # a problem that stops the whole comparison (bad tool, failed build)
run_checked = guestboot.run_checked
check_multiboot = guestboot.check_multiboot


def log(msg):
    print(f"compare: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Guest images: flat Multiboot images (guestboot.py) plus the native programs.

class ImageBuilder(guestboot.ImageBuilder):
    """Builds the flat Multiboot images (<work>/mb/<name>.bin) and the native programs."""

    def __init__(self, work_dir, cc="gcc"):
        super().__init__(work_dir, cc)
        (self.work / "native").mkdir(parents=True, exist_ok=True)
        self.null_end = None  # __image_end of null.c without padding, built on first use

    def workload_images(self, key):
        """(workload image, null image with the same .bss end) for one workload."""
        wl, wl_syms = self.build_flat_image(key, GUEST_SRC / "bench" / f"{key}.c")
        if self.null_end is None:
            _, syms = self.build_flat_image("null-unpadded", guestboot.MULTIBOOT_SRC / "null.c")
            self.null_end = syms["__image_end"]
        pad = max(0, wl_syms["__image_end"] - self.null_end)
        null, _ = self.build_flat_image(f"null-{key}", guestboot.MULTIBOOT_SRC / "null.c", [f"NULL_PAD_BYTES={pad}"])
        return wl, null

    def native_flags(self):
        # The guest's code-generation flags, minus the two that only matter in a kernel:
        # -ffreestanding (the native program uses libc for its one printf) and -mno-red-zone
        # (user code may use the red zone). -mgeneral-regs-only stays: no SSE in either.
        drop = {"-ffreestanding", "-mno-red-zone"}
        return [f for f in self.cflags if f not in drop and not f.startswith("-I")]

    def native_program(self, key):
        out = self.work / "native" / f"native-{key}"
        cmd = [self.cc, "-O2", *self.native_flags(), f"-I{GUEST_SRC / 'lib'}", f"-I{GUEST_SRC / 'bench'}",
               f"-DBENCH_{key.upper()}", str(REPO / "tools" / "bench" / "native.c"), "-no-pie", "-o", str(out)]
        run_checked(cmd, f"building native-{key}")
        return out


# ---------------------------------------------------------------------------------------
# Running one emulator: every run returns (wall seconds, None) or (None, "why it failed").

def guest_console_problem(console):
    """None when the console shows a passing guest that reached exit(0), else the reason."""
    if "FAIL" in console:
        line = next(l for l in console.splitlines() if "FAIL" in l)
        return f"guest reported: {line.strip()[:80]}"
    if "SUMMARY:" not in console:
        return "no SUMMARY line on the console"
    if "multiboot: exit(0)" not in console:
        return "guest did not reach exit(0)"
    return None


def qemu_command(qemu, image, icount):
    return guestboot.qemu_command(qemu, image, "tcg", GUEST_RAM_MIB, icount=icount)


def run_qemu(qemu, image, icount, timeout):
    t0 = time.monotonic()
    status, console, err = guestboot.run_qemu(qemu_command(qemu, image, icount), timeout)
    wall = time.monotonic() - t0
    if status is None:
        return None, f"timed out after {timeout} s"
    # isa-debug-exit: QEMU's status is (value << 1) | 1, so the guest's exit(0) gives 1.
    if status != 1:
        err = err.strip().splitlines()
        return None, f"QEMU exit status {status}" + (f": {err[-1][:100]}" if err else "")
    problem = guest_console_problem(console)
    return (None, problem) if problem else (wall, None)


class Bochs:
    """Boots Multiboot images under Bochs through a GRUB rescue ISO (El Torito CD)."""

    def __init__(self, bochs, work_dir, bios, vgabios):
        self.bochs = bochs
        self.work = Path(work_dir) / "bochs"
        self.work.mkdir(parents=True, exist_ok=True)
        for f in (bios, vgabios):
            if not Path(f).is_file():
                raise BenchError(f"Bochs firmware {f} not found (apt-get install bochsbios vgabios)")
        self.bios, self.vgabios = bios, vgabios
        self.grub_mkrescue = shutil.which("grub-mkrescue")
        if not self.grub_mkrescue:
            raise BenchError("grub-mkrescue not found (apt-get install grub-pc-bin xorriso mtools)")
        self.display = self._display_library()
        # Debian builds Bochs with its internal debugger, which stops at the first
        # instruction and reads commands: "continue" runs the guest without a prompt.
        self.rc = self.work / "debugger.rc"
        self.rc.write_text("continue\nquit\n")

    def _display_library(self):
        # Debian's bochs has no "nogui" library; "rfb" is a built-in VNC server which, with
        # timeout=0, does not wait for a client. Prefer nogui where a build has it.
        out = subprocess.run([self.bochs, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, text=True).stdout
        m = re.search(r"compile time default '([^']+)'", out)
        plugins = Path(m.group(1)) if m else None
        if plugins is None or (plugins / "libbx_nogui.so").exists():
            return "nogui"
        if (plugins / "libbx_rfb_gui.so").exists():
            return 'rfb, options="timeout=0"'
        raise BenchError(f"Bochs: neither the nogui nor the rfb display library in {plugins}")

    def iso(self, image):
        root = self.work / f"{image.stem}-iso"
        (root / "boot" / "grub").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, root / "boot" / "kernel.bin")
        (root / "boot" / "grub" / "grub.cfg").write_text(
            "set timeout=0\nset default=0\nmenuentry \"pvsim bench\" {\n  multiboot /boot/kernel.bin\n  boot\n}\n")
        iso = self.work / f"{image.stem}.iso"
        # Only the modules the menu entry needs: a smaller CD loads faster under emulation.
        run_checked([self.grub_mkrescue, "-o", str(iso), "--install-modules=multiboot normal boot configfile",
                     "--fonts=", "--locales=", "--themes=", str(root)], f"grub-mkrescue {iso.name}")
        return iso

    def config(self, iso):
        rc = self.work / f"{iso.stem}.bochsrc"
        rc.write_text("\n".join([
            f"megs: {GUEST_RAM_MIB}",
            f"romimage: file={self.bios}",
            f"vgaromimage: file={self.vgabios}",
            f"display_library: {self.display}",
            f"ata0-master: type=cdrom, path={iso}, status=inserted",
            "boot: cdrom",
            f"log: {self.work / (iso.stem + '.log')}",
            # The shutdown port (mb_exit.c) raises a panic: make it end Bochs, not ask.
            "panic: action=fatal",
            "error: action=report",
            "info: action=ignore",
            "debug: action=ignore",
            "port_e9_hack: enabled=1",
            # sync=none: emulated time advances with instructions only, no real-time
            # throttling, so Bochs runs as fast as it can.
            "clock: sync=none",
            "cpu: count=1, reset_on_triple_fault=0",
            "speaker: enabled=0",
            "sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy",
            "",
        ]))
        return rc

    def prepare(self, image):
        return self.config(self.iso(image))

    def run(self, rc, timeout):
        cmd = [self.bochs, "-q", "-f", str(rc), "-rc", str(self.rc)]
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               timeout=timeout, cwd=self.work)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout} s"
        wall = time.monotonic() - t0
        console = p.stdout.decode("latin-1")
        if "shutdown requested" not in console + p.stderr.decode("latin-1"):
            return None, "Bochs did not end through the shutdown port"
        problem = guest_console_problem(console)
        return (None, problem) if problem else (wall, None)


# ---------------------------------------------------------------------------------------

def run_native(program, runs, timeout):
    secs = []
    for _ in range(runs):
        try:
            p = subprocess.run([str(program)], stdout=subprocess.PIPE, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        m = re.search(r"ns=(\d+) .* (PASS|FAIL)$", p.stdout.strip())
        if p.returncode != 0 or not m or m.group(2) != "PASS":
            return {"error": f"checksum mismatch: {p.stdout.strip()[:100]}"}
        secs.append(int(m.group(1)) / 1e9)
    return {"seconds": secs, "median_seconds": statistics.median(secs)}


def run_emulator(run_one, workload, null, runs):
    """Null runs, then workload runs; net = workload wall - median null wall."""
    null_walls = []
    for _ in range(runs):
        wall, err = run_one(null)
        if err:
            return {"error": f"null image: {err}"}
        null_walls.append(wall)
    walls = []
    for _ in range(runs):
        wall, err = run_one(workload)
        if err:
            return {"error": err}
        walls.append(wall)
    null_med = statistics.median(null_walls)
    net = [w - null_med for w in walls]
    med = statistics.median(net)
    res = {"wall_seconds": walls, "null_wall_seconds": null_walls, "null_median_seconds": null_med,
           "seconds": net, "median_seconds": med}
    if med <= 0:
        res["error"] = f"no time left after subtracting start-up ({statistics.median(walls):.3f} s - {null_med:.3f} s)"
    # Start-up jitter is the error bar of the subtraction; flag results it could distort.
    elif med < 10 * (max(null_walls) - min(null_walls)) or med < 0.05:
        res["low_precision"] = True
    return res


def run_pvsim(pvsim, keys, runs, work):
    out = Path(work) / "pvsim-bench.json"
    files = [str(BENCH_SCENARIOS / f"{k}.json") for k in keys]
    cmd = [str(pvsim), "bench", "--runs", str(runs), "--json", str(out), *files]
    log(f"pvsim: {' '.join(cmd)}")
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    except OSError as e:
        raise BenchError(f"cannot run {pvsim}: {e} (build it: ninja -C build pvsim guests)") from e
    if p.returncode not in (0, 1) or not out.exists():
        raise BenchError(f"pvsim bench failed (exit {p.returncode}):\n{p.stdout}")
    data = json.loads(out.read_text())
    by_name = {w["name"]: w for w in data["workloads"]}
    return {k: by_name[f"bench-{k}"] for k in keys}


def first_line(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           stdin=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for line in p.stdout.splitlines():
        if line.strip() and not line.startswith("0000"):
            return line.strip()
    return "unknown"


def machine_description(pvsim, qemu, bochs, cc):
    cpu = "unknown"
    cores = set()
    try:
        info = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
        cpu = m.group(1).strip() if m else cpu
        for block in info.split("\n\n"):
            ids = dict(re.findall(r"^(physical id|core id)\s*:\s*(\d+)", block, re.M))
            if len(ids) == 2:
                cores.add((ids["physical id"], ids["core id"]))
    except OSError:
        pass
    desc = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "physical_cores": len(cores) or None,
        "kernel": f"{platform.system()} {platform.release()}",
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "gcc": first_line([cc, "--version"]),
        "pvsim": first_line([str(pvsim), "--version"]),
        "qemu": first_line([qemu, "--version"]) if qemu else "not installed",
        "bochs": "not installed",
    }
    if bochs:
        out = subprocess.run([bochs, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             stdin=subprocess.DEVNULL).stdout
        m = re.search(r"(Bochs x86 Emulator [^\n]+)", out)
        desc["bochs"] = m.group(1).strip() if m else "unknown version"
    return desc


# ---------------------------------------------------------------------------------------
# Report

def fmt_mips(x):
    if x >= 100:
        return f"{round(x):,}".replace(",", " ")
    return f"{x:.1f}" if x < 10 else f"{x:.0f}"


def cell(res, insns):
    if "error" in res:
        return f"FAILED: {res['error']}"
    return fmt_mips(insns / res["median_seconds"] / 1e6) + (" *" if res.get("low_precision") else "")


def mips(res, insns):
    if res is None or "error" in res:
        return None
    return insns / res["median_seconds"] / 1e6


def render(results, machine, runs, column_off):
    lines = []
    head = "| workload (gcc -O2 guest) | " + " | ".join(h for _, h in COLUMNS) + " | pvsim |"
    lines += ["Guest MIPS (median of %d runs; higher is faster):" % runs, "", head,
              "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for key, label in WORKLOADS:
        if key not in results:
            continue
        r = results[key]
        insns = r["pvsim"]["guest_instructions"]
        pv = r["pvsim"]
        pv_cell = fmt_mips(pv["mips"]) if pv["checksum_ok"] else f"FAILED: {pv.get('failure', 'checksum')}"
        cells = [column_off[c] or cell(r.get(c), insns) for c, _ in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {pv_cell} |")
    lines += ["", "pvsim's speed relative to each column (x2.0 = pvsim twice as fast):", "",
              "| workload | guest instructions | " + " | ".join(f"vs {h}" for _, h in COLUMNS) + " |",
              "|---|---:|" + "---:|" * len(COLUMNS)]
    for key, label in WORKLOADS:
        if key not in results:
            continue
        r = results[key]
        insns = r["pvsim"]["guest_instructions"]
        pv = r["pvsim"]["mips"] if r["pvsim"]["checksum_ok"] else None
        cells = []
        for c, _ in COLUMNS:
            other = mips(r.get(c), insns)
            cells.append(f"x{pv / other:.2f}" if pv and other else "—")
        lines.append(f"| {label} | " + f"{insns:,}".replace(",", " ") + " | " + " | ".join(cells) + " |")
    lines += [
        "",
        "- pvsim: exact guest instruction count from `pvsim bench`, host time of `Platform::run()`.",
        "- native: the same `*_algo.h` code as a Linux x86-64 program (guest flags, no SSE), timed "
        "in-process; shown as guest-equivalent MIPS = pvsim's guest instruction count / native seconds.",
        "- QEMU / Bochs: the same guest image behind a Multiboot front end; seconds = wall time of a run "
        "minus the median wall time of a null image (same machine, loader and .bss size), so boot and "
        "start-up are excluded; MIPS = pvsim's guest instruction count / those seconds.",
        "- `*`: low precision — the net time is under 10x the spread of the null runs' start-up time.",
        "",
        "Machine: {cpu}; {logical_cpus} logical CPUs ({physical_cores} cores); {kernel}; load average at "
        "start {load_average}".format(**machine),
        f"Tools: {machine['gcc']}; {machine['qemu']}; {machine['bochs']}; {machine['pvsim']}",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Run the five benchmark workloads under pvsim, natively, under QEMU (TCG, with and "
                    "without -icount shift=0) and under Bochs, and print a Markdown table of guest MIPS.",
        epilog="QEMU and Bochs columns read 'not installed' when the programs are missing "
               "(Debian: apt-get install qemu-system-x86 bochs bochsbios vgabios grub-pc-bin xorriso mtools).")
    ap.add_argument("--pvsim", default=str(REPO / "build" / "tools" / "pvsim"),
                    help="the pvsim binary (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=3, help="runs per workload and column; the median counts (default 3)")
    ap.add_argument("--filter", default="", help="only workloads whose name contains this text (alu, sieve, ...)")
    ap.add_argument("--work-dir", help="keep images and logs here (default: a temporary directory)")
    ap.add_argument("--markdown", help="also write the report to this file")
    ap.add_argument("--json", help="also write every measurement as JSON to this file")
    ap.add_argument("--timeout", type=float, default=900, help="seconds before one emulator run counts as failed")
    ap.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU binary (default: %(default)s)")
    ap.add_argument("--bochs", default="bochs", help="Bochs binary (default: %(default)s)")
    ap.add_argument("--bochs-bios", default="/usr/share/bochs/BIOS-bochs-latest")
    ap.add_argument("--bochs-vgabios", default="/usr/share/vgabios/vgabios.bin")
    ap.add_argument("--skip", action="append", default=[], choices=[c for c, _ in COLUMNS],
                    help="leave a column out (repeatable)")
    args = ap.parse_args(argv)
    if not 1 <= args.runs <= 100:
        ap.error("--runs must be from 1 to 100")
    keys = [k for k, _ in WORKLOADS if args.filter in k]
    if not keys:
        ap.error(f"--filter {args.filter!r} matches no workload ({', '.join(k for k, _ in WORKLOADS)})")
    pvsim = Path(args.pvsim)
    if not os.access(pvsim, os.X_OK):
        ap.error(f"--pvsim {pvsim}: not an executable (build it: ninja -C build pvsim guests)")

    qemu = shutil.which(args.qemu)
    bochs_bin = shutil.which(args.bochs)
    # Why a column is empty, or None when it runs.
    installed = {"native": True, "qemu": bool(qemu), "qemu_icount": bool(qemu), "bochs": bool(bochs_bin)}
    column_off = {c: "skipped" if c in args.skip else None if installed[c] else "not installed" for c, _ in COLUMNS}
    column_state = {c: column_off[c] is None for c, _ in COLUMNS}
    tmp = None
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="pvsim-bench-")
        work = Path(tmp.name)
    try:
        machine = machine_description(pvsim, qemu, bochs_bin, "gcc")
        builder = ImageBuilder(work)
        bochs = Bochs(bochs_bin, work, args.bochs_bios, args.bochs_vgabios) if column_state["bochs"] else None
        results = {k: {} for k in keys}
        for k, r in run_pvsim(pvsim, keys, args.runs, work).items():
            results[k]["pvsim"] = r
        for k in keys:
            if column_state["native"]:
                log(f"{k}: native")
                results[k]["native"] = run_native(builder.native_program(k), args.runs, args.timeout)
            if not (column_state["qemu"] or column_state["qemu_icount"] or bochs):
                continue
            image, null = builder.workload_images(k)
            for col, icount in (("qemu", False), ("qemu_icount", True)):
                if column_state[col]:
                    log(f"{k}: {col} ({args.runs} null + {args.runs} workload runs)")
                    results[k][col] = run_emulator(lambda img: run_qemu(qemu, img, icount, args.timeout),
                                                   image, null, args.runs)
            if bochs:
                log(f"{k}: bochs ({args.runs} null + {args.runs} workload runs)")
                rc_wl, rc_null = bochs.prepare(image), bochs.prepare(null)
                results[k]["bochs"] = run_emulator(lambda rc: bochs.run(rc, args.timeout), rc_wl, rc_null, args.runs)
        machine["load_average_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        report = render(results, machine, args.runs, column_off)
        report += f"Load average at end {machine['load_average_end']}.\n"
        print(report, end="")
        if args.markdown:
            Path(args.markdown).write_text(report)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": machine, "runs": args.runs, "results": results},
                                                  indent=2, default=str) + "\n")
        failed = any("error" in r.get(c, {}) for r in results.values() for c, _ in COLUMNS) or \
            any(not r["pvsim"]["checksum_ok"] for r in results.values())
        return 1 if failed else 0
    except BenchError as e:
        print(f"compare.py: error: {e}", file=sys.stderr)
        return 2
    finally:
        if tmp:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
