#!/usr/bin/python3
"""The HDF5 side of scripts/kill-campaign: what a killed job left in a results file.

usage: /usr/bin/python3 scripts/kill_campaign_h5.py COMMAND ...
  snapshot FILE OUT.json       hash every run of FILE (all its attributes and datasets, their
                               types, shapes and bytes) into OUT.json
  verify FILE BEFORE.json OUT.json
                               after a kill: FILE opens with h5py; analysis/check_schema.py
                               reports no error, and warnings only about runs left 'running'
                               (killed); every run of BEFORE.json is still there, bit for bit;
                               writes the new snapshot to OUT.json
  merged OUT IN...             OUT is a complete merge of the INs: it opens, check_schema
                               reports nothing, and its runs are exactly the INs' runs, each bit
                               for bit as in its input
  status FILE                  print "RUN STATUS" for every run ("" when FILE has none)
  steps A B                    the one run of A and the one run of B have the same steps rows,
                               every column except the timing columns (names ending in _s)

Each check prints its findings, one per line, and a last line "RESULT key=value ..." that
scripts/kill-campaign reads. Exit status 0, or 2 for a usage error.
"""

import hashlib
import json
import os
import re
import subprocess
import sys

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")  # a killed writer's file, read alongside others
import h5py  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# scripts/kill-campaign passes a copy taken at its start
CHECK_SCHEMA = os.environ.get("KILL_CAMPAIGN_CHECK_SCHEMA", os.path.join(ROOT, "analysis", "check_schema.py"))
STILL_RUNNING = ("running",)  # what a SIGKILLed run is left as


def _value_bytes(v):
    if isinstance(v, np.ndarray) and v.dtype.hasobject:
        return repr(v.tolist()).encode()
    if hasattr(v, "tobytes"):
        return v.tobytes()
    return repr(v).encode()


def _hash_attrs(h, obj):
    for name in sorted(obj.attrs):
        aid = obj.attrs.get_id(name)
        h.update(b"A" + name.encode() + str(aid.dtype).encode() + str(aid.shape).encode())
        h.update(_value_bytes(obj.attrs[name]))


def _hash_group(h, g):
    _hash_attrs(h, g)
    for name in sorted(g):
        link = g.get(name, getlink=True)
        if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
            h.update(b"L" + name.encode() + repr(link.__dict__).encode())
            continue
        obj = g[name]
        if isinstance(obj, h5py.Group):
            h.update(b"G" + name.encode())
            _hash_group(h, obj)
        else:
            h.update(b"D" + name.encode() + str(obj.dtype).encode() + str(obj.shape).encode())
            _hash_attrs(h, obj)
            h.update(_value_bytes(obj[()]))


def _text(v):
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def snapshot(path):
    """{run: {"status": s, "hash": hex}}; raises on an unreadable file."""
    out = {}
    with h5py.File(path, "r") as f:
        runs = f.get("runs")
        for name in sorted(runs) if runs is not None else []:
            h = hashlib.sha256()
            _hash_group(h, runs[name])
            out[name] = {"status": _text(runs[name].attrs.get("status", "")), "hash": h.hexdigest()}
    return out


def schema_findings(path, running):
    """check_schema.py's ERROR lines, and its WARNING lines about runs other than `running`."""
    p = subprocess.run(["/usr/bin/python3", CHECK_SCHEMA, path], capture_output=True, text=True)
    bad = []
    if p.returncode == 2:
        return ["check_schema cannot open it: " + (p.stderr.strip() or p.stdout.strip())]
    for line in p.stdout.splitlines():
        rest = line[len(path) + 2:] if line.startswith(path + ": ") else line
        if rest.startswith("ERROR: "):
            bad.append("check_schema: " + rest)
        elif rest.startswith("WARNING: "):
            m = re.match(r"WARNING: /runs/([^/: ]+)", rest)
            if not (m and m.group(1) in running):
                bad.append("check_schema: " + rest)
    if p.returncode not in (0, 1):
        bad.append(f"check_schema exit status {p.returncode}: {p.stderr.strip()}")
    elif p.returncode == 1 and not any(b.startswith("check_schema: ERROR") for b in bad):
        bad.append("check_schema exit status 1 without an ERROR line")
    return bad


def cmd_snapshot(path, out):
    with open(out, "w") as f:
        json.dump(snapshot(path), f)
    print("RESULT ok=1")


def cmd_verify(path, before_json, out_json):
    with open(before_json) as f:
        before = json.load(f)
    try:
        now = snapshot(path)
    except Exception as e:  # noqa: BLE001  (h5py raises several kinds)
        print(f"  unreadable: h5py: {type(e).__name__}: {e}")
        print("RESULT unreadable=1 damaged=0 new=0")
        return
    running = {r for r, v in now.items() if v["status"] in STILL_RUNNING}
    findings = schema_findings(path, running)
    for b in findings:
        print("  invalid: " + b)
    damaged = 0
    for run, v in before.items():
        if run not in now:
            print(f"  damaged: run {run} (status {v['status']}) is gone")
            damaged += 1
        elif now[run]["hash"] != v["hash"]:
            print(f"  damaged: run {run} (status {v['status']} before, {now[run]['status']} now) changed")
            damaged += 1
    new = sorted(set(now) - set(before))
    for run in new:
        print(f"  new run {run}: {now[run]['status']}")
    with open(out_json, "w") as f:
        json.dump(now, f)
    print(f"RESULT unreadable={1 if findings else 0} damaged={damaged} new={len(new)}")


def cmd_merged(out, inputs):
    problems = []
    try:
        got = snapshot(out)
    except Exception as e:  # noqa: BLE001
        print(f"  h5py cannot read it: {type(e).__name__}: {e}")
        print("RESULT complete=0")
        return
    problems += schema_findings(out, set())
    want = {}
    for path in inputs:
        for run, v in snapshot(path).items():
            want[run] = v
    if set(got) != set(want):
        problems.append(f"runs {sorted(got)}, expected {sorted(want)}")
    for run in sorted(set(got) & set(want)):
        if got[run]["hash"] != want[run]["hash"]:
            problems.append(f"run {run} differs from its input")
    for p in problems:
        print("  " + p)
    print(f"RESULT complete={0 if problems else 1}")


def cmd_status(path):
    try:
        for run, v in snapshot(path).items():
            print(run, v["status"])
    except (OSError, KeyError):
        pass


def _one_run(path):
    with h5py.File(path, "r") as f:
        runs = list(f["runs"])
        if len(runs) != 1:
            raise ValueError(f"{path} has {len(runs)} runs, expected 1")
        return runs[0], f["runs"][runs[0]]["steps"][()]


def cmd_steps(a, b):
    ra, sa = _one_run(a)
    rb, sb = _one_run(b)
    cols = [c for c in sa.dtype.names if not c.endswith("_s")]
    bad = []
    if sa.dtype.names != sb.dtype.names:
        bad.append(f"columns differ: {sa.dtype.names} vs {sb.dtype.names}")
    elif len(sa) != len(sb):
        bad.append(f"{len(sa)} step rows in {ra}, {len(sb)} in {rb}")
    else:
        for c in cols:
            x, y = sa[c], sb[c]
            if x.tobytes() != y.tobytes():  # bitwise: a NaN equals a NaN of the same bits
                rows = [k for k in range(len(x)) if x[k:k + 1].tobytes() != y[k:k + 1].tobytes()]
                bad.append(f"column {c}: {len(rows)} rows differ, first row {rows[0]}: {x[rows[0]]!r} vs {y[rows[0]]!r}")
    for m in bad:
        print("  " + m)
    print(f"RESULT same={0 if bad else 1} rows={len(sa)} columns={len(cols)}")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    table = {"snapshot": (cmd_snapshot, 2), "verify": (cmd_verify, 3), "status": (cmd_status, 1),
             "steps": (cmd_steps, 2)}
    if cmd == "merged" and len(args) >= 2:
        cmd_merged(args[0], args[1:])
        return 0
    if cmd not in table or len(args) != table[cmd][1]:
        print(__doc__, file=sys.stderr)
        return 2
    table[cmd][0](*args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
