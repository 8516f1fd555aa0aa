"""Booting pvsim guest images under QEMU (and GRUB/Bochs) through the Multiboot front end
of scenarios/guest/multiboot/. Shared by tools/bench/compare.py, tools/bench/smoke_test.py
and tests/guest/qemu_check.py. Standard library only; needs gcc, nm and objcopy.

Two kinds of image:
  flat     build_flat_image(): the guest program compiled again with multiboot.S (a.out
           kludge header, -DMB_AOUT_KLUDGE) and mb_exit.c linked in front, dumped as a flat
           binary. The benchmark uses it: mb_exit.c also ends Bochs, which has no
           isa-debug-exit.
  wrapped  wrap_elf(): an unchanged guest ELF64 image (what pvsim runs, byte for byte) plus
           the stand-alone stub (multiboot.S + mb_start.c linked right after the image's end)
           in one ELF32 file, which QEMU's Multiboot loader accepts (it refuses ELF64).
           Used where the guest must be the very image of a shipped scenario.
"""

import os
import re
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GUEST_SRC = REPO / "scenarios" / "guest"
MULTIBOOT_SRC = GUEST_SRC / "multiboot"
MULTIBOOT_MAGIC = 0x1BADB002
MB_HEADER_SEARCH = 8192  # Multiboot spec 3.1.1: the header lies in the first 8 KiB
SKIP = 77  # ctest SKIP_RETURN_CODE


class BootError(Exception):
    """A problem building or checking an image (bad tool, failed build, malformed file)."""


def run_checked(cmd, what, **kw):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL, **kw)
    except OSError as e:
        raise BootError(f"{what}: cannot run {cmd[0]}: {e}") from e
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-15:]
        raise BootError(f"{what} failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n" + "\n".join(tail))
    return p.stdout


# ---------------------------------------------------------------------------------------
# Compile flags come from scenarios/CMakeLists.txt so they cannot drift.

def cmake_set(text, var):
    """Items of `set(VAR item item ...)` in a CMake file (no nested parentheses there)."""
    m = re.search(r"^\s*set\(\s*" + re.escape(var) + r"\s+([^)]*)\)", text, re.M)
    if not m:
        raise BootError(f"scenarios/CMakeLists.txt: no set({var} ...) found")
    body = "\n".join(line.split("#", 1)[0] for line in m.group(1).splitlines())
    return body.split()


def guest_flags():
    """(CFLAGS, LDFLAGS) of the guest images, as scenarios/CMakeLists.txt sets them."""
    text = (REPO / "scenarios" / "CMakeLists.txt").read_text()
    subst = {"${GUEST_SRC}": str(GUEST_SRC), "${GUEST_LINKER_SCRIPT}": str(GUEST_SRC / "lib" / "guest.ld")}

    def expand(items):
        out = []
        for item in items:
            for k, v in subst.items():
                item = item.replace(k, v)
            if "${" in item:
                raise BootError(f"scenarios/CMakeLists.txt: cannot expand '{item}'")
            out.append(item)
        return out

    return expand(cmake_set(text, "PVSIM_GUEST_CFLAGS")), expand(cmake_set(text, "PVSIM_GUEST_LDFLAGS"))


def elf_symbols(elf):
    syms = {}
    for line in run_checked(["nm", str(elf)], f"nm {elf}").splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2]] = int(parts[0], 16)
    return syms


# ---------------------------------------------------------------------------------------
# ELF

def read_elf64(path):
    """(entry, [(paddr, memsz, file bytes)] of the PT_LOAD segments) of an x86-64 ELF64
    executable; BootError naming the file for anything else."""
    data = Path(path).read_bytes()
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise BootError(f"{path}: not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise BootError(f"{path}: not a little-endian ELF64 file")
    e_type, e_machine, _, e_entry, e_phoff = struct.unpack_from("<HHIQQ", data, 16)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    if e_type != 2 or e_machine != 62:
        raise BootError(f"{path}: not an x86-64 executable (type {e_type}, machine {e_machine})")
    segs = []
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        if off + 56 > len(data):
            raise BootError(f"{path}: program header {i} past the end of the file")
        p_type, _, p_offset, _, p_paddr, p_filesz, p_memsz = struct.unpack_from("<IIQQQQQ", data, off)
        if p_type != 1:
            continue
        if p_offset + p_filesz > len(data) or p_filesz > p_memsz:
            raise BootError(f"{path}: PT_LOAD {i} is truncated or inconsistent")
        if p_paddr + p_memsz > 0xFFFFFFFF:
            raise BootError(f"{path}: PT_LOAD {i} at {p_paddr:#x} does not fit a 32-bit loader")
        segs.append((p_paddr, p_memsz, data[p_offset:p_offset + p_filesz]))
    if not segs:
        raise BootError(f"{path}: no PT_LOAD segment")
    return e_entry, sorted(segs)


def write_elf32(path, entry, segments):
    """An i386 ELF32 executable with one RWX PT_LOAD per (paddr, memsz, bytes), the data
    packed in the given order right after the program headers (16-byte aligned)."""
    phoff = 52
    off = (phoff + 32 * len(segments) + 15) & ~15
    headers, blobs = [], []
    for paddr, memsz, blob in segments:
        headers.append(struct.pack("<8I", 1, off, paddr, paddr, len(blob), memsz, 7, 16))
        pad = (-len(blob)) % 16
        blobs.append(blob + b"\0" * pad)
        off += len(blob) + pad
    ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    ehdr = ident + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, entry, phoff, 0, 0, 52, 32, len(segments), 0, 0, 0)
    body = ehdr + b"".join(headers)
    body += b"\0" * (((phoff + 32 * len(segments) + 15) & ~15) - len(body))
    Path(path).write_bytes(body + b"".join(blobs))


# ---------------------------------------------------------------------------------------
# Images

class ImageBuilder:
    """Builds flat Multiboot images and wrapped ELF32 images under `work_dir`/mb."""

    def __init__(self, work_dir, cc="gcc"):
        self.work = Path(work_dir)
        (self.work / "mb").mkdir(parents=True, exist_ok=True)
        self.cc = cc
        self.cflags, self.ldflags = guest_flags()
        self.lib_sources = sorted(str(p) for p in (GUEST_SRC / "lib").glob("*.[cS]"))

    def build_flat_image(self, name, program, defines=()):
        """The flat image of `program` (a .c file); returns (image path, symbols)."""
        elf = self.work / "mb" / f"{name}.elf"
        binary = self.work / "mb" / f"{name}.bin"
        # multiboot.S first: guest.ld lays out .text.entry in link order, so the Multiboot
        # header lands at the start of the file. --wrap=exit: see mb_exit.c.
        cmd = [self.cc, "-O2", *self.cflags, "-DMB_AOUT_KLUDGE", *[f"-D{d}" for d in defines],
               str(MULTIBOOT_SRC / "multiboot.S"), str(MULTIBOOT_SRC / "mb_start.c"), str(MULTIBOOT_SRC / "mb_exit.c"),
               *self.lib_sources, str(program), *self.ldflags, "-Wl,--wrap=exit", "-o", str(elf)]
        run_checked(cmd, f"building {elf.name}")
        run_checked(["objcopy", "-O", "binary", str(elf), str(binary)], f"objcopy {elf.name}")
        check_multiboot(binary)
        return binary, elf_symbols(elf)

    def wrap_elf(self, guest_elf, name=None):
        """The ELF32 Multiboot file of an unchanged guest ELF64 image; returns its path."""
        guest_elf = Path(guest_elf)
        name = name or guest_elf.stem
        entry, segs = read_elf64(guest_elf)
        end = max(paddr + memsz for paddr, memsz, _ in segs)
        base = (end + 15) & ~15
        stub_elf = self.work / "mb" / f"{name}.stub.elf"
        stub_bin = self.work / "mb" / f"{name}.stub.bin"
        ldflags = [f for f in self.ldflags if not f.startswith("-Wl,-T,")]
        cmd = [self.cc, "-O2", *self.cflags, str(MULTIBOOT_SRC / "multiboot.S"), str(MULTIBOOT_SRC / "mb_start.c"),
               *ldflags, f"-Wl,-T,{MULTIBOOT_SRC / 'mb_stub.ld'}", f"-Wl,--defsym=mb_stub_base={base:#x}",
               f"-Wl,--defsym=_start={entry:#x}", "-o", str(stub_elf)]
        run_checked(cmd, f"building the Multiboot stub for {guest_elf.name}")
        run_checked(["objcopy", "-O", "binary", str(stub_elf), str(stub_bin)], f"objcopy {stub_elf.name}")
        stub_entry, stub_segs = read_elf64(stub_elf)
        stub = stub_bin.read_bytes()
        if stub_segs[0][0] != base:
            raise BootError(f"{stub_elf}: linked at {stub_segs[0][0]:#x}, not at {base:#x}")
        # The stub first, so its Multiboot header is in the file's first 8 KiB; the gap
        # between the guest's last byte and the stub becomes zeroed memory of the guest's
        # last segment (a loader would otherwise leave it undefined).
        out_segs = [(base, len(stub), stub)]
        for i, (paddr, memsz, blob) in enumerate(segs):
            if i == len(segs) - 1:
                memsz = base - paddr
            out_segs.append((paddr, memsz, blob))
        out = self.work / "mb" / f"{name}.mb32.elf"
        write_elf32(out, stub_entry, out_segs)
        check_multiboot(out, elf=True)
        return out


def check_multiboot(path, elf=False):
    """Checks a Multiboot v1 header is in the first 8 KiB: magic and checksum, and for a
    flat image (elf=False) the address fields (the "a.out kludge", spec 3.1.3) consistent
    with the file; for a wrapped ELF32 file that they are absent (flag 16 clear). Returns
    the header's offset and fields."""
    data = Path(path).read_bytes()
    for off in range(0, min(len(data), MB_HEADER_SEARCH) - 11, 4):
        magic, flags, checksum = struct.unpack_from("<III", data, off)
        if magic != MULTIBOOT_MAGIC:
            continue
        if (magic + flags + checksum) & 0xFFFFFFFF:
            raise BootError(f"{path}: Multiboot header at offset {off:#x}: checksum does not cancel")
        if elf:
            if data[:4] != b"\x7fELF" or data[4] != 1:
                raise BootError(f"{path}: not an ELF32 file")
            if flags & (1 << 16):
                raise BootError(f"{path}: Multiboot header: flag 16 set in an ELF image")
            return {"offset": off, "flags": flags, "entry": struct.unpack_from("<I", data, 24)[0]}
        if not flags & (1 << 16):
            raise BootError(f"{path}: Multiboot header: flag 16 (address fields) not set")
        if off + 32 > len(data):
            raise BootError(f"{path}: Multiboot header at offset {off:#x} is truncated")
        header_addr, load_addr, load_end, bss_end, entry = struct.unpack_from("<5I", data, off + 12)
        file_end = load_addr + len(data)
        if header_addr - load_addr != off:
            raise BootError(f"{path}: Multiboot header_addr {header_addr:#x} does not match its file offset {off:#x}")
        if load_end and not load_addr < load_end <= file_end:
            raise BootError(f"{path}: Multiboot load_end_addr {load_end:#x} outside the file")
        if bss_end and bss_end < (load_end or file_end):
            raise BootError(f"{path}: Multiboot bss_end_addr {bss_end:#x} below the loaded data")
        if not load_addr <= entry < file_end:
            raise BootError(f"{path}: Multiboot entry {entry:#x} outside the loaded image")
        return {"offset": off, "flags": flags, "load_addr": load_addr, "bss_end": bss_end, "entry": entry}
    raise BootError(f"{path}: no Multiboot header (magic {MULTIBOOT_MAGIC:#x}) in the first 8 KiB")


# ---------------------------------------------------------------------------------------
# QEMU

def find_qemu(name="qemu-system-x86_64"):
    return shutil.which(name)


def kvm_unusable_reason(dev="/dev/kvm"):
    """None when /dev/kvm can be opened read-write, else why not (one phrase)."""
    if not os.path.exists(dev):
        return f"{dev} does not exist"
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"cannot open {dev}: {e.strerror}"
    os.close(fd)
    return None


def qemu_command(qemu, image, accel="tcg", ram_mib=256, vcpus=1, append=None, cpu=None, icount=False):
    """QEMU's command line for one guest: console on -debugcon (stdout), exit through
    isa-debug-exit at 0xf4 (status (v << 1) | 1, as on pvsim), no devices but those."""
    # i8042=off: without the PS/2 controller SeaBIOS skips its keyboard probe, which waits in
    # real time. The vCPU topology is explicit so that vCPU i has APIC ID i (mb_start.c).
    cmd = [qemu, "-machine", "pc,i8042=off", "-accel", accel, "-m", str(ram_mib)]
    if cpu:
        cmd += ["-cpu", cpu]
    if vcpus > 1:
        cmd += ["-smp", f"{vcpus},sockets=1,cores={vcpus},threads=1"]
    cmd += ["-display", "none", "-nodefaults", "-no-reboot", "-kernel", str(image), "-debugcon", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=1"]
    if append:
        cmd += ["-append", append]
    if icount:
        cmd += ["-icount", "shift=0"]
    return cmd


def run_qemu(cmd, timeout):
    """Runs QEMU; returns (exit status or None when it timed out, console, stderr)."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode("latin-1") if e.stdout else ""
        err = e.stderr.decode("latin-1") if e.stderr else ""
        return None, out, err
    return p.returncode, p.stdout.decode("latin-1"), p.stderr.decode("latin-1")


def run_qemu_watch(cmd, timeout, stop_markers, enough=None):
    """Runs QEMU, ending it early when its stderr shows one of `stop_markers` (text ->
    outcome name, e.g. "KVM internal error": QEMU then pauses the VM and would wait for a
    monitor command forever), or when enough(console) is true (outcome "enough": the
    caller has seen what it needs). Returns (exit status or None, console, stderr,
    outcome), outcome "exit", "timeout", "enough" or the marker's name."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    chunks = {"out": [], "err": []}

    def reader(stream, key):
        for block in iter(lambda: stream.read1(65536), b""):
            chunks[key].append(block)

    threads = [threading.Thread(target=reader, args=(p.stdout, "out"), daemon=True),
               threading.Thread(target=reader, args=(p.stderr, "err"), daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    outcome = "exit"
    while p.poll() is None:
        err = b"".join(chunks["err"]).decode("latin-1")
        hit = next((name for text, name in stop_markers.items() if text in err), None)
        if not hit and enough and enough(b"".join(chunks["out"]).decode("latin-1")):
            hit = "enough"
        if hit or time.monotonic() > deadline:
            outcome = hit or "timeout"
            p.kill()
            break
        time.sleep(0.02)
    status = p.wait()
    for t in threads:
        t.join()
    if outcome != "exit":
        status = None
    return status, b"".join(chunks["out"]).decode("latin-1"), b"".join(chunks["err"]).decode("latin-1"), outcome
