"""tests/test_grid_figure.py: analysis/grid_figure.py, the process-grid figure of
scripts/bench-grid's CSV: drawn from a CSV with the columns bench-grid writes (one
line per configuration, the LAPACK line black), refused with exit 2 on a missing
column or no rows, and reachable from report.py --grid-bench."""
import csv
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ANALYSIS = os.path.join(HERE, "..", "analysis")
sys.path.insert(0, ANALYSIS)
import grid_figure  # noqa: E402

COLS = ["config", "ranks", "grid", "hidden", "batch", "iters", "fwd_ms", "bwd_ms", "step_ms", "asm_ms", "factor_ms",
        "solve_ms", "comm_ms", "rank_bytes", "lu_calls", "factor_GFs", "grad_relerr", "reason"]


def write(path, rows, cols=COLS):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def rows():
    out = []
    for cfg, P in (("lapack", 1), ("1x2", 2), ("2x2", 4)):
        for n in (250, 500, 1000):
            out.append({"config": cfg, "ranks": P, "grid": cfg if "x" in cfg else "1x1", "hidden": n, "batch": 8,
                        "iters": 3, "fwd_ms": 3e-6 * n ** 3, "bwd_ms": 1, "step_ms": 1e-6 * n ** 3, "asm_ms": 1,
                        "factor_ms": 3e-6 * n ** 3, "solve_ms": 1, "comm_ms": 0.1, "rank_bytes": 32 * n * n // P,
                        "lu_calls": 4, "factor_GFs": 40, "grad_relerr": 1e-6, "reason": "converged"})
    return out


def test_draws_one_line_per_grid(tmp_path, capsys):
    src = tmp_path / "bench-grid.csv"
    write(src, rows())
    out = tmp_path / "grid.png"
    assert grid_figure.main([str(src), "--out", str(out)]) == 0
    assert out.stat().st_size > 10000
    assert "9 points, 3 configurations" in capsys.readouterr().out


def test_refuses_missing_column_and_empty(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    write(bad, rows(), [c for c in COLS if c != "lu_calls"])
    assert grid_figure.main([str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert "missing column(s) lu_calls" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    write(empty, [])
    assert grid_figure.main([str(empty), "--out", str(tmp_path / "y.png")]) == 2
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_report_grid_bench_option(tmp_path):
    """report.py --grid-bench: the help names it (the full report needs results files; see test_report.py)"""
    p = subprocess.run([sys.executable, os.path.join(ANALYSIS, "report.py"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--grid-bench" in p.stdout
