"""torch paths of the stem_attn package, with Debian's python3-torch (which
make test installs) or any PyTorch; skipped with a message where torch is
missing, the GPU-kernel test where CUDA is."""
import numpy as np
import pytest

import stem_attn as stem
import stem_attn.testing  # noqa: F401
from stem_attn import _tensors
from stio import bf16_to_f32, conformance

torch = pytest.importorskip("torch", reason="PyTorch is not installed "
                            "(tools/install-deps.sh test installs Debian's)")


def t_bf16(bits):
    """uint16 bfloat16 bits -> a torch.bfloat16 tensor (same bits)."""
    return torch.from_numpy(np.array(bits).view(np.int16)).view(
        torch.bfloat16)


@pytest.fixture(scope="module")
def s2():
    i, g, m = conformance("s2", "flex")
    return {n: t_bf16(i[n]) for n in "qkv"}, g, m


def test_bf16_tensors_are_read_in_place(s2):
    qkv, g, m = s2
    v = _tensors.view3(qkv["q"], "q")
    assert v.t.data == qkv["q"].data_ptr()  # zero-copy
    assert v.t.dtype == 1  # STEM_BF16
    p = qkv["q"].permute(1, 0, 2)  # [N, H, d] view, last axis contiguous
    assert _tensors.view3(p, "q", "nhd").t.data == qkv["q"].data_ptr()
    odd = qkv["q"].transpose(1, 2)  # last axis strided: copied
    assert _tensors.view3(odd, "q").t.data != qkv["q"].data_ptr()
    h = qkv["q"].to(torch.float16)  # fp16 read in place too
    vh = _tensors.view3(h.permute(1, 0, 2), "q", "nhd")
    assert vh.t.data == h.data_ptr() and vh.t.dtype == 2  # STEM_F16
    assert (vh.t.heads, vh.t.tokens, vh.t.head_stride, vh.t.token_stride) \
        == (h.shape[0], h.shape[1], h.stride(0), h.stride(1))


def test_prefill_from_torch_equals_numpy(s2):
    qkv, g, m = s2
    i, _, _ = conformance("s2", "flex")
    a = stem.prefill(qkv["q"], qkv["k"], qkv["v"])
    b = stem.prefill(i["q"], i["k"], i["v"], storage="bf16")
    np.testing.assert_array_equal(a.out, b.out)
    np.testing.assert_array_equal(a.mask, g["mask"])
    f16 = [x.to(torch.float16) for x in qkv.values()]
    c = stem.prefill(*f16)  # F16 tensors
    np.testing.assert_array_equal(c.mask, b.mask)
    nhd = [x.permute(1, 0, 2) for x in qkv.values()]
    d = stem.prefill(*nhd, layout="nhd")
    np.testing.assert_array_equal(d.out.transpose(1, 0, 2), b.out)


def test_check_with_torch_tensors(s2):
    qkv, g, m = s2
    out = t_bf16(g["out"])
    lse = torch.from_numpy(g["lse"].copy())
    mask = torch.from_numpy(g["mask"].copy()).bool()
    r = stem.check(qkv["q"], qkv["k"], qkv["v"], mask=mask, out=out,
                   lse=lse, heads=1)
    assert r, str(r)
    assert r.options["gpu_dtype"] == 1  # bf16, from the tensors' dtype
    bad = out.clone()
    bad[0, 333] = 0
    with pytest.raises(AssertionError, match="row 333"):
        stem.testing.assert_matches_reference(
            qkv["q"], qkv["k"], qkv["v"], mask=mask, out=bad, lse=lse,
            heads=1)


def test_ml_dtypes_bfloat16_arrays(s2):
    ml = pytest.importorskip("ml_dtypes")
    i, g, m = conformance("s2", "flex")
    arrs = [i[n].view(ml.bfloat16) for n in "qkv"]
    a = stem.prefill(*arrs)
    b = stem.prefill(i["q"], i["k"], i["v"], storage="bf16")
    np.testing.assert_array_equal(a.out, b.out)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_cuda_kernel_suite(s2):
    """A GPU kernel: torch SDPA on the GPU with stem's block mask expanded
    to tokens, in bf16.  It passes; with one row zeroed or the mask
    ignored it fails naming the fault."""
    qkv, g, m = s2
    q, k, v = (x.cuda() for x in qkv.values())
    ref = stem.prefill(q, k, v)  # CUDA tensors: copied to the CPU
    n, b = q.shape[1], 128
    blk = torch.from_numpy(ref.mask).cuda().bool()  # [H, Qb, Kb]
    tok = blk.repeat_interleave(b, 1).repeat_interleave(b, 2)[:, :n, :n]
    causal = torch.ones(n, n, dtype=torch.bool, device="cuda").tril()
    sdpa = torch.nn.functional.scaled_dot_product_attention
    out = sdpa(q, k, v, attn_mask=tok & causal)
    assert out.is_cuda and out.dtype == torch.bfloat16
    stem.testing.assert_matches_reference(q, k, v, mask=blk, out=out)
    zero = out.clone()
    zero[1, 4321] = 0
    with pytest.raises(AssertionError, match="out row") as e:
        stem.testing.assert_matches_reference(q, k, v, mask=blk, out=zero)
    assert "row 4321" in str(e.value)
    dense = sdpa(q, k, v, is_causal=True)
    with pytest.raises(AssertionError, match="ignores the mask"):
        stem.testing.assert_matches_reference(q, k, v, mask=blk, out=dense)
