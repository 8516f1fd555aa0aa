#!/usr/bin/env python3
"""Checks that pvsim's documentation stands on its own (ctest group tests/docs).

usage:
  check_docs.py standalone     --root DIR
  check_docs.py links          --root DIR
  check_docs.py guest-template --root DIR --pvsim PATH [--cc gcc]

standalone      No text file of the repository refers to documents or trackers a user of
                the repository does not have (FORBIDDEN below says what and why). Prints
                every hit as FILE:LINE: text, so a sweep can work down the list.
links           Every relative link in every Markdown file resolves to a file or directory
                inside the repository, and a #fragment to a heading (or <a id/name>) of the
                target file, with GitHub's heading-to-anchor rule.
guest-template  scenarios/guest/template/build.sh builds the template guest into a
                temporary directory with gcc alone, `pvsim run` of template.json against
                that image succeeds, and the source tree is left untouched. First it checks
                that build.sh and scenarios/guest/boot.md use exactly the compiler and
                linker flags scenarios/CMakeLists.txt uses, so the documented command is the
                one the project builds its own guests with.

Files examined: `git ls-files --cached --others --exclude-standard` in a git checkout
(tracked files plus new, not ignored ones, so a file is checked before its first commit);
otherwise a walk of the tree that skips build directories. Python 3 standard library only.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

# ---------------------------------------------------------------------------------------
# Which files

# This script has to spell the forbidden patterns out, so it is the one file not scanned.
SELF = "tests/docs/check_docs.py"
# Directories never examined when walking a tree without git (build products).
WALK_SKIP_DIRS = {".git", "__pycache__"}
WALK_SKIP_PREFIXES = ("build",)  # build/, build-rel/, build-asan/ ...
WALK_SKIP_PATHS = {"scenarios/guest/bin"}


def repo_files(root):
    """Repository-relative paths of the files to examine, sorted."""
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True).stdout
        files = [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]
        # --cached also lists files deleted in the work tree.
        return sorted(p for p in set(files) if os.path.isfile(os.path.join(root, p)))
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        keep = []
        for d in dirnames:
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if d in WALK_SKIP_DIRS or rel in WALK_SKIP_PATHS or (not rel_dir and d.startswith(WALK_SKIP_PREFIXES)):
                continue
            keep.append(d)
        dirnames[:] = sorted(keep)
        for f in filenames:
            files.append(f"{rel_dir}/{f}" if rel_dir else f)
    return sorted(files)


def read_text(root, rel):
    """The file's text, or None for a binary file (a NUL byte in its first 8 KiB)."""
    with open(os.path.join(root, rel), "rb") as fh:
        data = fh.read()
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------
# docs.standalone

# A tracker issue by number: 'issue 3', 'issue-3', 'Issue 4', 'issue #12', 'issue3-...'.
ISSUE_NUMBER = r"(?<![\w-])[Ii]ssue[ -]?#?\d+"

# (pattern, why it is forbidden). Each pattern is as narrow as the thing it hunts, so that
# ordinary words do not trip it; the notes say which near misses stay allowed.
FORBIDDEN = [
    (r"\.\./shared\b",
     "a path into the team's private reference tree next to the checkout; users do not have it"),
    (r"/work/shared\b",
     "the same tree by absolute path"),
    (r"\bshared/(?:docs|seeds|kut)\b",
     "the same tree's subdirectories"),
    (r"kvm-pv-spec",
     "the private PV-interface notes; the repository's own text is pvmsr/README.md"),
    (r"\barchitecture\.md\b",
     "the private design notes; the repository's own text is tools/platform/README.md"),
    (r"\b[Aa]rchitecture §\s*\d",
     "the same notes cited without the file name ('Architecture §1'); the SDM's title "
     "'Intel 64 and IA-32 Architectures' is plural and never followed by §"),
    (r"\bboot-protocol\.md\b",
     "the private boot-protocol notes; the repository's own text is scenarios/guest/boot.md"),
    (r"\becosystem\.md\b",
     "the private survey of other tools"),
    (r"issue3-design",
     "private design notes of one tracker issue"),
    # Tracker references. Allowed: English 'issue' as a verb or noun without a number ('the
    # CPU issues a fetch'), and a number after 'Issue' that belongs to a document revision
    # of Intel's (see ISSUE_EXEMPT_BEFORE).
    (ISSUE_NUMBER,
     "a tracker issue by number ('issue 3', 'issue-3', 'Issue 4'); say what the code does and "
     "cite a commit, the SDM, KVM or the repository's docs instead"),
    (r"\b(?:later|earlier|next|previous|future) issues?\b",
     "a tracker issue by position ('arrives in a later issue'); say 'not implemented yet'"),
    (r"\bissue by issue\b",
     "the tracker's plan; say what is not implemented yet"),
    (r"\b[Ii]ssue \"",
     "a tracker issue by title ('issue \"Trace\"')"),
    # 'spec §2.3', 'Spec §3.1', 'spec "ABI profiles"': the private PV notes by section. Not
    # 'MP spec §3.6.2.2', which is Intel's MultiProcessor Specification, a public document.
    (r"(?<!MP )\b[Ss]pec(?:ification)? (?:§|\")",
     "the private PV notes cited by section or heading; cite pvmsr/README.md §N"),
]
# A match of the issue-number pattern is not a tracker reference when one of these words
# comes earlier on the same line (a revision of an Intel manual: 'SDM ... Issue 2').
ISSUE_EXEMPT_BEFORE = re.compile(r"\b(?:SDM|Manual|Intel)\b")

COMPILED = [(re.compile(p), p, why) for p, why in FORBIDDEN]


def standalone_hits(rel, text):
    hits = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for rx, pat, why in COMPILED:
            for m in rx.finditer(line):
                if pat == ISSUE_NUMBER and ISSUE_EXEMPT_BEFORE.search(line, 0, m.start()):
                    continue
                hits.append((rel, lineno, m.group(0), why, line.strip()))
                break
            else:
                continue
            break  # one report per line: the first forbidden thing on it
    return hits


def cmd_standalone(root):
    hits = []
    scanned = 0
    for rel in repo_files(root):
        if rel == SELF:
            continue
        text = read_text(root, rel)
        if text is None:
            continue
        scanned += 1
        hits += standalone_hits(rel, text)
    for rel, lineno, found, why, line in hits:
        print(f"{rel}:{lineno}: '{found}' ({why}): {line}")
    files = len({h[0] for h in hits})
    print(f"docs.standalone: {scanned} text files scanned, {len(hits)} forbidden reference(s) in {files} file(s)")
    return 1 if hits else 0


# ---------------------------------------------------------------------------------------
# docs.links

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target "title") and ![alt](target); the text may hold one level of [...].
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+[^>]*\b(?:id|name)\s*=\s*\"([^\"]+)\"", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_lines(text, keep_code=False):
    """(line number, line) outside fenced code blocks; inline code spans blanked unless
    keep_code (a heading's anchor includes the text of its code spans)."""
    fence = None
    for lineno, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        yield lineno, line if keep_code else INLINE_CODE.sub(lambda c: " " * len(c.group(0)), line)


def github_slug(heading):
    """The anchor GitHub gives a heading: the rendered text, lower-cased, everything but
    letters, digits, '_', '-' and spaces dropped, spaces turned into '-'."""
    s = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: keep the text
    s = re.sub(r"<[^>]+>", "", s)                            # inline HTML tags
    s = s.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors_of(text):
    seen = {}
    anchors = set()
    for _, line in markdown_lines(text, keep_code=True):
        for m in HTML_ANCHOR.finditer(line):
            anchors.add(m.group(1))
        m = ATX.match(line)
        if not m:
            continue
        base = github_slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    return anchors


def cmd_links(root):
    root_abs = os.path.realpath(root)
    problems = []
    checked = 0
    anchor_cache = {}
    md_files = [f for f in repo_files(root) if f.endswith(".md")]
    for rel in md_files:
        text = read_text(root, rel)
        if text is None:
            continue
        for lineno, line in markdown_lines(text):
            targets = [m.group(1) for m in INLINE_LINK.finditer(line)]
            m = REF_DEF.match(line)
            if m:
                targets.append(m.group(1))
            for target in targets:
                target = target[1:-1] if target.startswith("<") and target.endswith(">") else target
                if not target or SCHEME.match(target) or target.startswith("//"):
                    continue  # web and mail links are not checked (no network in tests)
                checked += 1
                path_part, _, fragment = target.partition("#")
                path_part = urllib.parse.unquote(path_part)
                if path_part.startswith("/"):
                    dest = os.path.join(root_abs, path_part.lstrip("/"))
                elif path_part:
                    dest = os.path.join(os.path.dirname(os.path.join(root_abs, rel)), path_part)
                else:
                    dest = os.path.join(root_abs, rel)
                dest = os.path.realpath(dest)
                where = f"{rel}:{lineno}: link '{target}'"
                if dest != root_abs and not dest.startswith(root_abs + os.sep):
                    problems.append(f"{where} points outside the repository")
                    continue
                if not os.path.exists(dest):
                    problems.append(f"{where}: {os.path.relpath(dest, root_abs)} does not exist")
                    continue
                if not fragment:
                    continue
                if not (os.path.isfile(dest) and dest.endswith(".md")):
                    problems.append(f"{where}: a #fragment needs a Markdown file as target")
                    continue
                if dest not in anchor_cache:
                    with open(dest, encoding="utf-8", errors="replace") as fh:
                        anchor_cache[dest] = anchors_of(fh.read())
                if urllib.parse.unquote(fragment) not in anchor_cache[dest]:
                    problems.append(f"{where}: no heading with anchor #{fragment} in {os.path.relpath(dest, root_abs)}")
    for p in problems:
        print(p)
    print(f"docs.links: {len(md_files)} Markdown files, {checked} relative links, {len(problems)} broken")
    return 1 if problems else 0


# ---------------------------------------------------------------------------------------
# docs.guest_template

TEMPLATE_DIR = "scenarios/guest/template"
GUEST_CMAKE = "scenarios/CMakeLists.txt"
BOOT_DOC = "scenarios/guest/boot.md"
FLAG = re.compile(r"(?<![\w$\"'])-[A-Za-z][\w,=.+-]*")


def cmake_flags(root, var):
    """Tokens of set(VAR ...) in scenarios/CMakeLists.txt. A token holding a CMake variable
    keeps only its literal prefix ('-I${GUEST_SRC}/lib' -> '-I')."""
    with open(os.path.join(root, GUEST_CMAKE), encoding="utf-8") as fh:
        text = fh.read()
    m = re.search(r"set\(\s*" + re.escape(var) + r"\s+(.*?)\)", text, re.S)
    if not m:
        raise SystemExit(f"{GUEST_CMAKE}: no set({var} ...)")
    tokens = []
    for tok in m.group(1).split():
        tok = tok.split("${", 1)[0]
        if tok and tok not in tokens:
            tokens.append(tok)
    return tokens


def build_sh_flags(text):
    """Option tokens of the compiler command in build.sh: from the line that starts with
    "$cc" to the line holding -o."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.lstrip().startswith('"$cc"')), None)
    if start is None:
        raise SystemExit(f"{TEMPLATE_DIR}/build.sh: no compiler command (a line starting with \"$cc\")")
    end = next(i for i in range(start, len(lines)) if re.search(r"(^|\s)-o\s", lines[i]))
    tokens = []
    for l in lines[start:end + 1]:
        for tok in FLAG.findall(l):
            if tok not in tokens:
                tokens.append(tok)
    return tokens


def listing(path):
    out = {}
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.stat(p)
            out[os.path.relpath(p, path)] = (st.st_size, st.st_mtime_ns)
    return out


def cmd_guest_template(root, pvsim, cc):
    failures = []
    # 1. The documented flags are the project's flags.
    wanted = cmake_flags(root, "PVSIM_GUEST_CFLAGS") + cmake_flags(root, "PVSIM_GUEST_LDFLAGS")
    try:
        with open(os.path.join(root, TEMPLATE_DIR, "build.sh"), encoding="utf-8") as fh:
            build_sh = fh.read()
        with open(os.path.join(root, BOOT_DOC), encoding="utf-8") as fh:
            boot_doc = fh.read()
    except OSError as e:
        print(f"FAIL: {e}")
        return 1
    have = build_sh_flags(build_sh)
    extra = [t for t in have if t not in wanted and t != "-o"]
    missing = [t for t in wanted if t not in have]
    if missing:
        failures.append(f"build.sh lacks flags that {GUEST_CMAKE} uses: {' '.join(missing)}")
    if extra:
        failures.append(f"build.sh uses flags that {GUEST_CMAKE} does not: {' '.join(extra)}")
    doc_missing = [t for t in wanted if not re.search(r"(?<![\w-])" + re.escape(t), boot_doc)]
    if doc_missing:
        failures.append(f"{BOOT_DOC} does not show these flags of {GUEST_CMAKE}: {' '.join(doc_missing)}")

    # 2. build.sh into a temporary directory, then run the scenario against the result.
    src = os.path.join(root, TEMPLATE_DIR)
    before = listing(src)
    with tempfile.TemporaryDirectory(prefix="pvsim-template-") as tmp:
        shutil.copy(os.path.join(src, "template.json"), tmp)
        env = dict(os.environ, CC=cc)
        b = subprocess.run(["sh", os.path.join(src, "build.sh"), tmp], env=env,
                           capture_output=True, text=True)
        image = os.path.join(tmp, "template.elf")
        if b.returncode != 0 or not os.path.isfile(image):
            failures.append(f"build.sh {tmp} failed (exit {b.returncode}):\n{b.stdout}{b.stderr}")
        else:
            r = subprocess.run([pvsim, "run", os.path.join(tmp, "template.json")],
                               capture_output=True, text=True)
            if r.returncode != 0 or "expectations: all met" not in r.stdout:
                failures.append(f"pvsim run template.json exited {r.returncode}:\n{r.stdout}{r.stderr}")
            else:
                print(r.stdout.rstrip())
    after = listing(src)
    if after != before:
        changed = sorted(set(before.items()) ^ set(after.items()))
        failures.append(f"the test changed {TEMPLATE_DIR}: {changed}")

    for f in failures:
        print(f"FAIL: {f}")
    print(f"docs.guest_template: {len(failures)} failure(s)")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("check", choices=["standalone", "links", "guest-template"])
    ap.add_argument("--root", required=True, help="the repository's top directory")
    ap.add_argument("--pvsim", help="the pvsim binary (guest-template)")
    ap.add_argument("--cc", default="gcc", help="the guest compiler (guest-template)")
    a = ap.parse_args()
    if a.check == "standalone":
        return cmd_standalone(a.root)
    if a.check == "links":
        return cmd_links(a.root)
    if not a.pvsim:
        ap.error("guest-template needs --pvsim")
    return cmd_guest_template(a.root, a.pvsim, a.cc)


if __name__ == "__main__":
    sys.exit(main())
