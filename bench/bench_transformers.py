#!/usr/bin/env python3
"""bench_transformers.py - a whole model's prefill on the CPU with
attn_implementation="stem" against "sdpa" and against FlexAttention given
stem's own block masks: every ratio and the bound from one run.

    python3 bench/bench_transformers.py [--layers 4] [--threads T]
        [--sizes 16k,32k,64k,128k] [--check 8192] [--no-zeros] [--no-flex]
        [--model auto|transformers|tiny] [--hidden 4096] [--mlp 14336]
        [--heads 32/8] [--head-dim 128] [--vocab 4096]

The model is Llama-shaped with random weights (defaults: Llama-8B's layer,
hidden 4096, 32 query and 8 key/value heads of d 128, MLP 14336, bf16; a
small vocabulary, since the LM head is not what is measured), built from a
config: nothing is fetched.  --model transformers builds it with Hugging
Face transformers (LlamaForCausalLM); --model tiny with tiny_llama.py
beside this script, which calls the attention functions as transformers
does (for machines without transformers); auto takes transformers where it
is installed.

--check N first compares the logits on an N-token prompt (relative L2;
the share of the causal block pairs stem keeps there is printed: below
7,168 tokens, 56 blocks of 128, it keeps them all):
  eager vs sdpa         two exact attentions: the bf16 rounding level
  stem_dense vs sdpa    the library's exact attention: at that level
  stem vs flex          stem against FlexAttention (uncompiled: its
                        reference implementation) given stem's own block
                        mask of each layer; where torch has no
                        FlexAttention, against attention by its definition
                        (float32) under that mask
  stem vs sdpa          what dropping blocks changes

Then for each size, one forward of the base model (use_cache=False,
torch.no_grad) each, after a warm-up at 1024 tokens (or the smallest size):
  sdpa    transformers' "sdpa" (causal, grouped heads)
  zeros   attention replaced by zeros: the model's non-attention time
          (--no-zeros: that time is taken as stem's forward less its
          attention calls instead)
  stem    the stem backend, each attention call timed and its q, k, v kept
  alone   the library's stem_prefill alone on those q, k, v (ctypes, the
          output buffer allocated and touched once): stem's attention
          without the integration
  flex    FlexAttention, torch.compile'd (the compile on layer 0's q, k, v
          before the forward, not counted), given the block mask stem
          chose for each layer
and prints, beside each time, the ratios sdpa / stem and flex / stem, the
bound for stem (non-attention + attention alone + 5% of it: the
integration may cost 5% of the attention), the glue (stem's calls less
the attention alone), and the logits of stem against flex and against
sdpa at that size.  A markdown table closes the run.
STEM_ISA=amx in the environment selects the library's AMX kernels.
"""
import argparse
import ctypes as C
import importlib.util
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, HERE)

import stem_attn  # noqa: E402
import stem_attn.torch as st  # noqa: E402
from stem_attn import _abi, _lib  # noqa: E402

import tiny_llama  # noqa: E402
from bench_torch import BLOCK, cpu_line, flex_block_mask  # noqa: E402

T0 = time.perf_counter()


def tokens(text):
    """'16k' -> 16384, '2048' -> 2048; a multiple of the block."""
    t = text.strip().lower()
    n = int(t[:-1]) * 1024 if t.endswith("k") else int(t)
    if n <= 0 or n % BLOCK:
        raise argparse.ArgumentTypeError("%r: tokens must be a positive "
                                         "multiple of %d" % (text, BLOCK))
    return n


def label(n):
    return "%dK" % (n // 1024) if n % 1024 == 0 else str(n)


def say(text=""):
    print(text)
    sys.stdout.flush()


# ----------------------------------------------------------------- model
def build_model(a, n_max):
    """(model, register(name, fn), kind) with random bf16 weights."""
    hq, hkv = (int(x) for x in a.heads.split("/"))
    shape = dict(hidden_size=a.hidden, intermediate_size=a.mlp,
                 num_attention_heads=hq, num_key_value_heads=hkv,
                 head_dim=a.head_dim, num_hidden_layers=a.layers,
                 vocab_size=a.vocab)
    torch.manual_seed(0)
    if a.model == "tiny":
        model = tiny_llama.CausalLM(tiny_llama.config(**shape))
        return model.to(torch.bfloat16).eval(), tiny_llama.ATTENTION.register
    from transformers import AttentionInterface, LlamaConfig, LlamaForCausalLM
    from transformers.masking_utils import AttentionMaskInterface
    cfg = LlamaConfig(max_position_embeddings=n_max, rope_theta=500000.0,
                      tie_word_embeddings=False, **shape)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()

    def register(name, fn):
        AttentionInterface.register(name, fn)
        AttentionMaskInterface.register(name, st.mask_function)
    return model, register


def set_attn(model, name):
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
    else:
        model.config._attn_implementation = name


# ------------------------------------------------------ extra backends
CALLS = []      # (seconds, stem_params, query, key, value) of the timed
#                 stem run's attention calls
SEEN = []       # kept fraction of each mask the check's reference used
KEEP = {"on": False}
MASKS = {}      # layer index -> FlexAttention BlockMask of stem's mask
FLEX = {}       # "api": flex_attention or None; "ref": the same for the
#                 check, None once it failed; "fn": api torch.compile'd


def flex_api():
    """torch's flex_attention, or None and why not."""
    try:
        from torch.nn.attention.flex_attention import flex_attention
    except ImportError:
        return None, ("torch %s has no torch.nn.attention.flex_attention"
                      % torch.__version__)
    return flex_attention, None


def zeros_attention(module, query, key, value, attention_mask, **kw):
    b, h, n, d = query.shape
    return torch.zeros(b, n, h, d, dtype=query.dtype), None


def call_params(module, query, kw):
    """The stem_params the backend resolves for this call."""
    compute = "bf16" if query.dtype == torch.bfloat16 else "f32"
    return st.resolve_params(getattr(module, "config", None),
                             {k: v for k, v in kw.items()
                              if k.startswith("stem_")}, compute)


def timed_stem(module, query, key, value, attention_mask, **kw):
    t0 = time.perf_counter()
    out = st.attention_forward(module, query, key, value, attention_mask,
                               **kw)
    if KEEP["on"]:
        CALLS.append((time.perf_counter() - t0,
                      call_params(module, query, kw), query, key, value))
    return out


def prefill(p, query, key, value, out):
    """stem_prefill of the first sequence through ctypes, as the backend
    calls it, into out (float32 [Lq, Hq, d]) and a new block mask:
    (seconds of the call, the mask [Hq, Qb, Kb] uint8 numpy)."""
    b, hq, n, d = query.shape
    qb = (n + p.block - 1) // p.block
    mask = torch.zeros((hq, qb, (key.shape[2] + p.block - 1) // p.block),
                       dtype=torch.uint8)
    vq, vk, vv = (st._view(x[0], name) for x, name in
                  ((query, "query"), (key, "key"), (value, "value")))
    to = _abi.stem_tensor(out.data_ptr(), _lib.dtype_code("F32"), hq, n, d, d,
                          hq * d)
    f = _lib.func("stem_prefill")
    t0 = time.perf_counter()
    s = f(C.byref(p), C.byref(vq.t), C.byref(vk.t), C.byref(vv.t),
          C.byref(to), None, None, C.c_void_p(mask.data_ptr()))
    t = time.perf_counter() - t0
    if s != 0:
        raise stem_attn.StemError(s, "stem_prefill")
    return t, mask.numpy()


def kept(mask):
    """The fraction of the causal block pairs a prompt's mask keeps."""
    h, qb, kb = mask.shape
    return float(mask.sum()) / (h * qb * (qb + 1) / 2)


def masked_reference(module, query, key, value, attention_mask, **kw):
    """Attention under stem's own block mask of this call (the backend's
    settings): FlexAttention (its uncompiled reference) where torch has it
    and the block is its 128, else the definition in float32 with the mask
    expanded to tokens."""
    b, hq, n, d = query.shape
    p = call_params(module, query, kw)
    _, mask = prefill(p, query, key, value,
                      torch.empty((n, hq, d), dtype=torch.float32))
    SEEN.append(kept(mask))
    if FLEX["ref"] is not None and p.block == BLOCK:
        out = FLEX["ref"](query, key, value,
                          block_mask=flex_block_mask(torch, mask, n),
                          enable_gqa=True)
    else:
        sel = torch.from_numpy(mask).bool()
        tok = sel.repeat_interleave(p.block, 1)
        tok = tok.repeat_interleave(p.block, 2)
        tok = tok[:, :n, :n] & torch.ones(n, n, dtype=torch.bool).tril()
        out = tiny_llama.math_attention(query.float(), key.float(),
                                        value.float(), query.shape[3] ** -0.5,
                                        tok).to(query.dtype)
    return out.transpose(1, 2).contiguous(), None


def flex_timed(module, query, key, value, attention_mask, **kw):
    out = FLEX["fn"](query, key, value, block_mask=MASKS[module.layer_idx],
                     enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


# ------------------------------------------------------------ measuring
def forward(model, ids):
    """Seconds of one forward of the base model, and its last hidden
    state."""
    with torch.no_grad():
        t0 = time.perf_counter()
        h = model.model(input_ids=ids, use_cache=False).last_hidden_state
        return time.perf_counter() - t0, h


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits.float()


def rel_logits(model, h, ref):
    """Relative L2 of the logits of the hidden states h against ref's,
    4096 positions at a time."""
    num = den = 0.0
    with torch.no_grad():
        for i in range(0, h.shape[1], 4096):
            a = model.lm_head(h[:, i:i + 4096]).float()
            b = model.lm_head(ref[:, i:i + 4096]).float()
            num += float((a - b).pow(2).sum())
            den += float(b.pow(2).sum())
    return (num / den) ** 0.5


def alone(calls):
    """The library's stem_prefill alone on the kept calls' q, k, v, with
    their settings (the output buffer allocated and touched once): seconds,
    and each call's block mask [Hq, Qb, Kb] (uint8 numpy)."""
    b, hq, n, d = calls[0][2].shape
    out = torch.zeros((n, hq, d), dtype=torch.float32)
    total, masks = 0.0, []
    for _, p, q, k, v in calls:
        t, mask = prefill(p, q, k, v, out)
        total += t
        masks.append(mask)
    return total, masks


def check(model, a, g):
    """The logits comparisons at a.check tokens."""
    ids = torch.randint(0, a.vocab, (1, a.check), generator=g)
    res = {}
    names = ["sdpa", "eager", "stem_dense", "stem", "stem_masked_ref"]
    if a.check > 8192:
        names.remove("eager")  # its full score matrices
    SEEN.clear()
    for name in names:
        set_attn(model, name)
        t0 = time.perf_counter()
        try:
            res[name] = logits(model, ids)
        except Exception as e:  # noqa: BLE001 - the reference may fail
            if name != "stem_masked_ref" or FLEX["ref"] is None:
                raise
            say("  FlexAttention's reference failed (%s: %s); the definition "
                "under stem's masks instead" % (type(e).__name__,
                                                 str(e).splitlines()[0][:200]))
            FLEX["ref"] = None
            SEEN.clear()
            res[name] = logits(model, ids)
        say("  logits with %-16s %7.2f s" % (name, time.perf_counter() - t0))

    def rel(x, y):
        return float((res[x] - res[y]).norm() / res[y].norm())
    say("logits at %d tokens, relative L2 (stem keeps %.1f%% of the causal "
        "block pairs there):" % (a.check, 100 * sum(SEEN) / len(SEEN)))
    if "eager" in res:
        say("  eager      vs sdpa: %.2e  (two exact attentions: the bf16 "
            "rounding level)%s" % (rel("eager", "sdpa"), "" if
                                   tiny_llama.HAS_SDPA or a.model != "tiny"
                                   else " [this torch has no SDPA: sdpa is "
                                   "eager]"))
    say("  stem_dense vs sdpa: %.2e" % rel("stem_dense", "sdpa"))
    say("  stem       vs %s under stem's masks: %.2e" % (
        "flex" if FLEX["ref"] is not None else "the definition",
        rel("stem", "stem_masked_ref")))
    say("  stem       vs sdpa: %.2e  (what dropping blocks changes)"
        % rel("stem", "sdpa"))


def measure(model, a, n, g):
    """One size: every forward, its line printed as soon as it is timed.
    Returns the table row's figures."""
    ids = torch.randint(0, a.vocab, (1, n), generator=g)
    r = {"n": n}
    say("\n%s tokens, %d layers  [%.0f s into the run]"
        % (label(n), a.layers, time.perf_counter() - T0))
    set_attn(model, "sdpa")
    r["sdpa"], h_sdpa = forward(model, ids)
    say("  sdpa                      %8.2f s" % r["sdpa"])
    if a.zeros:
        set_attn(model, "zeros")
        r["zeros"], _ = forward(model, ids)
        say("  zeros (non-attention)     %8.2f s" % r["zeros"])
    set_attn(model, "stem_timed")
    CALLS.clear()
    KEEP["on"] = True
    r["stem"], h_stem = forward(model, ids)
    KEEP["on"] = False
    r["calls"] = sum(c[0] for c in CALLS)
    r["alone"], masks = alone(CALLS)
    r["kept"] = sum(kept(m) for m in masks) / len(masks)
    if a.zeros:
        r["non"], how = r["zeros"], "the zeros run"
    else:
        r["non"], how = r["stem"] - r["calls"], "stem's forward less its calls"
    r["bound"] = r["non"] + 1.05 * r["alone"]
    r["glue"] = r["calls"] - r["alone"]
    say("  stem                      %8.2f s   sdpa / stem %.2fx   bound "
        "%.2f s: %s" % (r["stem"], r["sdpa"] / r["stem"], r["bound"],
                        "held" if r["stem"] <= r["bound"] else "ABOVE"))
    say("    bound = non-attention %.2f s (%s) + attention alone %.2f s "
        "+ 5%%" % (r["non"], how, r["alone"]))
    say("    stem's attention calls %.2f s, glue %.3f s = %.1f%% of the "
        "attention alone; stem keeps %.1f%% of the causal block pairs"
        % (r["calls"], r["glue"], 100 * r["glue"] / r["alone"],
           100 * r["kept"]))
    if FLEX["api"] is not None:
        try:
            flex_forward(model, ids, masks, n, r)
            r["flex_vs_stem"] = rel_logits(model, h_stem, r.pop("h_flex"))
        except Exception as e:  # noqa: BLE001 - report, go on
            say("  flex: failed (%s: %s)" % (type(e).__name__,
                                            str(e).splitlines()[0][:200]))
    r["stem_vs_sdpa"] = rel_logits(model, h_stem, h_sdpa)
    say("  logits, relative L2: stem vs flex under stem's masks %s; "
        "stem vs sdpa %.2e" % ("%.2e" % r["flex_vs_stem"] if "flex_vs_stem"
                               in r else "-", r["stem_vs_sdpa"]))
    CALLS.clear()
    say("  row: " + row(r))
    return r


def flex_forward(model, ids, masks, n, r):
    """FlexAttention under stem's masks: compile on layer 0, then time."""
    for i, m in enumerate(masks):
        MASKS[i] = flex_block_mask(torch, m, n)
    if "fn" not in FLEX:
        FLEX["fn"] = torch.compile(FLEX["api"], dynamic=False)
    _, _, q, k, v = CALLS[0]
    t0 = time.perf_counter()
    with torch.no_grad():
        FLEX["fn"](q, k, v, block_mask=MASKS[0], enable_gqa=True)
    compile_s = time.perf_counter() - t0
    set_attn(model, "flex_stem_masks")
    r["flex"], r["h_flex"] = forward(model, ids)
    say("  flex, stem's masks        %8.2f s   flex / stem %.2fx   "
        "(compile %.1f s, not counted)" % (r["flex"], r["flex"] / r["stem"],
                                           compile_s))


def row(r):
    def t(key):
        return "%.2f" % r[key] if key in r else "-"
    flex = "%.2fx" % (r["flex"] / r["stem"]) if "flex" in r else "-"
    return ("| %s | %s | %s | %s | %s | %s | %.3f (%.1f%%) | %.2fx | %s |"
            % (label(r["n"]), t("non"), t("sdpa"), t("flex"), t("stem"),
               t("bound"), r["glue"], 100 * r["glue"] / r["alone"],
               r["sdpa"] / r["stem"], flex))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--sizes", default="16k,32k,64k,128k")
    ap.add_argument("--check", type=int, default=8192,
                    help="tokens of the logits checks (0: none)")
    ap.add_argument("--no-zeros", dest="zeros", action="store_false")
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--model", choices=("auto", "transformers", "tiny"),
                    default="auto")
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--mlp", type=int, default=14336)
    ap.add_argument("--heads", default="32/8")
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=4096)
    a = ap.parse_args()
    try:
        sizes = [tokens(x) for x in a.sizes.split(",") if x]
        if a.check:
            tokens(str(a.check))
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    torch.set_num_threads(a.threads)
    isa = C.c_int(0)
    s = _lib.func("stem_isa_active")(C.byref(isa))
    if s != 0:
        sys.exit("stem: STEM_ISA=%s: %s" % (os.environ.get("STEM_ISA"),
                                             stem_attn.StemError(s)))
    if a.model == "auto":
        a.model = "transformers" if importlib.util.find_spec("transformers") \
            else "tiny"
    FLEX["api"], why = flex_api() if not a.no_flex else (None, "--no-flex")
    FLEX["ref"] = FLEX["api"]
    n_max = max(sizes + [a.check, 1024])
    model, register = build_model(a, n_max)
    if a.model == "transformers":
        what = ("transformers %s LlamaForCausalLM"
                % sys.modules["transformers"].__version__)
    else:
        what = "tiny_llama.py (transformers' calls, not transformers)"
    say("stem %s (isa %s), torch %s, %s; %d threads; %s" % (
        stem_attn.version(), _lib.func("stem_isa_name")(isa.value).decode(),
        torch.__version__, what, a.threads, cpu_line()))
    say("model: %d layers, hidden %d, heads %s of d %d, MLP %d, vocab %d, "
        "bf16, random weights (built in %.1f s)" % (
            a.layers, a.hidden, a.heads, a.head_dim, a.mlp, a.vocab,
            time.perf_counter() - T0))
    say("flex: %s" % ("torch.nn.attention.flex_attention" if FLEX["api"]
                      else "not available (%s)" % why))
    for name, fn in (("stem", st.attention_forward),
                     ("stem_dense", st.dense_attention_forward),
                     ("zeros", zeros_attention), ("stem_timed", timed_stem),
                     ("stem_masked_ref", masked_reference),
                     ("flex_stem_masks", flex_timed)):
        register(name, fn)
    g = torch.Generator().manual_seed(1)
    if a.check:
        check(model, a, g)
    warm = torch.randint(0, a.vocab, (1, min(sizes + [1024])), generator=g)
    for name in ("zeros", "sdpa", "stem_timed"):
        set_attn(model, name)
        forward(model, warm)
    rows = [measure(model, a, n, g) for n in sizes]
    say("\n| tokens | non-attention | sdpa | flex, stem's masks | stem | "
        "bound | glue | sdpa / stem | flex / stem |")
    say("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        say(row(r))


if __name__ == "__main__":
    main()
