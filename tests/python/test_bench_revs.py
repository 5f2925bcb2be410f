"""bench/bench_revs.py: what it reads from a bench_kernels run (the lines
are bench_kernels' own formats), and that it refuses a revision that does
not exist before building anything."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import bench_revs  # noqa: E402

SAMPLE = """\
OpenBLAS cblas_sgemm, 1 thread: 128^3 103.7 GFLOP/s, 512^3 107.5 GFLOP/s
avx512 qk_tile+softmax_rows+pv_tile 128x128x128: 174.9 GFLOP/s (48.0 us/block), 169% of sgemm 128^3, 163% of sgemm 512^3
avx512 the same step in the bf16 mode: 184.8 GFLOP/s (45.4 us/block), 0.95x the f32 step's time
         qk_tile_bf16                            19.64 us/block
         softmax_rows_bf16                        5.79 us/block
         pv_tile_bf16                            20.11 us/block
         (f32 mode's softmax_rows, SLEEF expf)    8.35 us/block
avx512bf16 qk_tile+softmax_rows+pv_tile 128x128x128: 178.7 GFLOP/s (46.9 us/block), 172% of sgemm 128^3, 166% of sgemm 512^3
avx512bf16 the same step in the bf16 mode: 351.2 GFLOP/s (23.9 us/block), 0.51x the f32 step's time
         qk_tile_bf16                             9.17 us/block
         softmax_rows_bf16                        5.15 us/block
"""


def test_parse_keeps_each_table_apart():
    got = bench_revs.parse(SAMPLE)
    assert got[("avx512", "f32 step")] == 48.0
    assert got[("avx512", "bf16 step")] == 45.4
    assert got[("avx512", "softmax_rows_bf16")] == 5.79
    assert got[("avx512", "(f32 mode's softmax_rows, SLEEF expf)")] == 8.35
    assert got[("avx512bf16", "bf16 step")] == 23.9
    assert got[("avx512bf16", "softmax_rows_bf16")] == 5.15
    assert ("avx512bf16", "pv_tile_bf16") not in got
    assert len(got) == 10  # the sgemm line is not a table's


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_unknown_revision_is_refused():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_revs.py"),
                        "no-such-revision-xyz"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode != 0
    assert "no revision 'no-such-revision-xyz'" in r.stderr
