#!/usr/bin/env python3
"""Cheap ctest smoke test for tools/bench/compare.py (the benchmark itself is not a test).

1. Builds the five workload images and their null images the way compare.py does, and
   checks each is well-formed Multiboot v1 (magic, checksum, address fields vs the file).
2. Builds the native programs (not run: they take seconds).
3. If qemu-system-x86_64 is installed: boots a null image under QEMU, without and with
   -icount shift=0, and checks the console (the null guest verifies CR0/CR3/CR4/EFER and
   RDI/RSI/RDX against scenarios/guest/boot.md §3) and QEMU's exit status. Otherwise prints
   "skipped: qemu-system-x86_64 not installed" and exits 77 (ctest SKIP_RETURN_CODE).
Exit 0 = all checks passed, 1 = a check failed.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (same directory)


def main():
    failures = 0
    with tempfile.TemporaryDirectory(prefix="pvsim-bench-smoke-") as work:
        try:
            builder = compare.ImageBuilder(work)
            nulls = []
            for key, _ in compare.WORKLOADS:
                image, null = builder.workload_images(key)
                for img in (image, null):
                    hdr = compare.check_multiboot(img)
                    print(f"ok: {img.name} Multiboot header at {hdr['offset']:#x}, entry {hdr['entry']:#x}, "
                          f"bss end {hdr['bss_end']:#x}")
                nulls.append(null)
                builder.native_program(key)
                print(f"ok: native-{key} built")
        except compare.BenchError as e:
            print(f"FAIL: {e}")
            return 1

        # The checker itself must reject a broken header, or the checks above prove nothing.
        broken = Path(work) / "broken.bin"
        data = bytearray(nulls[0].read_bytes())
        off = compare.check_multiboot(nulls[0])["offset"]
        data[off + 8] ^= 1  # checksum no longer cancels
        broken.write_bytes(bytes(data))
        try:
            compare.check_multiboot(broken)
            print("FAIL: check_multiboot accepted a header with a wrong checksum")
            failures += 1
        except compare.BenchError as e:
            print(f"ok: corrupted header rejected ({e})")

        qemu = shutil.which("qemu-system-x86_64")
        if not qemu:
            print("skipped: qemu-system-x86_64 not installed")
            return compare.SKIP if failures == 0 else 1
        # The smallest null image (alu's); both QEMU modes compare.py uses.
        for icount in (False, True):
            cmd = compare.qemu_command(qemu, nulls[0], icount)
            try:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   timeout=60)
            except subprocess.TimeoutExpired:
                print(f"FAIL: QEMU timed out: {' '.join(cmd)}")
                failures += 1
                continue
            console = p.stdout.decode("latin-1")
            problem = compare.guest_console_problem(console)
            if p.returncode != 1 or problem or console.count("PASS:") != 4:
                print(f"FAIL: QEMU{' -icount' if icount else ''}: exit {p.returncode}, {problem or 'console'}:\n"
                      f"{console}{p.stderr.decode('latin-1')}")
                failures += 1
            else:
                print(f"ok: null image under QEMU{' -icount shift=0' if icount else ''}: 4 PASS, exit(0)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
