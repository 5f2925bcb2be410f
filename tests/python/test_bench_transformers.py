"""bench/bench_transformers.py at tiny sizes: its reference under stem's own
block masks, its stem_prefill alone, and a whole run of the script on
bench/tiny_llama.py (transformers' attention calls without transformers;
FlexAttention where torch has it, "flex: not available" where not)."""
import os
import re
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: "
                            "the transformers benchmark is not tested")

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, BENCH)

import bench_transformers as bt  # noqa: E402
import stem_attn  # noqa: E402
import stem_attn.torch as st  # noqa: E402

HQ, HKV, D = 4, 2, 32
SETTINGS = {"stem_block": 16, "stem_stride": 4}  # sparse at 1024 tokens


def module():
    return types.SimpleNamespace(
        config=types.SimpleNamespace(**SETTINGS), is_causal=True,
        num_key_value_groups=HQ // HKV, training=False, layer_idx=0)


def qkv(n=1024, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, n, HQ, D, generator=g).bfloat16().transpose(1, 2)
    k = torch.randn(1, HKV, n, D, generator=g).bfloat16()
    v = torch.randn(1, HKV, n, D, generator=g).bfloat16()
    return q, k, v


def rel(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_reference_applies_stems_own_mask():
    bt.FLEX["ref"] = None  # the definition under the mask (block 16)
    bt.SEEN.clear()
    q, k, v = qkv()
    ref, _ = bt.masked_reference(module(), q, k, v, None)
    assert ref.shape == (1, 1024, HQ, D)
    assert bt.SEEN and bt.SEEN[0] < 0.9          # blocks were dropped
    out, _ = st.attention_forward(module(), q, k, v, None)
    dense, _ = st.dense_attention_forward(module(), q, k, v, None)
    near = rel(out, ref)
    assert near < 1e-2                           # bf16 rounding apart
    assert rel(dense, ref) > 10 * near           # the mask matters


def test_alone_runs_the_backends_call():
    q, k, v = qkv(seed=1)
    bt.CALLS.clear()
    bt.KEEP["on"] = True
    try:
        bt.timed_stem(module(), q, k, v, None)
    finally:
        bt.KEEP["on"] = False
    assert len(bt.CALLS) == 1 and bt.CALLS[0][0] > 0
    t, masks = bt.alone(bt.CALLS)
    bt.CALLS.clear()
    ref = stem_attn.prefill(q[0], k[0], v[0], block=16, stride=4,
                            compute="bf16")
    assert t > 0
    assert np.array_equal(masks[0], ref.mask)
    assert bt.kept(ref.mask) == pytest.approx(
        ref.mask.sum() / (HQ * 64 * 65 / 2))
    assert bt.kept(np.tril(np.ones((2, 8, 8), np.uint8))) == 1.0


def test_sizes_must_be_whole_blocks():
    assert bt.tokens("16k") == 16384 and bt.tokens("256") == 256
    for bad in ("100", "0", "-128"):
        with pytest.raises(Exception, match="multiple of 128"):
            bt.tokens(bad)


def test_a_whole_run_on_the_tiny_model(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [
        "bench_transformers.py", "--model", "tiny", "--layers", "1",
        "--threads", "2", "--sizes", "512", "--check", "512", "--hidden",
        "128", "--mlp", "256", "--heads", "2/1", "--head-dim", "64",
        "--vocab", "256", "--no-zeros"])
    threads = torch.get_num_threads()
    try:
        bt.main()
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    if bt.flex_api()[0] is not None:
        assert "flex: torch.nn.attention.flex_attention" in out
    else:
        assert "flex: not available (torch %s has no " % torch.__version__ \
            in out
    dense = float(re.search(r"stem_dense vs sdpa: (\S+)", out).group(1))
    masked = float(re.search(r"stem +vs (flex|the definition) under stem's "
                             r"masks: (\S+)", out).group(2))
    assert 0 < dense < 3e-2 and 0 < masked < 3e-2
    assert re.search(r"sdpa / stem \d+\.\d\dx +bound \d+\.\d\d s: "
                     r"(held|ABOVE)", out)
    assert re.search(r"^\| 512 \| [\d.]+ \| [\d.]+ \| ", out, re.M)
