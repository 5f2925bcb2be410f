#!/usr/bin/env python3
"""bench_torch.py - stem against PyTorch's CPU attention, same bf16 tensors,
one process.

    python3 bench/bench_torch.py [--lib build/libstem.so] [--threads T]
                                 [--runs R] [--sizes 16k,32k,64k,128k]

For each size (N tokens, Hq/Hkv heads, d 128, causal) it times, best and
median of R runs each:

  - torch.nn.functional.scaled_dot_product_attention, causal, GQA, in bf16
    and (--fp32) in float32, where PyTorch is installed;
  - stem_attention_dense and stem_prefill (Stem: scoring, selection and
    sparse attention) through libstem.so by ctypes, in the bf16 compute mode
    and in the f32 mode, on the same bf16 tensors;

then prints the ratios (torch time / stem time: above 1 means stem is
faster), the distance of stem's dense bf16 output to torch's, the ISA stem
ran on (STEM_ISA=amx selects the AMX tiles), the threads and the CPU's AMX
flags.  Without PyTorch it times stem alone (bf16 against f32 mode).
"""
import argparse
import ctypes as C
import os
import statistics
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # stem alone
    torch = None

SIZES = {  # name: (tokens, query heads, kv heads)
    "4k": (4096, 8, 2),
    "16k": (16384, 32, 8),
    "32k": (32768, 8, 2),
    "64k": (65536, 4, 1),
    "128k": (131072, 2, 1),
}
D = 128
STEM_BF16, STEM_F32 = 1, 0
COMPUTE_F32, COMPUTE_BF16 = 0, 1


class StemTensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int),
                ("heads", C.c_int64), ("tokens", C.c_int64), ("dim", C.c_int64),
                ("head_stride", C.c_int64), ("token_stride", C.c_int64)]


class StemParams(C.Structure):
    # include/stem.h's stem_params, in order; the tail pads against fields
    # added later (stem_params_init writes the whole struct).
    _fields_ = [("profile", C.c_int), ("block", C.c_int), ("stride", C.c_int),
                ("qk_scaled", C.c_int), ("norm", C.c_double),
                ("value_rule", C.c_int), ("value_weight", C.c_double),
                ("budget_rule", C.c_int), ("keep_ratio", C.c_double),
                ("alpha", C.c_double), ("paper_min_k0", C.c_int),
                ("paper_ratio_short", C.c_double),
                ("paper_ratio_long", C.c_double),
                ("paper_long_tokens", C.c_int64), ("prompt_blocks", C.c_int64),
                ("sinks", C.c_int), ("window", C.c_int),
                ("keep_diagonal", C.c_int), ("ties_keep_all", C.c_int),
                ("use_f64", C.c_int), ("threads", C.c_int),
                ("sinks_unclipped", C.c_int), ("compute", C.c_int),
                ("_pad", C.c_char * 256)]


def hnd(arr, dtype):
    h, n, d = arr.shape
    return StemTensor(arr.ctypes.data, dtype, h, n, d, n * d, d)


def timed(fn, runs):
    fn()  # warm-up: first touch, thread pools
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), statistics.median(ts)


_flex = None


def flex_block_mask(mask, n):
    """FlexAttention's BlockMask for stem's block mask [H, Qb, Kb] (128-token
    blocks, causal): blocks below the diagonal are full, the diagonal block
    is partial (causal inside)."""
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
                                    BLOCK_SIZE=128, mask_mod=causal,
                                    seq_lengths=(n, n))


def flex_run(tq, tk, tv, bm, res):
    global _flex
    if _flex is None:
        from torch.nn.attention.flex_attention import flex_attention
        _flex = torch.compile(flex_attention, dynamic=False)
    with torch.no_grad():
        res["flex"] = _flex(tq, tk, tv, block_mask=bm, enable_gqa=True)


def amx_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return " ".join(x for x in line.split()
                                    if x.startswith("amx") or "bf16" in x) or "none"
    except OSError:
        pass
    return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build/libstem.so")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="16k,32k,64k,128k")
    ap.add_argument("--fp32", action="store_true", help="also time torch in float32")
    ap.add_argument("--f32-only", action="store_true",
                    help="time stem's f32 mode only (a library without the bf16 mode)")
    ap.add_argument("--no-torch", action="store_true", help="time stem alone")
    ap.add_argument("--flex", action="store_true",
                    help="also time FlexAttention (compiled, bf16) under Stem's block "
                         "mask; compile time excluded (one warm-up call)")
    a = ap.parse_args()

    lib = C.CDLL(os.path.abspath(a.lib))
    lib.stem_strerror.restype = C.c_char_p
    lib.stem_isa_name.restype = C.c_char_p
    lib.stem_version.restype = C.c_char_p
    isa = C.c_int(0)
    st = lib.stem_isa_active(C.byref(isa))
    if st != 0:
        sys.exit("stem: STEM_ISA=%s: %s" % (os.environ.get("STEM_ISA"),
                                             lib.stem_strerror(st).decode()))
    global torch
    if a.no_torch:
        torch = None
    if torch is not None:
        torch.set_num_threads(a.threads)
    print("stem %s, isa %s, %d threads; torch %s; cpu AMX/bf16 flags: %s; runs %d "
          "(best / median)" % (lib.stem_version().decode(),
                               lib.stem_isa_name(isa.value).decode(),
                               a.threads, torch.__version__ if torch else "absent",
                               amx_flags(), a.runs))

    def params(compute):
        p = StemParams()
        if lib.stem_params_init(C.byref(p), 0) != 0:
            sys.exit("stem_params_init failed")
        p.threads = a.threads
        p.compute = compute
        return p

    for name in a.sizes.split(","):
        n, hq, hkv = SIZES[name]
        rng = np.random.default_rng(1)
        # bf16 inputs: float32 normals rounded to bf16 (bits kept as uint16)
        def bf16(shape):
            x = rng.standard_normal(shape, dtype=np.float32)
            u = x.view(np.uint32)
            u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
            return np.ascontiguousarray(u.astype(np.uint16))
        qb, kb, vb = bf16((hq, n, D)), bf16((hkv, n, D)), bf16((hkv, n, D))
        q, k, v = hnd(qb, STEM_BF16), hnd(kb, STEM_BF16), hnd(vb, STEM_BF16)
        out = np.empty((hq, n, D), dtype=np.float32)
        o = hnd(out, STEM_F32)
        row = {}

        nb = (n + 127) // 128
        mask = np.zeros((hq, nb, nb), dtype=np.uint8)
        mask_p = mask.ctypes.data_as(C.POINTER(C.c_uint8))

        def stem_call(kind, compute):
            p = params(compute)
            if kind == "sparse":  # attention alone, under the Stem mask
                st = lib.stem_attention_sparse(C.byref(p), C.byref(q), C.byref(k),
                                               C.byref(v), mask_p, C.byref(o), None)
            elif kind == "dense":
                st = lib.stem_attention_dense(C.byref(p), C.byref(q), C.byref(k),
                                              C.byref(v), C.byref(o), None)
            else:
                st = lib.stem_prefill(C.byref(p), C.byref(q), C.byref(k), C.byref(v),
                                      C.byref(o), None, None, mask_p)
            if st != 0:
                sys.exit("stem: %s" % lib.stem_strerror(st).decode())

        if a.f32_only:
            row["stem Stem f32"] = timed(lambda: stem_call("stem", COMPUTE_F32), a.runs)
            row["stem dense f32"] = timed(lambda: stem_call("dense", COMPUTE_F32), a.runs)
            print("\n%s: N %d, heads %d/%d, d %d" % (name, n, hq, hkv, D))
            for key, (best, med) in row.items():
                print("  %-18s best %8.3f s  median %8.3f s" % (key, best, med))
            continue
        row["stem Stem bf16"] = timed(lambda: stem_call("stem", COMPUTE_BF16), a.runs)
        row["  its attention"] = timed(lambda: stem_call("sparse", COMPUTE_BF16), a.runs)
        row["stem Stem f32"] = timed(lambda: stem_call("stem", COMPUTE_F32), a.runs)
        row["stem dense bf16"] = timed(lambda: stem_call("dense", COMPUTE_BF16), a.runs)
        dense_bf16 = out.copy()
        if torch is not None:
            tq = torch.from_numpy(qb.view(np.int16)).view(torch.bfloat16).unsqueeze(0)
            tk = torch.from_numpy(kb.view(np.int16)).view(torch.bfloat16).unsqueeze(0)
            tv = torch.from_numpy(vb.view(np.int16)).view(torch.bfloat16).unsqueeze(0)
            res = {}

            def sdpa(dt):
                with torch.no_grad():
                    res[dt] = F.scaled_dot_product_attention(
                        tq.to(dt), tk.to(dt), tv.to(dt), is_causal=True,
                        enable_gqa=True)
            row["torch SDPA bf16"] = timed(lambda: sdpa(torch.bfloat16), a.runs)
            if a.fp32:
                row["torch SDPA fp32"] = timed(lambda: sdpa(torch.float32), a.runs)
            ref = res[torch.bfloat16].float().squeeze(0).numpy()
            rel = float(np.linalg.norm(dense_bf16 - ref) / np.linalg.norm(ref))
            if a.flex:
                stem_call("stem", COMPUTE_BF16)  # leaves Stem's mask and out
                stem_out = out.copy()
                bm = flex_block_mask(mask, n)
                row["torch flex bf16"] = timed(lambda: flex_run(tq, tk, tv, bm, res), a.runs)
                fo = res["flex"].float().squeeze(0).numpy()
                flex_rel = float(np.linalg.norm(stem_out - fo) / np.linalg.norm(fo))
        else:
            row["stem dense f32"] = timed(lambda: stem_call("dense", COMPUTE_F32), a.runs)
        print("\n%s: N %d, heads %d/%d, d %d" % (name, n, hq, hkv, D))
        for key, (best, med) in row.items():
            print("  %-18s best %8.3f s  median %8.3f s" % (key, best, med))
        b = {key: best for key, (best, _) in row.items()}
        print("  bf16 / f32 mode, Stem: %.2fx faster" % (b["stem Stem f32"] / b["stem Stem bf16"]))
        if torch is not None:
            t = b["torch SDPA bf16"]
            print("  torch SDPA bf16 / stem dense bf16: %.2fx   (target >= 1.3)"
                  % (t / b["stem dense bf16"]))
            print("  torch SDPA bf16 / stem Stem bf16:  %.2fx   (target >= 2 at 16K, >= 5 at 128K)"
                  % (t / b["stem Stem bf16"]))
            print("  stem dense bf16 against torch SDPA bf16: %.2e relative L2" % rel)
            if a.flex:
                print("  torch flex bf16 / stem Stem bf16:  %.2fx   (target >= 1.3; "
                      "scoring and selection included on stem's side)"
                      % (b["torch flex bf16"] / b["stem Stem bf16"]))
                print("  stem Stem bf16 against torch flex (same mask): %.2e relative L2"
                      % flex_rel)
        else:
            print("  dense f32 / dense bf16 mode: %.2fx" % (b["stem dense f32"] / b["stem dense bf16"]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
