#!/usr/bin/env python3
"""pvsim run --perfetto / --timeline on a shipped scenario (tests/timeline/CMakeLists.txt).

  timeline_cli.py perfetto PVSIM CHECKER SCENARIO SCHEDULE
      runs the scenario with --trace and --perfetto, checks that the exporters leave the run
      unchanged (same trace hash as a run without them) and has CHECKER decode the Perfetto
      file against the canonical trace (tests/timeline/perfetto_check.cpp).
  timeline_cli.py html PVSIM SCENARIO SCHEDULE
      runs with --timeline: the page is well-formed XML and parses as HTML, holds the
      scenario's description and name, a lane per vCPU and pCPU, and refers to nothing
      outside itself.
  timeline_cli.py screenshot PVSIM SCENARIO SCHEDULE [OUT.png]
      has headless chromium draw the page and checks the picture is not blank: the colours
      of the legend's states are there. Exit 77 (skipped) without chromium.
SCHEDULE is a --schedule value ("" for none).
"""
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib

SKIP = 77


def run_pvsim(pvsim, scenario, schedule, extra):
    cmd = [pvsim, "run", scenario, "--quiet"] + (["--schedule", schedule] if schedule else []) + extra
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=240)
    if p.returncode not in (0, 1):
        sys.exit(f"FAIL {' '.join(cmd)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    m = re.search(r"trace xxh3 ([0-9a-f]{16})", p.stdout)
    if not m:
        sys.exit(f"FAIL no trace hash in the summary of {' '.join(cmd)}:\n{p.stdout}{p.stderr}")
    return m.group(1)


def machine(scenario):
    with open(scenario) as f:
        s = json.load(f)
    vcpus = s.get("machine", {}).get("vcpus", 1)
    pcpus = s.get("host", {}).get("pcpus", 0) or vcpus
    return s, vcpus, pcpus


def cmd_perfetto(pvsim, checker, scenario, schedule):
    _, vcpus, pcpus = machine(scenario)
    with tempfile.TemporaryDirectory() as d:
        plain = run_pvsim(pvsim, scenario, schedule, [])
        pf, txt = os.path.join(d, "run.pftrace"), os.path.join(d, "run.txt")
        traced = run_pvsim(pvsim, scenario, schedule, ["--trace", txt, "--perfetto", pf])
        if plain != traced:
            sys.exit(f"FAIL the trace hash changes with --perfetto: {plain} vs {traced}")
        canon = open(txt).read()
        # Nothing to check would pass vacuously: the run must have what the checks are about.
        if "kvm_async_pf_not_present" not in canon:
            sys.exit("FAIL the run has no async PF: pick a scenario that has some")
        if schedule and "pvsim_sched_out" not in canon:
            sys.exit(f"FAIL --schedule {schedule!r} descheduled no vCPU")
        if os.path.getsize(pf) == 0:
            sys.exit("FAIL the Perfetto file is empty")
        p = subprocess.run([checker, pf, txt, str(vcpus), str(pcpus)], stdout=subprocess.PIPE, text=True)
        print(p.stdout, end="")
        if p.returncode != 0:
            sys.exit("FAIL the Perfetto file does not match the trace")
    print("ok")


class Collect(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def check_page(page_path, scenario_json, vcpus, pcpus):
    raw = open(page_path, "rb").read()
    text = raw.decode("utf-8")  # must be UTF-8
    try:
        root = ET.fromstring(raw)  # well-formed XML (every element closed, only XML entities)
    except ET.ParseError as e:
        sys.exit(f"FAIL the page is not well-formed: {e}")
    all_text = " ".join(t for t in root.itertext())
    p = Collect()
    p.feed(text)
    p.close()
    # Self-contained: no scripts or style sheets from elsewhere, no images, fonts or links out.
    for tag, attrs in p.tags:
        for k, v in attrs.items():
            if k in ("src", "href", "xlink:href") or (k == "style" and "url(" in (v or "")):
                sys.exit(f"FAIL <{tag}> refers outside the page: {k}={v!r}")
        if tag in ("script", "link", "img", "iframe", "object", "embed") and attrs:
            sys.exit(f"FAIL <{tag}> with attributes {attrs}")
    for pattern in (r"@import", r"url\(", r"\bsrc\s*=", r"href\s*=\s*[\"']?\s*(https?:|//)"):
        if re.search(pattern, text, re.I):
            sys.exit(f"FAIL the page contains {pattern!r}")
    # What the page must say and draw.
    desc = scenario_json.get("description", "")
    if desc and desc not in all_text:
        sys.exit("FAIL the scenario's description is not on the page")
    if scenario_json.get("name", "") not in all_text:
        sys.exit("FAIL the scenario's name is not on the page")
    for v in range(vcpus):
        if f"vCPU {v}" not in all_text:
            sys.exit(f"FAIL no lane for vCPU {v}")
    for c in range(pcpus):
        if f"pCPU {c}" not in all_text:
            sys.exit(f"FAIL no lane for pCPU {c}")
    for word in ("virtual time", "running", "async PF"):
        if word not in all_text:
            sys.exit(f"FAIL the page never says {word!r}")
    svg = root.find(".//{http://www.w3.org/2000/svg}svg")
    if svg is None:
        sys.exit("FAIL no inline SVG")
    n = sum(1 for _ in svg.iter())
    if n > 60000:
        sys.exit(f"FAIL {n} SVG elements")
    return n


def cmd_html(pvsim, scenario, schedule):
    s, vcpus, pcpus = machine(scenario)
    with tempfile.TemporaryDirectory() as d:
        page = os.path.join(d, "run.html")
        run_pvsim(pvsim, scenario, schedule, ["--timeline", page])
        n = check_page(page, s, vcpus, pcpus)
    print(f"ok ({n} SVG elements)")


def png_pixels(path):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB or RGBA PNG (RFC 2083), zlib only."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit("FAIL the screenshot is not a PNG")
    pos, idat, w = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                sys.exit(f"FAIL unexpected PNG format (depth {depth}, colour type {ctype}, interlace {interlace})")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return w, h, rows


def cmd_screenshot(pvsim, scenario, schedule, out=None):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("SKIP: chromium is not installed (Debian package chromium); the HTML timeline was not rendered")
        sys.exit(SKIP)
    s, vcpus, pcpus = machine(scenario)
    with tempfile.TemporaryDirectory() as d:
        page, png = os.path.join(d, "run.html"), out or os.path.join(d, "shot.png")
        run_pvsim(pvsim, scenario, schedule, ["--timeline", page])
        check_page(page, s, vcpus, pcpus)
        env = dict(os.environ, HOME=d)
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={os.path.join(d, 'profile')}", f"--screenshot={png}",
               "--window-size=1400,900", "file://" + page]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, env=env)
        if p.returncode != 0 or not os.path.exists(png):
            sys.exit(f"FAIL chromium did not take the screenshot (exit {p.returncode}):\n{p.stdout[-2000:]}")
        size = os.path.getsize(png)
        w, h, rows = png_pixels(png)
    if (w, h) != (1400, 900):
        sys.exit(f"FAIL screenshot is {w}x{h}, not 1400x900")
    counts = {}
    for row in rows:
        for px in row:
            counts[px] = counts.get(px, 0) + 1
    if len(counts) < 16:
        sys.exit(f"FAIL the screenshot has only {len(counts)} colours: the page did not render")
    # The states' colours (timeline_html.cpp): running green must cover a real area, and the
    # run's async-PF halts and preemption must show.
    want = {"running": (0x43, 0xa0, 0x47), "halted (async PF)": (0x95, 0x75, 0xcd), "async PF": (0x15, 0x65, 0xc0),
            "descheduled (preempted)": (0xe5, 0x39, 0x35), "pCPU host work": (0x45, 0x5a, 0x64)}
    for name, rgb in want.items():
        if counts.get(rgb, 0) < 50:
            sys.exit(f"FAIL hardly any '{name}' colour #{bytes(rgb).hex()} in the screenshot ({counts.get(rgb, 0)} pixels)")
    white = counts.get((255, 255, 255), 0)
    if white > 0.97 * w * h:
        sys.exit("FAIL the screenshot is almost all white")
    print(f"ok ({w}x{h}, {size} bytes, {len(counts)} colours)")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "perfetto" and len(args) == 4:
        cmd_perfetto(*args)
    elif mode == "html" and len(args) == 3:
        cmd_html(*args)
    elif mode == "screenshot" and len(args) in (3, 4):
        cmd_screenshot(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
