#!/usr/bin/env python3
"""bench_transformers.py - a whole transformers model's prefill on the CPU
with attn_implementation="stem" against "sdpa", one process.

    python3 bench/bench_transformers.py [--layers 2] [--threads 16]
        [--sizes 16k,32k] [--check 8192] [--flex]

The model is Llama-shaped with random weights (hidden 4096, 32 query and 8
key/value heads of d 128, MLP 14336, bf16; a small vocabulary, since the
LM head is not what is measured), built from a config: nothing is fetched.

--check N first compares logits on an N-token prompt:
  - "stem_dense" (the library's exact attention) against "sdpa": both exact,
    so they differ by bf16 rounding only; "eager" against "sdpa" beside it
    gives that level;
  - "stem" against FlexAttention given stem's own block mask (each layer's
    mask from stem_attn.prefill on the same q, k, v), where FlexAttention
    runs (--flex), else against the library's sparse attention under that
    mask through torch.nn.functional.scaled_dot_product_attention with the
    mask expanded to tokens.

Then for each size, one forward of the base model (no LM head,
use_cache=False) under torch.inference_mode, timed once after a short
warm-up:
  zeros   attention replaced by zeros: everything but attention
  sdpa    PyTorch's scaled_dot_product_attention (causal, GQA)
  stem    the stem backend; each attention call timed, its q, k, v kept
  alone   the library's stem_prefill alone on those q, k, v (ctypes, the
          output buffer allocated once): stem's attention without the glue
and prints the bound (zeros + alone + 5% of alone), the backend's glue
(its calls' time less alone) and the ratios sdpa / stem.  --flex also
times the model with FlexAttention under stem's masks (compile excluded).
STEM_ISA=amx in the environment selects the AMX kernels (not bit-exact).
"""
import argparse
import ctypes as C
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import stem_attn  # noqa: E402
import stem_attn.torch as st  # noqa: E402
from stem_attn import _abi, _lib  # noqa: E402

import transformers  # noqa: E402
from transformers import AttentionInterface, LlamaConfig, LlamaForCausalLM  # noqa: E402

SIZES = {"4k": 4096, "8k": 8192, "16k": 16384, "32k": 32768,
         "64k": 65536, "128k": 131072}


def build_model(layers, n_max):
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336,
                      num_attention_heads=32, num_key_value_heads=8,
                      head_dim=128, num_hidden_layers=layers,
                      vocab_size=4096, max_position_embeddings=n_max,
                      rope_theta=500000.0, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    return model


def set_attn(model, name):
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
    else:
        model.config._attn_implementation = name


# ------------------------------------------------------- extra backends
CALLS = []      # (seconds, query, key, value) of the timed stem run
KEEP = {"on": False}
MASKS = {}      # layer index -> stem's block mask [Hq, Qb, Kb] (torch bool)
FLEX = {}


def zeros_attention(module, query, key, value, attention_mask, **kw):
    b, h, n, d = query.shape
    return torch.zeros(b, n, h, d, dtype=query.dtype), None


def timed_stem(module, query, key, value, attention_mask, **kw):
    t0 = time.perf_counter()
    out = st.attention_forward(module, query, key, value, attention_mask,
                               **kw)
    if KEEP["on"]:
        CALLS.append((time.perf_counter() - t0, query, key, value))
    return out


def stem_mask(query, key, value):
    r = stem_attn.prefill(query[0], key[0], value[0], compute="bf16",
                          threads=torch.get_num_threads())
    return torch.from_numpy(r.mask).bool()


def flex_block_mask(mask, n):
    """FlexAttention's BlockMask for stem's block mask [H, Qb, Kb] (128-token
    blocks, causal): blocks below the diagonal full, the diagonal partial."""
    from torch.nn.attention.flex_attention import BlockMask
    h, qb, kb = mask.shape
    qi = torch.arange(qb).view(qb, 1)
    kj = torch.arange(kb).view(1, kb)
    full = mask & (kj < qi)
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


def flex_fn():
    if "fn" not in FLEX:
        from torch.nn.attention.flex_attention import flex_attention
        FLEX["fn"] = torch.compile(flex_attention, dynamic=False)
    return FLEX["fn"]


def masked_reference(module, query, key, value, attention_mask, **kw):
    """Attention under stem's own block mask of this call, by FlexAttention
    (--flex) or by SDPA with the mask expanded to tokens."""
    n = query.shape[2]
    mask = stem_mask(query, key, value)
    if FLEX.get("use"):
        out = flex_fn()(query, key, value, block_mask=flex_block_mask(mask, n),
                        enable_gqa=True)
    else:
        tok = mask.repeat_interleave(128, 1).repeat_interleave(128, 2)
        tok = tok[:, :n, :n] & torch.ones(n, n, dtype=torch.bool).tril()
        rep = query.shape[1] // key.shape[1]
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key.repeat_interleave(rep, 1),
            value.repeat_interleave(rep, 1), attn_mask=tok.unsqueeze(0))
    return out.transpose(1, 2).contiguous(), None


def flex_timed(module, query, key, value, attention_mask, **kw):
    bm = MASKS[module.layer_idx]
    out = flex_fn()(query, key, value, block_mask=bm, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


# ------------------------------------------------------------ measuring
def forward(model, ids):
    with torch.inference_mode():
        t0 = time.perf_counter()
        model.model(input_ids=ids, use_cache=False)
        return time.perf_counter() - t0


def logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids, use_cache=False).logits.float()


def rel(a, b):
    return float((a - b).norm() / b.norm())


def alone(calls, threads):
    """The library's stem_prefill alone on the kept q, k, v: seconds, and
    each call's block mask (for FlexAttention under the same masks)."""
    p = st.resolve_params(None, {"stem_threads": threads}, "bf16")
    f = _lib.func("stem_prefill")
    total, masks = 0.0, []
    for _, q, k, v in calls:
        b, hq, n, d = q.shape
        out = torch.empty((n, hq, d), dtype=torch.float32)
        qb = (n + p.block - 1) // p.block
        mask = torch.empty((hq, qb, qb), dtype=torch.uint8)
        vq, vk, vv = (stem_attn._tensors.view3(x[0], "x") for x in (q, k, v))
        to = _abi.stem_tensor(out.data_ptr(), _abi.DTYPE["F32"], hq, n, d, d,
                              hq * d)
        t0 = time.perf_counter()
        s = f(C.byref(p), C.byref(vq.t), C.byref(vk.t), C.byref(vv.t),
              C.byref(to), None, None, C.c_void_p(mask.data_ptr()))
        total += time.perf_counter() - t0
        if s != 0:
            raise stem_attn.StemError(s, "stem_prefill")
        masks.append(mask.bool())
    return total, masks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--sizes", default="16k,32k")
    ap.add_argument("--check", type=int, default=8192,
                    help="tokens of the logits checks (0: none)")
    ap.add_argument("--flex", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    isa = C.c_int(0)
    s = _lib.func("stem_isa_active")(C.byref(isa))
    if s != 0:
        sys.exit("stem: STEM_ISA=%s: %s" % (os.environ.get("STEM_ISA"),
                                             stem_attn.StemError(s)))
    sizes = [SIZES[x] for x in a.sizes.split(",") if x]
    n_max = max(sizes + [a.check, 4096])
    print("stem %s (isa %s), torch %s, transformers %s, %d threads; "
          "Llama-shaped, %d layers, bf16, random weights" % (
              stem_attn.version(), _lib.func("stem_isa_name")(isa.value)
              .decode(), torch.__version__, transformers.__version__,
              a.threads, a.layers))
    AttentionInterface.register("zeros", zeros_attention)
    AttentionInterface.register("stem_timed", timed_stem)
    AttentionInterface.register("stem_masked_ref", masked_reference)
    AttentionInterface.register("flex_stem_masks", flex_timed)
    from transformers.masking_utils import AttentionMaskInterface
    for name in ("zeros", "stem_timed", "stem_masked_ref", "flex_stem_masks"):
        AttentionMaskInterface.register(name, st.mask_function)
    FLEX["use"] = a.flex
    model = build_model(a.layers, n_max)
    g = torch.Generator().manual_seed(1)

    if a.check:
        ids = torch.randint(0, 4096, (1, a.check), generator=g)
        res = {}
        for name in ("sdpa", "eager", "stem_dense", "stem",
                     "stem_masked_ref"):
            if name == "eager" and a.check > 8192:
                continue
            set_attn(model, name)
            t0 = time.perf_counter()
            res[name] = logits(model, ids)
            print("  logits %-16s %6.2f s" % (name, time.perf_counter() - t0))
        print("check at %d tokens (relative L2 of the logits):" % a.check)
        if "eager" in res:
            print("  eager      vs sdpa: %.3e   (bf16 rounding level)"
                  % rel(res["eager"], res["sdpa"]))
        print("  stem_dense vs sdpa: %.3e" % rel(res["stem_dense"],
                                                 res["sdpa"]))
        print("  stem vs %s under stem's masks: %.3e" % (
            "FlexAttention" if a.flex else "SDPA", rel(res["stem"],
                                                       res["stem_masked_ref"])))
        print("  stem       vs sdpa: %.3e   (what the sparsity changes)"
              % rel(res["stem"], res["sdpa"]))
        sys.stdout.flush()

    warm = torch.randint(0, 4096, (1, 1024), generator=g)
    for name in ("zeros", "sdpa", "stem_timed"):
        set_attn(model, name)
        forward(model, warm)
    for n in sizes:
        ids = torch.randint(0, 4096, (1, n), generator=g)
        t = {}
        set_attn(model, "zeros")
        t["zeros"] = forward(model, ids)
        set_attn(model, "sdpa")
        t["sdpa"] = forward(model, ids)
        set_attn(model, "stem_timed")
        CALLS.clear()
        KEEP["on"] = True
        t["stem"] = forward(model, ids)
        KEEP["on"] = False
        calls = sum(c[0] for c in CALLS)
        t["alone"], masks = alone(CALLS, a.threads)
        if a.flex:
            for i, m in enumerate(masks):
                MASKS[i] = flex_block_mask(m, n)
            set_attn(model, "flex_stem_masks")
            forward(model, ids)  # compiles
            t["flex"] = forward(model, ids)
        CALLS.clear()
        bound = t["zeros"] + 1.05 * t["alone"]
        kept = sum(float(m.float().mean()) for m in masks) / len(masks)
        print("\n%dK tokens (%d layers; stem keeps %.1f%% of the block pairs "
              "it scores):" % (n // 1024, a.layers, 100 * kept))
        print("  non-attention (zeros)  %8.2f s" % t["zeros"])
        print("  sdpa                   %8.2f s" % t["sdpa"])
        if "flex" in t:
            print("  FlexAttention, stem's masks %5.2f s" % t["flex"])
        print("  stem                   %8.2f s   bound %.2f s (non-attention "
              "%.2f + attention alone %.2f + 5%%)%s" % (
                  t["stem"], bound, t["zeros"], t["alone"],
                  "" if t["stem"] <= bound else "  ABOVE THE BOUND"))
        print("  stem's attention calls %8.2f s   glue %.3f s = %.1f%% of the "
              "attention alone" % (calls, calls - t["alone"],
                                   100 * (calls - t["alone"]) / t["alone"]))
        print("  sdpa / stem: %.2fx%s" % (
            t["sdpa"] / t["stem"], "   flex / stem: %.2fx" %
            (t["flex"] / t["stem"]) if "flex" in t else ""))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
