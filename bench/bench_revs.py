#!/usr/bin/env python3
"""bench_revs.py - the inner step of two revisions of stem, timed in one
run: bench_kernels of each, built from its own sources, run alternately.

    /usr/bin/python3 bench/bench_revs.py OLD [NEW] [--runs R] [--cpu C]

OLD and NEW are git revisions of this repository; NEW defaults to the
working tree as it is (uncommitted changes included).  Each revision's
library is built into a temporary folder (a revision from `git archive`,
the working tree out of tree), with the working tree's bench/ sources in
place of its own, so that both sides are timed the same way (an old
revision whose kernel tables lack a member the benchmark calls fails to
build, with make's message).  Then the two bench_kernels binaries run one
after the other, R times (default 3), pinned to CPU C if given (taskset),
so that the load of the machine hits both alike.  Printed: for every kernel table and every
line of bench_kernels (the f32 step, the bf16 step and its three kernels,
in us per 128 x 128 x 128 block), the median of the R runs of each side
and new / old (below 1: the new revision is faster).

bench_kernels takes the best of 7 interleaved timings within a run; the
median over runs then absorbs the runs that the machine disturbed.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = "bench/bench_kernels"

# "avx512 qk_tile+softmax_rows+pv_tile 128x128x128: ... (48.0 us/block)"
STEP = re.compile(r"^(\w+)\s+qk_tile\+softmax_rows\+pv_tile .*\(([\d.]+) us/block\)")
# "avx512 the same step in the bf16 mode: ... (45.4 us/block)"
STEP16 = re.compile(r"^(\w+)\s+the same step in the bf16 mode: .*\(([\d.]+) us/block\)")
# "         qk_tile_bf16      19.64 us/block" (a part of the ISA above)
PART = re.compile(r"^\s+(\S.*?)\s+([\d.]+) us/block$")


def parse(text):
    """{(isa, item): us} of one bench_kernels output."""
    out, isa = {}, None
    for line in text.splitlines():
        m = STEP.match(line)
        if m:
            isa = m.group(1)
            out[(isa, "f32 step")] = float(m.group(2))
            continue
        m = STEP16.match(line)
        if m:
            isa = m.group(1)
            out[(isa, "bf16 step")] = float(m.group(2))
            continue
        m = PART.match(line)
        if m and isa:
            out[(isa, m.group(1))] = float(m.group(2))
    return out


def build(src, build_dir, jobs):
    """bench_kernels of the tree at src, built into build_dir; its path."""
    cmd = ["make", "-s", "-C", src, "-j%d" % jobs, "BUILD=" + build_dir,
           os.path.join(build_dir, BENCH)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        sys.exit("bench_revs: building %s failed:\n%s" % (src, r.stdout[-4000:]))
    return os.path.join(build_dir, BENCH)


def export(rev, dest):
    """The tree of git revision rev, unpacked into dest."""
    os.makedirs(dest)
    try:
        archive = subprocess.run(["git", "-C", ROOT, "archive", rev],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        sys.exit("bench_revs: git is not installed")
    if archive.returncode != 0:
        sys.exit("bench_revs: no revision %r: %s" %
                 (rev, archive.stderr.decode().strip()))
    subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, check=True)


def run(binary, cpu):
    """One run of a bench_kernels binary (on CPU cpu when not None),
    parsed."""
    cmd = (["taskset", "-c", str(cpu)] if cpu is not None else []) + [binary]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env=env)
    if r.returncode != 0:
        sys.exit("bench_revs: %s failed:\n%s" % (binary, r.stdout[-4000:]))
    return parse(r.stdout)


def main():
    """Build both sides, run them alternately, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old", help="the git revision to compare against")
    ap.add_argument("new", nargs="?", default=None,
                    help="a git revision (default: the working tree)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=None,
                    help="pin both benchmarks to this CPU")
    ap.add_argument("--jobs", type=int, default=2, help="make -j for the builds")
    a = ap.parse_args()
    if a.runs < 1:
        sys.exit("bench_revs: --runs must be at least 1")

    with tempfile.TemporaryDirectory(prefix="stem-revs-") as tmp:
        sides = []
        for name, rev in (("old", a.old), ("new", a.new)):
            if rev is None:
                sides.append((name, "working tree",
                              build(ROOT, os.path.join(tmp, "build-new"), a.jobs)))
                continue
            src = os.path.join(tmp, name)
            export(rev, src)
            shutil.rmtree(os.path.join(src, "bench"), ignore_errors=True)
            shutil.copytree(os.path.join(ROOT, "bench"), os.path.join(src, "bench"),
                            ignore=shutil.ignore_patterns("__pycache__"))
            sides.append((name, rev, build(src, os.path.join(src, "build"), a.jobs)))
        for name, rev, _ in sides:
            print("%s: %s" % (name, rev))
        times = {name: [] for name, _, _ in sides}
        for r in range(a.runs):
            for name, _, binary in sides:
                times[name].append(run(binary, a.cpu))
            print("run %d of %d done" % (r + 1, a.runs), file=sys.stderr)

    keys = [k for k in times["old"][0] if k in times["new"][0]]
    print("%-11s %-40s %10s %10s %9s" % ("table", "us per block (median of %d)"
                                         % a.runs, "old", "new", "new/old"))
    for isa, item in keys:
        old = statistics.median(t[(isa, item)] for t in times["old"])
        new = statistics.median(t[(isa, item)] for t in times["new"])
        print("%-11s %-40s %10.2f %10.2f %9.3f" % (isa, item, old, new, new / old))


if __name__ == "__main__":
    main()
