#!/usr/bin/python3
"""The speed section: markdown from the raw files of one scripts/speed-report run.

usage: /usr/bin/python3 analysis/speed_report.py DIR [--readme FILE]

Reads from DIR (scripts/speed-report writes them):
  machine.txt     key=value lines: mode, CPU, CPUs, SIMD level, OpenBLAS, load average and date at
                  the start and at the end, git version, host, the parts asked for
  commands.txt    every command of the run, one a line
  notes.txt       the parts skipped, and why
  layer.csv       `ilbench layer --threads 1,2 --csv` (with the columns threads and par_eff), or
  layer-tT.csv    one `ilbench layer --threads T --csv` per thread count (T from the file name)
  train-S-B.txt   `ilbench train --log-view` output: configuration lines, epoch line, events table
  torch-tT.csv    `scripts/bench-vs-torch --out` per thread count
CSV columns are found by name in the header, never by position; a missing one is an error that
names it and the file.

Writes DIR/speed.md; with --readme FILE, also replaces the lines of FILE between
<!-- speed-report:begin --> and <!-- speed-report:end --> with the same section. Both are written to a
temporary file next to the target and renamed into place, so a failure leaves the old file.

The training pass's rate: the FLOPs counted by the backend in the top-level events of the training
step (fwd_solve, bwd_solve, head, allreduce, update: the events that do not nest, the same set the
%time column of --log-view is relative to, bench/train_driver.c print_events) over the sum of their
times; its ceiling is the layer benchmark's (100, n) x (n, n) sgemm at the training's hidden size
and thread count, median (min-max) over the layer's rounds.
"""
import argparse
import csv
import glob
import os
import re
import shutil
import sys

BEGIN, END = "<!-- speed-report:begin -->", "<!-- speed-report:end -->"
TOPLEVEL = ("fwd_solve", "bwd_solve", "head", "allreduce", "update")
LAYER_COLS = ("solver", "backward", "hidden", "batch", "fwd_ms", "fwd_ms_min", "fwd_ms_max", "bwd_ms",
              "bwd_ms_min", "bwd_ms_max", "fwd_GF/s", "bwd_GF/s", "sgemm_GF/s", "sgemm_min", "sgemm_max",
              "fwd_frac", "bwd_frac", "iters", "b_its", "reason")
TORCH_COLS = ("layer", "threads", "batches", "repeats", "torch_s_per_batch", "torch_min_s", "torch_max_s",
              "ilbench_s_per_batch", "ilbench_min_s", "ilbench_max_s", "speedup", "speedup_min", "speedup_max",
              "speedup_median_based")


class ReportError(Exception):
    pass


def num(s):
    """float of a CSV or table field; None for an empty one."""
    s = (s or "").strip()
    if s in ("", "-", "nan"):
        return None
    return float(s)


def sig(x):
    """A number with about three significant digits, without exponents in the usual ranges."""
    if x is None:
        return "–"
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:#.3g}".rstrip(".")   # 0.660, not 0.66


def mmm(med, lo, hi, scale=1.0):
    if med is None:
        return "–"
    if lo is None or hi is None or sig(lo * scale) == sig(hi * scale):   # one run, or no spread to print
        return sig(med * scale)
    return f"{sig(med * scale)} ({sig(lo * scale)}–{sig(hi * scale)})"


def read_kv(path):
    kv = {}
    if not os.path.isfile(path):
        raise ReportError(f"{path}: missing (not a scripts/speed-report directory?)")
    with open(path) as fh:
        for line in fh:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                kv[k.strip()] = v.strip()
    return kv


def read_csv(path, need):
    with open(path, newline="") as fh:
        rd = csv.DictReader(fh)
        header = rd.fieldnames or []
        missing = [c for c in need if c not in header]
        if missing:
            raise ReportError(f"{path}: no column {', '.join(missing)} in its header ({', '.join(header)})")
        rows = list(rd)
    if not rows:
        raise ReportError(f"{path}: no rows")
    return header, rows


def layer_rows(d):
    """Rows of every layer CSV, each with an int 'T' (threads) and the file it came from."""
    out, has_par = [], False
    files = sorted(glob.glob(os.path.join(d, "layer.csv")) + glob.glob(os.path.join(d, "layer-t*.csv")),
                   key=lambda p: (len(p), p))
    for path in files:
        m = re.fullmatch(r"layer-t(\d+)\.csv", os.path.basename(path))
        header, rows = read_csv(path, LAYER_COLS)
        if "threads" not in header and not m:
            raise ReportError(f"{path}: no threads column, and the file name does not give the thread count")
        has_par |= "par_eff" in header
        for r in rows:
            r["T"] = int(r["threads"]) if "threads" in header else int(m.group(1))
            r["_file"] = os.path.basename(path)
        out += rows
    return out, has_par


def parse_train(path):
    """The configuration, the last epoch line and the events table of `ilbench train --log-view`."""
    with open(path) as fh:
        lines = fh.read().splitlines()
    conf, epoch, events, ranks = {}, None, None, 1
    for i, line in enumerate(lines):
        m = re.match(r"^# (\w+)\s+(.*)$", line)
        if m and m.group(1) != "events" and events is None:
            conf.setdefault(m.group(1), m.group(2).strip())
        if re.match(r"^epoch=\S", line):
            epoch = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        h = re.match(r"^.*?#\s*events\s*\((\d+) rank", line)
        if h:
            ranks = int(h.group(1))
            # the header names the columns; the rows follow as '#' lines with as many fields
            if i + 1 >= len(lines):
                raise ReportError(f"{path}: an events title without a header line")
            cols = lines[i + 1].split("#", 1)[-1].split()
            if "event" not in cols or "time_s" not in cols or "GFLOP" not in cols:
                raise ReportError(f"{path}: events header without event, time_s and GFLOP: {lines[i + 1]!r}")
            events = {}
            for row in lines[i + 2:]:
                if "#" not in row:
                    break
                f = row.split("#", 1)[1].split()
                if len(f) != len(cols):
                    break
                rec = dict(zip(cols, f))
                try:
                    events[rec["event"]] = {k: float(v.rstrip("%")) for k, v in rec.items() if k != "event"}
                except ValueError:
                    break
    if events is None:
        raise ReportError(f"{path}: no events table (was --log-view given?)")
    missing = [e for e in TOPLEVEL if e not in events]
    if missing:
        raise ReportError(f"{path}: events table lacks {', '.join(missing)}")
    if epoch is None:
        raise ReportError(f"{path}: no epoch line")
    gflop = sum(events[e]["GFLOP"] for e in TOPLEVEL)
    time_s = sum(events[e]["time_s"] for e in TOPLEVEL)
    # the %time column is relative to the same sum: a check that the set of top-level events is right
    if "%time" in events["fwd_solve"] and events["fwd_solve"]["%time"] > 5 and time_s > 0:
        implied = events["fwd_solve"]["time_s"] / (events["fwd_solve"]["%time"] / 100)
        if abs(implied - time_s) > 0.02 * time_s + 2e-4:
            raise ReportError(f"{path}: top-level events sum to {time_s:.4f} s but %time implies {implied:.4f} s "
                              "(has the set of top-level events changed? see TOPLEVEL)")
    m = re.search(r"->\s*(\d+)\s*\(implicit\)", conf.get("model", ""))
    if not m:
        raise ReportError(f"{path}: no '# model ... -> N (implicit) ...' line for the hidden size")
    return {"solver": conf.get("solver", "?"), "backward": conf.get("backward", "?"),
            "threads": int(conf.get("threads", "1").split()[0]), "hidden": int(m.group(1)),
            "batches": int(epoch.get("train_batches", "0")), "gflop": gflop, "time_s": time_s, "ranks": ranks,
            "rate": gflop / ranks / time_s if time_s > 0 else None}


def machine_line(m):
    simd = {"avx512f": "AVX-512 (avx512f)", "avx2": "AVX2, no AVX-512"}.get(m.get("simd"), "neither AVX2 nor AVX-512")
    topo = ""
    if m.get("sockets") and m.get("cores_per_socket") and m.get("threads_per_core"):
        topo = (f": {m['sockets']} socket × {m['cores_per_socket']} cores × {m['threads_per_core']} "
                f"thread{'s' if m['threads_per_core'] != '1' else ''} per core")
    # the kernel set in OpenBLAS's config string ("OpenBLAS 0.3.21 ... NO_AFFINITY SkylakeX MAX_THREADS=64")
    kern = [t for t in m.get("blas_config", "").split()
            if t != "OpenBLAS" and re.fullmatch(r"[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*", t)]
    blas = f"OpenBLAS {m.get('openblas', 'unknown')}" + (f" ({kern[0]} kernels)" if kern else "")
    # who chose the kernels, when it was not OpenBLAS's own table (bench/ilbench.c re-exec)
    ck = re.search(r"\((OPENBLAS_CORETYPE=[^)]*)\)", m.get("blas_kernels", ""))
    if ck:
        blas += f" [{ck.group(1)}]"
    l0 = m.get("load_start", "unknown").split()[:1] or ["?"]
    l1 = m.get("load_end", "unknown").split()[:1] or ["?"]
    git = m.get("git", "unknown")
    src = "" if git in m.get("ilbench", "") else f", source tree git {git}"
    t0, t1 = m.get("date_start", "?"), m.get("date_end", "?")
    if t0[:10] == t1[:10]:
        t1 = t1[11:]
    return (f"**Machine:** {m.get('cpu', 'unknown CPU')}, {m.get('cpus', '?')} CPUs{topo}; {simd}; {blas}; "
            f"load average (1 min) {l0[0]} at the start, {l1[0]} at the end; {t0} – {t1}; "
            f"{m.get('ilbench') or 'ilbench'}{src} on host {m.get('host', '?')}.")


def busy(m):
    try:
        load = max(float(m["load_start"].split()[0]), float(m["load_end"].split()[0]))
        return load > int(m["cpus"]) / 2, load
    except (KeyError, ValueError, IndexError):
        return False, None


def layer_section(rows, has_par, mode):
    hs = sorted({int(r["hidden"]) for r in rows})
    pairs = []
    for r in rows:
        p = f"{r['solver']}/{r['backward']}"
        if p not in pairs:
            pairs.append(p)
    out = []
    for h in hs:
        sel = [r for r in rows if int(r["hidden"]) == h]
        sel.sort(key=lambda r: (pairs.index(f"{r['solver']}/{r['backward']}"), r["T"]))
        ceil = {}
        for r in sel:
            ceil.setdefault(r["T"], mmm(num(r["sgemm_GF/s"]), num(r["sgemm_min"]), num(r["sgemm_max"])))
        out.append(f"*n = {h}, batch {sel[0]['batch']}* (ceiling: the ({sel[0]['batch']}, {h}) × ({h}, {h}) sgemm, "
                   + "; ".join(f"{c} GFLOP/s at {t} thread{'s' if t > 1 else ''}" for t, c in sorted(ceil.items()))
                   + "):")
        out.append("")
        head = ["pair", "threads", "forward ms", "GFLOP/s", "of the ceiling", "backward ms", "GFLOP/s",
                "of the ceiling", "ceiling GFLOP/s", "iterations fwd / bwd"]
        if has_par:
            head.append("par. eff.")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for r in sel:
            its = f"{r['iters']} / {r['b_its']}" + ("" if r["reason"] == "converged" else f" ({r['reason']})")
            cells = [f"{r['solver']}/{r['backward']}", str(r["T"]),
                     mmm(num(r["fwd_ms"]), num(r["fwd_ms_min"]), num(r["fwd_ms_max"])), sig(num(r["fwd_GF/s"])),
                     f"{num(r['fwd_frac']):.2f}",
                     mmm(num(r["bwd_ms"]), num(r["bwd_ms_min"]), num(r["bwd_ms_max"])), sig(num(r["bwd_GF/s"])),
                     f"{num(r['bwd_frac']):.2f}",
                     mmm(num(r["sgemm_GF/s"]), num(r["sgemm_min"]), num(r["sgemm_max"])), its]
            if has_par:
                pe = num(r.get("par_eff"))
                cells.append("–" if pe is None else f"{pe:.2f}")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    if mode == "separate":
        out.append("Each thread count ran as its own `ilbench layer` (this ilbench's `--threads` takes one "
                   "number), so the thread counts are not interleaved with each other.")
    else:
        out.append("All thread counts ran in the same interleaved rounds; par. eff. is `ilbench layer`'s "
                   "`par_eff`, the case's parallel efficiency against its 1-thread row.")
    out.append("")
    return out


def train_section(trains, rows):
    out = ["| pair | threads | batches | GFLOP counted | s in the steps | GFLOP/s | ceiling GFLOP/s | of the ceiling |",
           "|---|---|---|---|---|---|---|---|"]
    for t in trains:
        c = next((r for r in rows if int(r["hidden"]) == t["hidden"] and r["T"] == t["threads"]), None)
        ceil = num(c["sgemm_GF/s"]) if c else None
        frac = f"{t['rate'] / ceil:.2f}" if ceil and t["rate"] else "–"
        out.append(f"| {t['solver']}/{t['backward']} | {t['threads']} | {t['batches']} | {t['gflop']:.1f} | "
                   f"{t['time_s']:.3f} | {sig(t['rate'])} | "
                   f"{mmm(ceil, num(c['sgemm_min']), num(c['sgemm_max'])) if c else '– (no layer run at this n and T)'}"
                   f" | {frac} |")
    out.append("")
    return out


def torch_section(d):
    files = sorted(glob.glob(os.path.join(d, "torch-t*.csv")), key=lambda p: (len(p), p))
    rows = []
    for path in files:
        rows += read_csv(path, TORCH_COLS)[1]
    if not rows:
        return None
    order = []
    for r in rows:
        if r["layer"] not in order:
            order.append(r["layer"])
    rows.sort(key=lambda r: (int(r["threads"]), order.index(r["layer"])))
    out = ["| layer | threads | torch ms/batch | ilbench ms/batch | speed-up | median-based |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['layer']} | {r['threads']} | "
                   f"{mmm(num(r['torch_s_per_batch']), num(r['torch_min_s']), num(r['torch_max_s']), 1e3)} | "
                   f"{mmm(num(r['ilbench_s_per_batch']), num(r['ilbench_min_s']), num(r['ilbench_max_s']), 1e3)} | "
                   f"{mmm(num(r['speedup']), num(r['speedup_min']), num(r['speedup_max']))} | "
                   f"{sig(num(r['speedup_median_based']))} |")
    out.append("")
    nrep = rows[0]["repeats"]
    out.append(f"{rows[0]['batches']} MNIST batches per run, {nrep} repeat{'' if nrep == '1' else 's'}, torch and ilbench "
               "interleaved; ms/batch: the median (min–max) over the repeats of each run's mean per batch (torch "
               "after 2 warm-up batches, data loading excluded; ilbench: its steps' phase times); speed-up: torch "
               "over ilbench, median (min–max) over the interleaved pairs; median-based: torch's median batch over "
               "ilbench's median step.")
    out.append("")
    return out


def render(d):
    m = read_kv(os.path.join(d, "machine.txt"))
    root = m.get("root", "")
    notes = []
    if os.path.isfile(os.path.join(d, "notes.txt")):
        with open(os.path.join(d, "notes.txt")) as fh:
            notes = [ln.strip() for ln in fh if ln.strip()]
    cmds = []
    if os.path.isfile(os.path.join(d, "commands.txt")):
        with open(os.path.join(d, "commands.txt")) as fh:
            cmds = [ln.rstrip("\n").replace(root + "/", "") if root else ln.rstrip("\n") for ln in fh if ln.strip()]
    parts = [p for p in m.get("parts", "layer,train,torch").split(",") if p]
    rows, has_par = layer_rows(d)
    trains = [parse_train(p) for p in sorted(glob.glob(os.path.join(d, "train-*.txt")))]
    torch = torch_section(d)
    found = {"layer": bool(rows), "train": bool(trains), "torch": torch is not None}
    for p in parts:
        if not found.get(p) and not any(n.startswith(p + ":") for n in notes):
            raise ReportError(f"{d}: part '{p}' was asked for, but there are no {p} results and no note why")

    date = m.get("date_start", "?")[:10]
    rel = d.replace(root + "/", "") if root else d
    inv = m.get("invocation", "scripts/speed-report")
    inv = re.sub(r"^\S*scripts/speed-report", "scripts/speed-report", inv)
    b = [f"<!-- generated by scripts/speed-report on {m.get('date_start', '?')} from {rel}; edit the script, "
         "not this text -->", "", machine_line(m), "",
         f"Generated by `{inv}` (raw outputs in `{rel}/`).", ""]
    if m.get("mode") == "quick":
        b += ["**A `--quick` run**: few repeats and batches, a smoke test of the script; its numbers are not for "
              "quoting.", ""]
    is_busy, load = busy(m)
    if is_busy:
        b += [f"The machine was busy (load average up to {load:.2f} on {m.get('cpus')} CPUs): times are slower and "
              "noisier than on an idle machine.", ""]
    if rows:
        b += ["**The layer** (`ilbench layer`, random data, tol 1e-4): forward and backward ms, median (min–max) over "
              "the timed runs, every case and the ceiling measured in each interleaved round; GFLOP/s from the "
              "analytic FLOP count over the median; *of the ceiling*: that rate over the median sgemm rate of "
              "the same shape and thread count.", ""]
        b += layer_section(rows, has_par, m.get("layer_threads", "separate"))
    if trains:
        b += ["**The training pass against the ceiling** (`ilbench train --log-view`, one epoch, no test pass): "
              "FLOPs counted by the backend in the step's top-level events (fwd_solve, bwd_solve, head, allreduce, "
              "update) over their time, against the layer's sgemm ceiling at n = 100 and the same thread count.",
              ""]
        b += train_section(trains, rows)
    if torch:
        b += ["**Against the seed's PyTorch code** (`scripts/bench-vs-torch`: the seed's training loop in torch and "
              "`ilbench train` on the same MNIST batches, the same thread count):", ""]
        b += torch
    if notes:
        b += ["**Not measured in this run:**", ""] + [f"- {n}" for n in notes] + [""]
    if cmds:
        b += ["<details><summary>The commands it ran, in order</summary>", "", "```sh"] + cmds + ["```", "",
              "</details>"]
    body = "\n".join(b).rstrip("\n") + "\n"
    return f"# Speed report, {date}\n\n" + body, body


def write_atomic(path, text, like=None):
    tmp = f"{path}.speed-report.tmp"
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
        if like and os.path.exists(like):
            shutil.copymode(like, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def replace_section(text, body, path):
    lines = text.split("\n")
    b = [i for i, ln in enumerate(lines) if ln == BEGIN]
    e = [i for i, ln in enumerate(lines) if ln == END]
    if len(b) != 1 or len(e) != 1 or b[0] > e[0]:
        raise ReportError(f"{path}: needs exactly one line {BEGIN} followed by one line {END} "
                          f"(found {len(b)} and {len(e)})")
    return "\n".join(lines[:b[0] + 1] + body.rstrip("\n").split("\n") + lines[e[0]:])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="speed_report.py", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("dir", help="the output directory of one scripts/speed-report run")
    ap.add_argument("--readme", help="also replace this file's text between the speed-report markers")
    a = ap.parse_args(argv)
    try:
        doc, body = render(os.path.abspath(a.dir))
        new_readme = None
        if a.readme:
            with open(a.readme) as fh:
                new_readme = replace_section(fh.read(), body, a.readme)
        write_atomic(os.path.join(a.dir, "speed.md"), doc)
        if new_readme is not None:
            write_atomic(a.readme, new_readme, like=a.readme)
    except (ReportError, OSError) as e:
        print(f"speed_report.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
