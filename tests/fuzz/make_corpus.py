#!/usr/bin/env python3
"""Assembles a fuzz target's seed corpus, or the JSON dictionary, from the shipped files.

    make_corpus.py TARGET OUTDIR [--root ROOT]   seed inputs of TARGET into OUTDIR (emptied first)
    make_corpus.py --dict OUTFILE [--root ROOT]  libFuzzer dictionary for the JSON targets

Nothing is committed twice: the seeds are made at build/test time from the scenarios
(scenarios/*.json, scenarios/bench, scenarios/scale, tests/platform/good and bad) and the
images (the guest ELFs the normal build puts in scenarios/guest/bin, when they have been
built, and the hand-made images under tests/platform), in the shape each target reads
(tests/fuzz/README.md, "Targets"). The dictionary is every key and enum string of
scenarios/scenario.schema.json plus JSON syntax. Output is the same for the same files.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import struct
import sys

TARGETS = ("scenario", "validate", "loader", "decoder", "vcpu", "trace_check")
ANCHOR_IMAGE = "guest.img"  # tests/fuzz/anchor/guest.img: what the JSON targets' images resolve to

IMAGE_RE = re.compile(rb'("image"\s*:\s*)"((?:[^"\\]|\\.)*)"')


def rel(root, path):
    return os.path.relpath(path, root).replace(os.sep, "_").replace("/", "_")


def scenario_files(root):
    out = []
    for pattern in ("scenarios/*.json", "scenarios/bench/*.json", "scenarios/scale/*.json",
                    "tests/platform/bad/*.json", "tests/platform/good/*.json"):
        out += sorted(glob.glob(os.path.join(root, pattern)))
    return out


def image_files(root):
    out = sorted(glob.glob(os.path.join(root, "scenarios/guest/bin/*.elf")))
    for d in ("tests/platform/good", "tests/platform/bad"):
        out += sorted(p for p in glob.glob(os.path.join(root, d, "*")) if not p.endswith(".json"))
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read()


def anchored(text):
    """The scenario text with its guest image renamed to the anchor image, and the image
    path as written (None when the text names none)."""
    m = IMAGE_RE.search(text)
    if not m:
        return text, None
    try:
        written = json.loads(b'"' + m.group(2) + b'"')
    except ValueError:
        written = None
    new = text[:m.start()] + m.group(1) + b'"' + ANCHOR_IMAGE.encode() + b'"' + text[m.end():]
    return new, written


def code_ranges(image):
    """(file offset, size) of the executable PT_LOAD segments of an ELF64 image, entry
    first; the whole file for anything else (a flat image is all code)."""
    if len(image) < 64 or image[:4] != b"\x7fELF" or image[4] != 2:
        return [(0, len(image))], 0
    entry, phoff = struct.unpack_from("<QQ", image, 24)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    ranges, entry_off = [], None
    for i in range(phnum):
        h = phoff + i * phentsize
        if h + 56 > len(image):
            break
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", image, h)
        if p_type != 1 or not (p_flags & 1) or p_offset + p_filesz > len(image):
            continue
        ranges.append((p_offset, p_filesz))
        if p_vaddr <= entry < p_vaddr + p_filesz:
            entry_off = p_offset + (entry - p_vaddr)
    return ranges, entry_off


def code_chunks(image, size, count):
    """Up to `count` pieces of `size` code bytes: the entry point first, then evenly spread."""
    ranges, entry_off = code_ranges(image)
    starts = []
    if entry_off is not None and entry_off < len(image):
        starts.append(entry_off)
    total = sum(n for _, n in ranges)
    if total:
        step = max(total // count, 1)
        for k in range(count):
            pos = k * step
            for off, n in ranges:
                if pos < n:
                    starts.append(off + pos)
                    break
                pos -= n
    out = []
    for s in starts[:count]:
        piece = image[s:s + size]
        if piece and piece not in out:
            out.append(piece)
    return out


def seeds(target, root):
    """[(name, bytes)] for the target."""
    out = []
    if target in ("scenario", "validate"):
        for path in scenario_files(root):
            text = read(path)
            fixed, written = anchored(text)
            name = rel(root, path)
            if target == "scenario":
                out.append((name, text))
                if fixed != text:
                    out.append((name + ".anchored", fixed))
            else:
                image = b""
                if written:
                    img_path = os.path.join(os.path.dirname(path), written)
                    if os.path.isfile(img_path) and os.path.getsize(img_path) <= (1 << 20):
                        image = read(img_path)
                out.append((name + ".validate", fixed + b"\0" + image))
    elif target == "loader":
        for path in image_files(root):
            out.append((rel(root, path), read(path)))
    elif target == "decoder":
        for path in image_files(root):
            for k, piece in enumerate(code_chunks(read(path), 64, 16)):
                out.append(("%s.code%02d" % (rel(root, path), k), piece))
    elif target == "vcpu":
        for path in image_files(root):
            for k, piece in enumerate(code_chunks(read(path), 512, 4)):
                out.append(("%s.code%02d" % (rel(root, path), k), piece))
    elif target == "trace_check":
        # A pattern line from a shipped scenario's expect.trace, then lines of a golden trace
        # ("event: text", as the patterns see them).
        goldens = sorted(glob.glob(os.path.join(root, "scenarios/golden/*.txt")))
        for path in scenario_files(root):
            try:
                s = json.loads(re.sub(rb"^\s*//.*$", b"", read(path), flags=re.M))
            except ValueError:
                continue
            pats = []
            for t in (s.get("expect", {}) or {}).get("trace", []) if isinstance(s, dict) else []:
                pats += t.get("in_order", []) + [t[k] for k in ("absent", "count") if k in t]
            for k, p in enumerate(pats[:8]):
                if not goldens:
                    break
                body = []
                for line in read(goldens[(len(out) + k) % len(goldens)]).splitlines()[:40]:
                    at = line.find(b": ", line.find(b"] "))
                    body.append(line[at + 2:] if at >= 0 else line)
                out.append(("%s.pattern%d" % (rel(root, path), k), p.encode() + b"\n" + b"\n".join(body)))
    # Same bytes twice add nothing.
    seen, unique = set(), []
    for name, data in out:
        h = hashlib.sha1(data).digest()
        if h not in seen:
            seen.add(h)
            unique.append((name, data))
    return unique


def dict_entry(s):
    esc = ""
    for ch in s.encode():
        if ch in (0x22, 0x5c):
            esc += "\\" + chr(ch)
        elif ch < 0x20 or ch > 0x7e:
            esc += "\\x%02x" % ch
        else:
            esc += chr(ch)
    return '"%s"' % esc


def dictionary(root):
    with open(os.path.join(root, "scenarios/scenario.schema.json"), "rb") as f:
        schema = json.load(f)
    keys, strings = set(), set()

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("properties", "patternProperties") and isinstance(v, dict):
                    keys.update(v.keys())
                if k == "enum":
                    strings.update(x for x in v if isinstance(x, str))
                if k == "const" and isinstance(v, str):
                    strings.add(v)
                walk(v)
        elif isinstance(o, list):
            for x in o:
                walk(x)

    walk(schema)
    tokens = ['"%s":' % k for k in keys] + ['"%s"' % s for s in strings]
    tokens += ['"%s"' % ANCHOR_IMAGE, "{", "}", "[", "]", ":", ",", "true", "false", "null", '"0x',
               "-1", "1e999", "18446744073709551616", "9007199254740993", "//", "/*", "*/", "\\u0000",
               "\\ud800", "\\\\", "\\\"", "~1", "~0"]
    return sorted(set(tokens))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", nargs="?", choices=TARGETS)
    ap.add_argument("out")
    ap.add_argument("--dict", action="store_true", help="write the JSON dictionary to OUT")
    ap.add_argument("--root", default=os.path.normpath(os.path.join(os.path.dirname(__file__), "../..")))
    a = ap.parse_args()
    if a.dict:
        lines = ["# libFuzzer dictionary for the scenario and validate targets, made by",
                 "# tests/fuzz/make_corpus.py from scenarios/scenario.schema.json."]
        lines += ["t%03d=%s" % (i, dict_entry(t)) for i, t in enumerate(dictionary(a.root))]
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")
        print("make_corpus: %d dictionary entries in %s" % (len(lines) - 2, a.out))
        return 0
    if not a.target:
        ap.error("TARGET is required without --dict")
    items = seeds(a.target, a.root)
    if not items:
        print("make_corpus: no seed files found for %s under %s" % (a.target, a.root), file=sys.stderr)
        return 1
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    for name, data in items:
        with open(os.path.join(a.out, name), "wb") as f:
            f.write(data)
    print("make_corpus: %d %s seeds in %s" % (len(items), a.target, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
