#!/usr/bin/python3
"""Generate the column tables of analysis/SCHEMA.md from analysis/schema.json.

usage: /usr/bin/python3 analysis/schema_doc.py [--write | --check] [--schema-md PATH]

SCHEMA.md holds one marked block per table,

    <!-- schema_doc: steps -->
    | member | type | unit | since | meaning |
    ...
    <!-- /schema_doc -->

and one per enum (`<!-- schema_doc: enum REASON -->`). Without options the
regenerated SCHEMA.md is printed; --write rewrites the file in place; --check
exits 1 (printing a diff) when the file is not what schema.json gives. The
tables come from bench/results_columns.h through `ilbench schema --json`;
edit the column there, never the generated block.
"""

import argparse
import difflib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TYPES = {"I32": "int32", "I64": "int64", "U64": "uint64", "F64": "float64", "STR16": "string (16 bytes)",
         "REASON": "enum `REASON` (int32)", "NANORIGIN": "enum `NANORIGIN` (int32)"}
BLOCK = re.compile(r"(<!-- schema_doc: (?P<what>[^>]*?) -->\n)(?P<body>.*?)(<!-- /schema_doc -->)", re.S)


def md(text):
    """A table cell: pipes escaped, names that are columns left as they are."""
    return text.replace("|", "\\|")


def table_md(schema, name):
    cols = schema["tables"][name]["columns"]
    out = ["| member | type | unit | since | meaning |", "|---|---|---|---|---|"]
    for c in cols:
        since = f"{c['since']}, optional" if c.get("optional") else c["since"]
        out.append(f"| `{c['name']}` | {TYPES[c['type']]} | {c['unit']} | {since} | {md(c['meaning'])} |")
    return "\n".join(out) + "\n"


def enum_md(schema, kind):
    out = ["| value | name |", "|---|---|"]
    for e in schema["enums"][kind]:
        out.append(f"| {e['value']} | `{e['name']}` |")
    return "\n".join(out) + "\n"


def render(text, schema):
    def sub(m):
        what = m.group("what").strip()
        if what.startswith("enum "):
            body = enum_md(schema, what.split(None, 1)[1])
        else:
            body = table_md(schema, what)
        return m.group(1) + body + m.group(4)
    return BLOCK.sub(sub, text)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="schema_doc.py", description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="rewrite SCHEMA.md in place")
    g.add_argument("--check", action="store_true", help="exit 1 when SCHEMA.md is out of date")
    ap.add_argument("--schema-md", default=os.path.join(HERE, "SCHEMA.md"))
    ap.add_argument("--schema-json", default=os.path.join(HERE, "schema.json"))
    a = ap.parse_args(argv)
    with open(a.schema_json, encoding="utf-8") as f:
        schema = json.load(f)
    with open(a.schema_md, encoding="utf-8") as f:
        old = f.read()
    if not BLOCK.search(old):
        print(f"{a.schema_md}: no <!-- schema_doc: ... --> blocks", file=sys.stderr)
        return 2
    new = render(old, schema)
    if a.check:
        if new != old:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                       a.schema_md, "generated from " + a.schema_json))
            print(f"{a.schema_md} is out of date: run /usr/bin/python3 analysis/schema_doc.py --write",
                  file=sys.stderr)
            return 1
        return 0
    if a.write:
        if new != old:
            with open(a.schema_md, "w", encoding="utf-8") as f:
                f.write(new)
        return 0
    sys.stdout.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
