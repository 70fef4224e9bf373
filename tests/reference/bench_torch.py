#!/usr/bin/python3
"""Seconds per MNIST training batch: the seed's PyTorch loop against `ilbench train`.

Normally run through scripts/bench-vs-torch, which installs torch and fetches MNIST first.

For each layer in --layers ("solver/backward": fp/unroll, newton/unroll, newton/implicit):
  torch    the seed's model (torch.manual_seed(seed); Flatten -> Linear(784,100) -> layer ->
           Linear(100,10); SGD lr 0.1; float32; the seed's tol 1e-4, max_iter 200 for fp and 40 for
           Newton) trained by the seed's loop body, NaN check included, on the first N batches of 100
           from a seeded shuffle, torch.set_num_threads(T).
           s/batch = mean wall time of one loop-body iteration (forward, loss, backward, NaN check,
           SGD step, .item() bookkeeping) over batches W+1..N; the first W (--warmup, default 2)
           are excluded and the DataLoader fetch is not timed.  The median is reported too.
  ilbench  `$ILBENCH train --solver S --backward M --epochs 1 --max-batches N --threads T
           --data DIR --tol 1e-4 --max-iter K --seed SEED`; s/batch = train_s / batches from its
           logfmt epoch line (train_batches=, batches= or steps= if it prints one, else N).  train_s covers every
           batch, warm-up included, so the ratio slightly favours torch.
  speed-up = torch s/batch / ilbench s/batch  (> 1: ilbench is faster).
"""
import argparse
import csv
import os
import re
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import seed_model  # noqa: E402

LOGFMT = re.compile(r'([A-Za-z_][\w.\-/]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line):
    return {k: v.strip('"') for k, v in LOGFMT.findall(line)}


def bench_torch(layer_name, X, y, args):
    model, opt = seed_model.make_model(layer_name, seed=args.seed)
    dev = torch.device(args.device)
    model.to(dev)  # in place: opt keeps the same parameters
    gen = torch.Generator()
    gen.manual_seed(args.seed)
    loader = DataLoader(TensorDataset(X, y), batch_size=100, shuffle=True, generator=gen)
    model.train()
    times, iters, nans, losses = [], [], 0, []
    for i, (Xb, yb) in enumerate(loader):
        if i >= args.batches:
            break
        Xb, yb = Xb.to(dev), yb.to(dev)  # not timed, as the fetch
        t0 = time.perf_counter()
        loss, _, nan = seed_model.train_step(model, opt, Xb, yb)  # .item() waits for the GPU
        iters.append(model[2].iterations)   # the seed's monitor: lambda x: x[2].iterations
        times.append(time.perf_counter() - t0)
        nans += nan
        losses.append(loss)
    timed = times[args.warmup:] or times
    return {
        "torch_s_per_batch": sum(timed) / len(timed),
        "torch_median_s": statistics.median(timed),
        "torch_batches": len(times),
        "torch_mean_iters": sum(iters) / len(iters),
        "torch_nan_batches": nans,
        "torch_last_loss": losses[-1],
    }


def bench_ilbench(layer_name, args):
    """Run ilbench train; returns (s_per_batch or None, note)."""
    exe = args.ilbench
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        return None, f"no ilbench binary at {exe} (build it, or set ILBENCH=/path/to/ilbench)"
    solver, backward = layer_name.split("/")
    max_iter = seed_model.LAYERS[layer_name][1]
    cmd = [exe, "train", "--solver", solver, "--backward", backward, "--epochs", "1",
           "--max-batches", str(args.batches), "--threads", str(args.threads),
           "--data", args.data, "--tol", "1e-4", "--max-iter", str(max_iter),
           "--seed", str(args.seed), "--log-steps", "--test-batches", "0", "--device", args.device]
    print(f"  running: {shlex.join(cmd)}", flush=True)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=args.ilbench_timeout)
    except subprocess.TimeoutExpired:
        return None, f"ilbench timed out after {args.ilbench_timeout} s"
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-5:]
        return None, f"ilbench exited {p.returncode}: " + " | ".join(tail)
    found, step_s = None, []
    for line in (p.stdout + "\n" + p.stderr).splitlines():
        kv = parse_logfmt(line)
        if "train_s" in kv:
            found = kv                       # keep the last epoch line
        elif "global_step" in kv:           # a --log-steps line: the step's phases
            try:
                step_s.append(sum(float(kv[k]) for k in ("forward_s", "backward_s", "wait_s", "allreduce_s",
                                                         "update_s")))
            except (KeyError, ValueError):
                pass
    if found is None:
        return None, "ilbench output has no line with train_s=<seconds>"
    try:
        train_s = float(found["train_s"])
        nb = next((int(found[k]) for k in ("train_batches", "batches", "steps") if k in found), args.batches)
    except ValueError as e:
        return None, f"cannot parse ilbench epoch line: {e}"
    # the steps' phase times (printed to the microsecond; train_s has milliseconds only), after
    # the same warm-up as torch's and, like torch's, without the batch fetch
    timed = step_s[args.warmup:] or step_s
    if timed:
        return (sum(timed) / len(timed), statistics.median(timed)), \
            f"mean of {len(timed)} steps' phase times (train_s={train_s:g} over {nb} batches)"
    return (train_s / nb, None), f"train_s={train_s:g} over {nb} batches"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--batches", type=int, default=100, help="training batches per layer (default 100)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads / ilbench --threads (default 2)")
    ap.add_argument("--layers", default="fp/unroll,newton/unroll,newton/implicit",
                    help="comma list of solver/backward (default: all three seed layers)")
    ap.add_argument("--out", help="also write the table as CSV to this file")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                    help="where torch runs, and ilbench --device (default cpu; cuda: the same GPU for both)")
    ap.add_argument("--data", default=os.path.join(REPO, "data", "mnist"), help="MNIST idx directory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=2, help="torch batches excluded from timing (default 2)")
    ap.add_argument("--ilbench", default=os.environ.get("ILBENCH") or
                    os.path.join(REPO, "build", "release", "bench", "ilbench"),
                    help="ilbench binary (default $ILBENCH or build/release/bench/ilbench)")
    ap.add_argument("--ilbench-timeout", type=float, default=3600)
    ap.add_argument("--torch-only", action="store_true", help="do not run ilbench")
    ap.add_argument("--repeats", type=int, default=3,
                    help="measure each layer this many times, torch and ilbench interleaved (T I T I ...), and "
                         "report min/median/max over the repeats (default 3)")
    args = ap.parse_args()

    layers = [s.strip() for s in args.layers.split(",") if s.strip()]
    bad = [s for s in layers if s not in seed_model.LAYERS]
    if bad:
        ap.error(f"--layers: unknown {', '.join(bad)} (valid: {', '.join(seed_model.LAYERS)})")
    if args.batches <= args.warmup:
        ap.error(f"--batches must exceed --warmup ({args.warmup})")
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    if args.batches > 600:
        ap.error("--batches: MNIST has 600 training batches of 100")

    torch.set_num_threads(args.threads)
    X, y = seed_model.load_mnist(args.data, "train")
    print(f"bench-vs-torch: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.batches} batches of 100 (first {args.warmup} not timed for torch), seed {args.seed}",
          flush=True)
    if not args.torch_only and not os.path.isfile(args.ilbench):
        print(f"bench-vs-torch: NOTE: no ilbench binary at {args.ilbench}; reporting torch numbers only "
              "(build with the release preset, or set ILBENCH=/path/to/ilbench)", flush=True)

    if args.repeats < 1:
        ap.error("--repeats must be >= 1")

    def loadavg():
        try:
            with open("/proc/loadavg") as fh:
                return " ".join(fh.read().split()[:3])
        except OSError:
            return "unknown"

    def cpu_model():
        try:
            with open("/proc/cpuinfo") as fh:
                for ln in fh:
                    if ln.startswith("model name"):
                        return ln.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    load0 = loadavg()
    rows, il_failures = [], []
    for name in layers:
        r = {"layer": name, "threads": args.threads, "batches": args.batches, "repeats": args.repeats}
        tm, tmed, im, imed, notes = [], [], [], [], []
        for k in range(args.repeats):  # T I T I ...: drift on the machine hits both alike
            print(f"{name}: torch, repeat {k + 1} of {args.repeats} ...", flush=True)
            t = bench_torch(name, X, y, args)
            tm.append(t["torch_s_per_batch"])
            tmed.append(t["torch_median_s"])
            r.update({k2: v for k2, v in t.items() if k2 not in ("torch_s_per_batch", "torch_median_s")})
            print(f"  torch {t['torch_s_per_batch']:.4f} s/batch (median {t['torch_median_s']:.4f}), "
                  f"mean iters {t['torch_mean_iters']:.2f}, NaN batches {t['torch_nan_batches']}", flush=True)
            if args.torch_only:
                notes.append("skipped (--torch-only)")
                continue
            il, note = bench_ilbench(name, args)
            notes.append(note)
            if il is None:
                if os.path.isfile(args.ilbench):
                    print(f"  ilbench: {note}", flush=True)
                    il_failures.append(f"{name}: {note}")
                continue
            im.append(il[0])
            if il[1] is not None:
                imed.append(il[1])
        r["torch_s_per_batch"] = statistics.median(tm)
        r["torch_min_s"], r["torch_max_s"] = min(tm), max(tm)
        r["torch_median_s"] = statistics.median(tmed)
        r["ilbench_s_per_batch"] = statistics.median(im) if im else None
        r["ilbench_min_s"], r["ilbench_max_s"] = (min(im), max(im)) if im else (None, None)
        r["ilbench_median_s"] = statistics.median(imed) if imed else None
        # ratios per repeat (each torch run against the ilbench run right after it)
        ratios = [a / b for a, b in zip(tm, im)] if len(im) == len(tm) else []
        r["speedup"] = statistics.median(ratios) if ratios else None
        r["speedup_min"], r["speedup_max"] = (min(ratios), max(ratios)) if ratios else (None, None)
        r["speedup_median_based"] = (r["torch_median_s"] / r["ilbench_median_s"]
                                     if r["ilbench_median_s"] else None)
        r["ilbench_note"] = notes[-1] if notes else ""
        rows.append(r)
    load1 = loadavg()

    def f(v, spec):
        return "-" if v is None else format(v, spec)
    print()
    print(f"# cpu {cpu_model()}; load average {load0} at the start, {load1} at the end")
    print(f"{'layer':<16} {'torch s/batch':>14} {'(min':>8} {'max)':>8} {'ilbench s/batch':>16} {'(min':>8} "
          f"{'max)':>8} {'speed-up':>9} {'(min':>6} {'max)':>6} {'median-based':>13}   "
          f"(threads={args.threads}, batches={args.batches}, repeats={args.repeats})")
    for r in rows:
        print(f"{r['layer']:<16} {f(r['torch_s_per_batch'], '.5f'):>14} {f(r['torch_min_s'], '.5f'):>8} "
              f"{f(r['torch_max_s'], '.5f'):>8} {f(r['ilbench_s_per_batch'], '.5f'):>16} "
              f"{f(r['ilbench_min_s'], '.5f'):>8} {f(r['ilbench_max_s'], '.5f'):>8} {f(r['speedup'], '.2f'):>9} "
              f"{f(r['speedup_min'], '.2f'):>6} {f(r['speedup_max'], '.2f'):>6} {f(r['speedup_median_based'], '.2f'):>13}")
    print("s/batch: the median over the repeats of each run's mean per batch (torch: after the warm-up, "
          "DataLoader fetch excluded; ilbench: its steps' phase times, batch gather excluded); speed-up: the median (min, max) of torch / "
          "ilbench over the interleaved repeats; median-based: torch's median batch over ilbench's median step")

    if args.out:
        cols = ["layer", "threads", "batches", "repeats", "torch_s_per_batch", "torch_min_s", "torch_max_s",
                "torch_median_s", "ilbench_s_per_batch", "ilbench_min_s", "ilbench_max_s", "ilbench_median_s",
                "speedup", "speedup_min", "speedup_max", "speedup_median_based", "torch_mean_iters",
                "torch_nan_batches", "torch_last_loss", "ilbench_note"]
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
        print(f"wrote {args.out}")
    if il_failures:  # the torch numbers are kept above; the comparison itself failed
        for msg in il_failures:
            print(f"bench_torch: error: ilbench failed ({msg})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
