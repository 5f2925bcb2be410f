#!/usr/bin/env python3
"""bench_torch.py - stem against PyTorch's CPU attention on the same bf16
tensors: every ratio of the comparison table, from one run.

    python3 bench/bench_torch.py [--threads T] [--runs R]
                                 [--sizes 16k,32k,64k,128k] [--no-flex]
                                 [--commit C]

stem runs through the Python package stem_attn (python/ is put on the path;
the library is found as the package finds it, e.g. STEM_LIBRARY).  A
process uses one kernel table (chosen once, from STEM_ISA), so each stem
mode runs in a worker process of this script:
  - "AMX": STEM_ISA=amx, the bf16 mode on the AMX tiles (fast, not
    bit-exact); absent where the CPU or the OS has no AMX;
  - "bit-exact": STEM_ISA unset, the ISA the library detects (avx512bf16
    where the CPU has AVX512-BF16).
PyTorch runs in this process: scaled_dot_product_attention (causal, GQA,
bf16) and FlexAttention (torch.compile'd, bf16) under Stem's own block
mask (compile time excluded).  For each size (N tokens, Hq/Hkv heads, d
128, causal) every side runs once as a warm-up, then R rounds run every
side once in turn, so that drifts of the machine hit all sides alike; the
median of the R times is reported (best in brackets).

Printed per size and as one markdown table at the end: the times, SDPA /
dense and flex / Stem for the AMX mode, SDPA / Stem and SDPA / dense for
the bit-exact mode, each with its target, and the distances between the
outputs (stem's dense against SDPA, stem's Stem against flex under the
same mask).  Without PyTorch it times stem alone.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

SIZES = {  # name: (tokens, query heads, kv heads)
    "4k": (4096, 8, 2),
    "16k": (16384, 32, 8),
    "32k": (32768, 8, 2),
    "64k": (65536, 4, 1),
    "128k": (131072, 2, 1),
}
D = 128
BLOCK = 128

# targets: (ratio, sizes it applies to)
TARGETS = {
    "amx_dense": (1.5, None),                 # SDPA / AMX dense, every size
    "amx_flex": (2.0, ("32k", "64k", "128k")),  # flex / AMX Stem
    "exact_stem": ({"16k": 1.0, "128k": 4.0}, None),  # SDPA / bit-exact Stem
    "exact_dense": (0.8, None),               # SDPA / bit-exact dense
}


def bf16_inputs(name):
    """q, k, v of a size: float32 normals rounded to bf16 (uint16 bits),
    the same in every process (seeded)."""
    n, hq, hkv = SIZES[name]
    rng = np.random.default_rng(1)

    def bf16(shape):
        x = rng.standard_normal(shape, dtype=np.float32)
        u = x.view(np.uint32)
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        return np.ascontiguousarray(u.astype(np.uint16))
    return bf16((hq, n, D)), bf16((hkv, n, D)), bf16((hkv, n, D))


# ------------------------------------------------------------------ worker

def worker(threads):
    """Serve stem calls: one JSON command a line on stdin, one JSON answer a
    line on stdout."""
    import stem_attn
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the pipe
    q = k = v = None
    for line in sys.stdin:
        cmd = json.loads(line)
        ans = {}
        try:
            if cmd["op"] == "hello":
                ans = {"version": stem_attn.version(),
                       "library": stem_attn.library_path()}
            elif cmd["op"] == "load":
                q = k = v = None
                q, k, v = bf16_inputs(cmd["size"])
            elif cmd["op"] == "run":
                kw = dict(storage="bf16", threads=threads, compute="bf16")
                t0 = time.perf_counter()
                if cmd["kind"] == "stem":
                    r = stem_attn.prefill(q, k, v, **kw)
                else:
                    r = stem_attn.dense(q, k, v, **kw)
                ans["t"] = time.perf_counter() - t0
                if cmd.get("save"):
                    np.save(cmd["save"] + "_out.npy", r.out)
                    if cmd["kind"] == "stem":
                        np.save(cmd["save"] + "_mask.npy", r.mask)
                del r
        except Exception as e:  # reported, the run goes on without this side
            ans = {"error": "%s: %s" % (type(e).__name__, e)}
        out.write(json.dumps(ans) + "\n")
        out.flush()


class Worker:
    def __init__(self, label, isa, threads):
        env = dict(os.environ)
        env.pop("STEM_ISA", None)
        if isa:
            env["STEM_ISA"] = isa
        self.label = label
        self.p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker",
             "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        self.info = self.ask(op="hello")

    def ask(self, **cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            return {"error": "the worker ended"}
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


# ------------------------------------------------------------------ torch

def flex_block_mask(torch, mask, n):
    """FlexAttention's BlockMask for stem's block mask [H, Qb, Kb]
    (128-token blocks, causal): blocks below the diagonal full, the
    diagonal block partial (causal inside)."""
    from torch.nn.attention.flex_attention import BlockMask
    sel = torch.from_numpy(mask).bool()
    h, qb, kb = sel.shape
    qi = torch.arange(qb).view(qb, 1)
    kj = torch.arange(kb).view(1, kb)
    full = sel & (kj < qi)
    full_num = full.sum(-1, dtype=torch.int32).unsqueeze(0)
    full_idx = torch.argsort((~full).to(torch.int8), dim=-1, stable=True)
    full_idx = full_idx.to(torch.int32).unsqueeze(0).contiguous()
    part_num = torch.ones((1, h, qb), dtype=torch.int32)
    part_idx = torch.zeros((1, h, qb, kb), dtype=torch.int32)
    part_idx[..., 0] = torch.arange(qb, dtype=torch.int32)

    def causal(b, hh, q_idx, kv_idx):
        return q_idx >= kv_idx
    return BlockMask.from_kv_blocks(part_num, part_idx, full_num, full_idx,
                                    BLOCK_SIZE=BLOCK, mask_mod=causal,
                                    seq_lengths=(n, n))


def cpu_line():
    model, flags = platform.processor() or "?", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("?", "x86_64", ""):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = " ".join(x for x in line.split()
                                     if x.startswith("amx") or "bf16" in x)
    except OSError:
        pass
    return "%s, %d CPUs, flags: %s" % (model, os.cpu_count(), flags or "none")


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def fmt_t(ts):
    if not ts:
        return "—"
    return "%.3f" % statistics.median(ts)


def ratio(num, den):
    if not num or not den:
        return None
    return statistics.median(num) / statistics.median(den)


def fmt_r(r, target=None):
    if r is None:
        return "—"
    s = "%.2fx" % r
    if target is not None:
        s += " (>= %g: %s)" % (target, "holds" if r >= target else "short")
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="16k,32k,64k,128k")
    ap.add_argument("--no-flex", action="store_true",
                    help="leave FlexAttention out")
    ap.add_argument("--no-torch", action="store_true", help="time stem alone")
    ap.add_argument("--commit", default=None,
                    help="the commit to print in the table's heading")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.threads)
    for s in a.sizes.split(","):
        if s not in SIZES:
            sys.exit("bench_torch: unknown size %r (%s)" % (s, ", ".join(SIZES)))

    torch = None
    if not a.no_torch:
        try:
            import torch
            import torch.nn.functional as F
        except ImportError:
            torch = None
    if torch is not None:
        torch.set_num_threads(a.threads)

    commit = a.commit
    if commit is None:
        try:
            commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short",
                                     "HEAD"], capture_output=True, text=True,
                                    check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = "?"
    workers = [Worker("AMX", "amx", a.threads),
               Worker("bit-exact", None, a.threads)]
    for w in workers:
        if "error" in w.info:
            sys.exit("bench_torch: stem_attn: %s" % w.info["error"])
    print("date %s; commit %s; machine: %s" % (
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        commit, cpu_line()))
    print("command: %s" % " ".join(["python3", "bench/bench_torch.py"] + sys.argv[1:]))
    print("stem %s (%s); torch %s; %d threads; median of %d alternated runs "
          "[best]" % (workers[0].info["version"], workers[0].info["library"],
                      torch.__version__ if torch else "absent", a.threads,
                      a.runs))
    sys.stdout.flush()

    tmp = tempfile.mkdtemp(prefix="bench_torch_")
    table = []
    try:
        for name in a.sizes.split(","):
            table.append(run_size(name, a, torch, workers, tmp))
    finally:
        for w in workers:
            w.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(table, torch is not None)


def run_size(name, a, torch, workers, tmp):
    n, hq, hkv = SIZES[name]
    amx, exact = workers
    for w in workers:
        r = w.ask(op="load", size=name)
        if "error" in r:
            sys.exit("bench_torch: %s worker: %s" % (w.label, r["error"]))
    times = {key: [] for key in ("amx_stem", "amx_dense", "sdpa", "flex",
                                 "exact_stem", "exact_dense")}
    notes = {}
    res = {}
    sides = []  # (key, call(save) -> seconds or None)

    def stem_side(w, kind):
        def call(save):
            r = w.ask(op="run", kind=kind,
                      save=os.path.join(tmp, "%s_%s" % (w.label, kind)) if save else None)
            if "error" in r:
                notes.setdefault("%s %s" % (w.label, kind), r["error"])
                return None
            return r["t"]
        return call

    sides.append(("exact_stem", stem_side(exact, "stem")))
    sides.append(("exact_dense", stem_side(exact, "dense")))
    sides.append(("amx_stem", stem_side(amx, "stem")))
    sides.append(("amx_dense", stem_side(amx, "dense")))
    if torch is not None:
        import torch.nn.functional as F
        qb, kb, vb = bf16_inputs(name)

        def as_torch(x):
            return torch.from_numpy(x.view(np.int16)).view(torch.bfloat16).unsqueeze(0)
        tq, tk, tv = as_torch(qb), as_torch(kb), as_torch(vb)
        del qb, kb, vb

        def sdpa(save):
            t0 = time.perf_counter()
            with torch.no_grad():
                o = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True,
                                                   enable_gqa=True)
            t = time.perf_counter() - t0
            if save:
                res["sdpa"] = o.float().squeeze(0).numpy()
            return t
        sides.append(("sdpa", sdpa))
        if not a.no_flex:
            state = {}

            def flex(save):
                if "bm" not in state:
                    # Stem's mask, from the bit-exact worker's warm-up call
                    mask = np.load(os.path.join(tmp, "bit-exact_stem_mask.npy"))
                    from torch.nn.attention.flex_attention import flex_attention
                    state["bm"] = flex_block_mask(torch, mask, n)
                    state["fn"] = torch.compile(flex_attention, dynamic=False)
                    with torch.no_grad():  # compile, not timed
                        state["fn"](tq, tk, tv, block_mask=state["bm"],
                                    enable_gqa=True)
                t0 = time.perf_counter()
                with torch.no_grad():
                    o = state["fn"](tq, tk, tv, block_mask=state["bm"],
                                    enable_gqa=True)
                t = time.perf_counter() - t0
                if save:
                    res["flex"] = o.float().squeeze(0).numpy()
                return t
            sides.append(("flex", flex))

    for key, call in sides:  # warm-up, outputs kept
        call(True)
    for _ in range(a.runs):
        for key, call in sides:
            t = call(False)
            if t is not None:
                times[key].append(t)

    dist = {}

    def load(label, kind):
        p = os.path.join(tmp, "%s_%s_out.npy" % (label, kind))
        return np.load(p) if os.path.exists(p) else None
    if "sdpa" in res:
        for label in ("bit-exact", "AMX"):
            o = load(label, "dense")
            if o is not None:
                dist["%s dense vs SDPA" % label] = rel_l2(o, res["sdpa"])
    if "flex" in res:
        for label in ("bit-exact", "AMX"):
            o = load(label, "stem")
            if o is not None:
                dist["%s Stem vs flex" % label] = rel_l2(o, res["flex"])
    m0 = os.path.join(tmp, "bit-exact_stem_mask.npy")
    m1 = os.path.join(tmp, "AMX_stem_mask.npy")
    if os.path.exists(m0) and os.path.exists(m1):
        notes["masks"] = ("AMX and bit-exact Stem select the same blocks"
                          if np.array_equal(np.load(m0), np.load(m1))
                          else "AMX and bit-exact Stem masks differ")
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))

    row = {"name": name, "n": n, "hq": hq, "hkv": hkv, "times": times,
           "dist": dist, "notes": notes}
    print("\n%s: N %d, heads %d/%d, d %d" % (name, n, hq, hkv, D))
    for key, ts in times.items():
        if ts:
            print("  %-12s median %8.3f s  [best %.3f]  runs %s" % (
                key, statistics.median(ts), min(ts),
                " ".join("%.3f" % t for t in ts)))
    for key, r, tgt in ratios(row):
        print("  %-34s %s" % (key, fmt_r(r, tgt)))
    for key, val in dist.items():
        print("  %-34s %.2e relative L2" % (key, val))
    for key, val in notes.items():
        print("  %s: %s" % (key, val))
    sys.stdout.flush()
    return row


def ratios(row):
    t, name = row["times"], row["name"]
    ex_t = TARGETS["exact_stem"][0].get(name)
    fl_t = TARGETS["amx_flex"][0] if name in TARGETS["amx_flex"][1] else None
    return [
        ("SDPA / AMX dense", ratio(t["sdpa"], t["amx_dense"]), TARGETS["amx_dense"][0]),
        ("flex / AMX Stem", ratio(t["flex"], t["amx_stem"]), fl_t),
        ("SDPA / bit-exact Stem", ratio(t["sdpa"], t["exact_stem"]), ex_t),
        ("SDPA / bit-exact dense", ratio(t["sdpa"], t["exact_dense"]),
         TARGETS["exact_dense"][0]),
        ("bit-exact Stem / AMX Stem", ratio(t["exact_stem"], t["amx_stem"]), None),
    ]


def print_table(table, have_torch):
    print("\n| N, heads q/kv | stem Stem bf16, AMX | dense bf16, AMX | torch SDPA "
          "bf16 | torch flex, stem's mask | SDPA/dense | flex/Stem | Stem bf16 "
          "bit-exact | dense bf16 bit-exact | SDPA/Stem bit-exact | SDPA/dense "
          "bit-exact |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in table:
        t = row["times"]
        r = {key: val for key, val, _ in ratios(row)}
        print("| %s %d/%d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            row["name"].upper(), row["hq"], row["hkv"], fmt_t(t["amx_stem"]),
            fmt_t(t["amx_dense"]), fmt_t(t["sdpa"]), fmt_t(t["flex"]),
            fmt_r(r["SDPA / AMX dense"]), fmt_r(r["flex / AMX Stem"]),
            fmt_t(t["exact_stem"]), fmt_t(t["exact_dense"]),
            fmt_r(r["SDPA / bit-exact Stem"]), fmt_r(r["SDPA / bit-exact dense"])))
    if have_torch:
        print("\ntargets: SDPA/dense AMX >= 1.5 at every size; flex/Stem AMX >= 2 "
              "at 32K, 64K, 128K; SDPA/Stem bit-exact >= 1.0 at 16K, >= 4 at "
              "128K; SDPA/dense bit-exact >= 0.8 at every size")
        held, short = [], []
        for row in table:
            for key, val, tgt in ratios(row):
                if tgt is None or val is None:
                    continue
                (held if val >= tgt else short).append(
                    "%s %s %.2fx" % (row["name"], key, val))
        print("held: %s" % ("; ".join(held) or "none"))
        print("short: %s" % ("; ".join(short) or "none"))


if __name__ == "__main__":
    main()
