#!/usr/bin/env python3
"""Validates every scenario JSON under the given directories against scenario.schema.json,
and requires the known-bad file to be rejected.

usage: check_schema.py SCHEMA DIR... BAD_FILE

Scenario files may hold // and /* */ comments (scenarios/README.md), which Python's json
module does not accept, so they are stripped first (outside string literals only). That
is why this uses the jsonschema library API instead of `python3 -m jsonschema` directly.
"""
import json
import pathlib
import sys

import jsonschema


def strip_comments(text: str) -> str:
    out, i, n = [], 0, len(text)
    in_str = False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
        elif c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def errors(validator, path):
    doc = json.loads(strip_comments(path.read_text()))
    return sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))


def main():
    schema_path, *dirs, bad = sys.argv[1:]
    schema = json.loads(pathlib.Path(schema_path).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = []
    for d in dirs:
        files += [p for p in sorted(pathlib.Path(d).rglob("*.json")) if p.name != "scenario.schema.json"]
    failed = 0
    for f in files:
        errs = errors(validator, f)
        for e in errs:
            print(f"{f}: /{'/'.join(map(str, e.absolute_path))}: {e.message}")
        failed += bool(errs)
    print(f"{len(files) - failed}/{len(files)} scenario files match the schema")
    bad_errs = errors(validator, pathlib.Path(bad))
    if not bad_errs:
        print(f"{bad}: known-bad file was accepted by the schema")
        return 1
    print(f"{bad}: rejected as expected ({len(bad_errs)} errors)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
