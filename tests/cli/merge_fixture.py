"""Results files for the merge tests (tests/cli/test_merge.sh, test_merge_full_disk.sh),
built with h5py by tests/test_check_schema.py's make_valid (a valid version-3 file,
no MNIST needed).

usage: /usr/bin/python3 merge_fixture.py SRC COMMAND ...
  parts DIR N PREFIX        DIR/PREFIX000.h5 ... one run each, run ids PREFIX000 ...
  strings FILE RUN_ID       FILE with the root `schema` and the run's `status` (and a few
                            more) rewritten: variable-length UTF-8 (h5py's str) for some,
                            fixed-length UTF-8 for others
  runs FILE                 print the file's run ids, one a line
  merged-from FILE          print the root attribute merged_from, one a line
"""

import importlib.util
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

sys.dont_write_bytecode = True
SRC = Path(sys.argv[1])
_spec = importlib.util.spec_from_file_location("test_check_schema", SRC / "tests" / "test_check_schema.py")
tcs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tcs)


def parts(d, n, prefix):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    base = d / f".{prefix}base.h5"
    tcs.make_valid(base)
    for i in range(int(n)):
        p = d / f"{prefix}{i:03d}.h5"
        shutil.copy(base, p)
        with h5py.File(p, "r+") as f:
            f["runs"].move("r0", f"{prefix}{i:03d}")
    base.unlink()


def strings(path, run_id):
    with h5py.File(path, "r+") as f:
        f.attrs["schema"] = "ilbench-results"  # variable-length UTF-8
        f.attrs["host"] = "node0"
        f.attrs.create("command_line", b"ilbench train --out x.h5", dtype=h5py.string_dtype("utf-8", 40))
        g = f["runs"][run_id]
        g.attrs["status"] = "completed"  # variable-length UTF-8
        g.attrs.create("solver", b"newton", dtype=h5py.string_dtype("utf-8", 6))  # fixed-length UTF-8, no NUL
        assert h5py.check_string_dtype(f.attrs.get_id("schema").dtype).length is None
        assert h5py.check_string_dtype(g.attrs.get_id("status").dtype).length is None


def runs(path):
    with h5py.File(path, "r") as f:
        for r in f["runs"]:
            print(r)


def merged_from(path):
    with h5py.File(path, "r") as f:
        for v in f.attrs["merged_from"]:
            print(v.decode() if isinstance(v, (bytes, np.bytes_)) else v)


if __name__ == "__main__":
    cmd, args = sys.argv[2], sys.argv[3:]
    {"parts": parts, "strings": strings, "runs": runs, "merged-from": merged_from}[cmd](*args)
