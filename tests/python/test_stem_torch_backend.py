"""stem_attn.torch, the transformers attention backend, called as
transformers calls its attention functions (module, query [B, Hq, Lq, d],
key/value [B, Hkv, Lk, d], attention_mask, dropout, scaling, is_causal,
**kwargs -> ([B, Lq, Hq, d], None)), against the package's own prefill and
dense results byte for byte.  transformers itself is not needed: the module
is a stand-in with the attributes attention functions read."""
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: "
                            "the torch backend is not tested")

import stem_attn  # noqa: E402
import stem_attn.torch as st  # noqa: E402

HQ, HKV, D, B = 4, 2, 32, 16      # block 16: a 1024-token prompt is sparse
SETTINGS = {"stem_block": B, "stem_stride": 4}


def module(**config):
    """What transformers' attention layers hand their attention function."""
    cfg = types.SimpleNamespace(**{**SETTINGS, **config})
    return types.SimpleNamespace(config=cfg, is_causal=True,
                                 num_key_value_groups=HQ // HKV,
                                 training=False)


def qkv(n, batch=1, dtype=torch.bfloat16, seed=0):
    """q [batch, HQ, n, D] as transformers makes it (a transposed view of
    [batch, n, HQ, D]), k and v [batch, HKV, n, D] contiguous."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, n, HQ, D, generator=g).to(dtype).transpose(1, 2)
    k = torch.randn(batch, HKV, n, D, generator=g).to(dtype)
    v = torch.randn(batch, HKV, n, D, generator=g).to(dtype)
    return q, k, v


def as_torch(out, dtype):
    """A reference out [Hq, Lq, d] float32 -> [Lq, Hq, d] in dtype."""
    return torch.from_numpy(out).transpose(0, 1).to(dtype)


def compute(dtype):
    return "bf16" if dtype == torch.bfloat16 else "f32"


def ref_prefill(q, k, v, dtype, **kw):
    return stem_attn.prefill(q, k, v, block=B, stride=4,
                             compute=compute(dtype), **kw)


def ref_dense(q, k, v, dtype):
    return stem_attn.dense(q, k, v, block=B, stride=4, compute=compute(dtype))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_prefill_equals_stem_prefill(dtype):
    q, k, v = qkv(1024, dtype=dtype)
    out, w = st.attention_forward(module(), q, k, v, None, dropout=0.0,
                                  scaling=D ** -0.5)
    assert w is None
    assert out.shape == (1, 1024, HQ, D) and out.dtype == dtype
    assert out.is_contiguous()
    ref = ref_prefill(q[0], k[0], v[0], dtype)
    assert 0 < ref.mask.mean() < 0.6  # the selection really drops blocks
    assert torch.equal(out[0], as_torch(ref.out, dtype))
    dense = ref_dense(q[0], k[0], v[0], dtype)
    assert not torch.equal(out[0], as_torch(dense.out, dtype))
    d_out, _ = st.dense_attention_forward(module(), q, k, v, None)
    assert torch.equal(d_out[0], as_torch(dense.out, dtype))


def test_batch_of_two_runs_each_sequence():
    q, k, v = qkv(512, batch=2, seed=3)
    out, _ = st.attention_forward(module(), q, k, v, None)
    for i in range(2):
        ref = ref_prefill(q[i], k[i], v[i], torch.bfloat16)
        assert torch.equal(out[i], as_torch(ref.out, torch.bfloat16))
    assert not torch.equal(out[0], out[1])
    # the reused float32 workspace never leaks into a returned tensor
    kept = out.clone()
    other, _ = st.attention_forward(module(), q[1:], k[1:], v[1:], None)
    assert torch.equal(out, kept) and other.data_ptr() != out.data_ptr()
    st.release_workspace()
    again, _ = st.attention_forward(module(), q, k, v, None)
    assert torch.equal(again, kept)


def test_chunked_prefill_with_kv_history():
    """A chunk of 256 queries after 768 cached tokens (offset a multiple of
    the block), and a ragged last chunk of 200: each equals the library's
    prefill of that chunk over the whole history."""
    q, k, v = qkv(1024, seed=5)
    for start, end in ((768, 1024), (824, 1024), (512, 712)):
        qc = q[:, :, start:end]
        kc, vc = k[:, :, :end], v[:, :, :end]
        out, _ = st.attention_forward(module(), qc, kc, vc, None)
        off = end - (end - start)
        if off % B == 0:
            ref = ref_prefill(qc[0], kc[0], vc[0], torch.bfloat16)
        else:  # inside a block: exact attention
            ref = ref_dense(qc[0], kc[0], vc[0], torch.bfloat16)
        assert torch.equal(out[0], as_torch(ref.out, torch.bfloat16)), \
            (start, end)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_decode_steps_are_exact(dtype):
    q, k, v = qkv(301, dtype=dtype, seed=7)
    for n in (299, 300, 301):  # one new token over n - 1 cached ones
        qd = q[:, :, n - 1:n]
        out, _ = st.attention_forward(module(), qd, k[:, :, :n], v[:, :, :n],
                                      None)
        ref = ref_dense(qd[0], k[0, :, :n], v[0, :, :n], dtype)
        assert out.shape == (1, 1, HQ, D)
        assert torch.equal(out[0], as_torch(ref.out, dtype))


def test_settings_from_config_and_kwargs():
    q, k, v = qkv(1024, seed=9)
    a, _ = st.attention_forward(module(stem_alpha=0.3), q, k, v, None)
    ref = ref_prefill(q[0], k[0], v[0], torch.bfloat16, alpha=0.3)
    assert torch.equal(a[0], as_torch(ref.out, torch.bfloat16))
    # a keyword argument of the call wins over the config
    b, _ = st.attention_forward(module(stem_alpha=0.9), q, k, v, None,
                                stem_alpha=0.3, stem_threads=1)
    assert torch.equal(a, b)
    base = ref_prefill(q[0], k[0], v[0], torch.bfloat16)
    assert not np.array_equal(ref.mask, base.mask)
    with pytest.raises(TypeError, match="stem_alfa"):
        st.attention_forward(module(), q, k, v, None, stem_alfa=0.3)


def test_plain_causal_4d_masks_are_honoured():
    q, k, v = qkv(512, seed=11)
    n = 512
    causal = torch.ones(n, n, dtype=torch.bool).tril()[None, None]
    a, _ = st.attention_forward(module(), q, k, v, causal)
    b, _ = st.attention_forward(module(), q, k, v, None)
    assert torch.equal(a, b)
    fmin = torch.finfo(torch.bfloat16).min
    addm = torch.zeros(1, 1, n, n, dtype=torch.bfloat16).masked_fill(
        ~causal, fmin)
    c, _ = st.attention_forward(module(), q, k, v, addm)
    assert torch.equal(a, c)
    # the check is remembered per tensor: a change in place is seen
    causal[0, 0, 300, 2] = False
    with pytest.raises(st.UnsupportedAttention, match="plain causal"):
        st.attention_forward(module(), q, k, v, causal)
    ones = torch.ones(1, n, dtype=torch.long)  # a raw 2-d mask, no padding
    d, _ = st.attention_forward(module(), q, k, v, ones)
    assert torch.equal(a, d)


def test_what_it_cannot_honour_is_refused():
    q, k, v = qkv(256, seed=13)
    m = module()
    n = 256
    pad = torch.ones(1, n, dtype=torch.long)
    pad[0, :3] = 0
    causal = torch.ones(n, n, dtype=torch.bool).tril()[None, None]
    window = causal & ~torch.ones(n, n, dtype=torch.bool).tril(-64)
    holed = causal.clone()
    holed[0, 0, 200, 5] = False
    soft = torch.zeros(1, 1, n, n).masked_fill(~causal, -1.0)
    cases = [
        (dict(attention_mask=pad), "padding mask"),
        (dict(attention_mask=window), "other than the plain causal"),
        (dict(attention_mask=holed), "other than the plain causal"),
        (dict(attention_mask=soft), "other than the plain causal"),
        (dict(dropout=0.1), "dropout"),
        (dict(scaling=0.5), "scaling"),
        (dict(is_causal=False), "non-causal"),
        (dict(sliding_window=64), "sliding window"),
        (dict(softcap=30.0), "softcapping"),
    ]
    for extra, words in cases:
        args = dict(attention_mask=None)
        args.update(extra)
        mask = args.pop("attention_mask")
        with pytest.raises(st.UnsupportedAttention, match=words):
            st.attention_forward(m, q, k, v, mask, **args)
        with pytest.raises(st.UnsupportedAttention, match=words):
            st.dense_attention_forward(m, q, k, v, mask, **args)
    with pytest.raises(st.UnsupportedAttention, match="fewer keys"):
        st.attention_forward(m, q, k[:, :, :100], v[:, :, :100], None)
    with pytest.raises(st.UnsupportedAttention, match="dtype"):
        st.attention_forward(m, q.to(torch.int32), k, v, None)
    qg = q.detach().float().requires_grad_()
    with pytest.raises(st.UnsupportedAttention, match="backpropagation"):
        st.attention_forward(m, qg, k.float(), v.float(), None)
    with torch.no_grad():  # inference on such tensors is fine
        st.attention_forward(m, qg, k.float(), v.float(), None)


def test_mask_function_builds_no_mask():
    assert st.mask_function(batch_size=1, kv_length=10) is None
    assert st.mask_function(attention_mask=torch.ones(2, 10)) is None
    with pytest.raises(st.UnsupportedAttention, match="padding"):
        st.mask_function(attention_mask=torch.tensor([[0, 1, 1]]))
    with pytest.raises(st.UnsupportedAttention, match="sliding"):
        st.mask_function(local_size=4)
    with pytest.raises(st.UnsupportedAttention, match="only the plain"):
        st.mask_function(mask_function=lambda b, h, q, k: k <= q)


def test_fp16_inputs_run_in_the_f32_mode():
    q, k, v = qkv(512, dtype=torch.float16, seed=17)
    out, _ = st.attention_forward(module(), q, k, v, None)
    assert out.dtype == torch.float16
    ref = stem_attn.prefill(q[0], k[0], v[0], block=B, stride=4)
    assert torch.equal(out[0], as_torch(ref.out, torch.float16))


def test_register_with_transformers_interfaces(monkeypatch):
    """register() against stand-ins of transformers' two registries (the
    real ones are classes with a register(name, fn) classmethod), and the
    mask function accepting transformers' own causal mask function."""
    seen = {}

    class Registry:
        def __init__(self, kind):
            self.kind = kind

        def register(self, name, fn):
            seen[(self.kind, name)] = fn

    def causal_mask_function(b, h, q, kv):
        return kv <= q

    tf = types.ModuleType("transformers")
    tf.AttentionInterface = Registry("attention")
    mu = types.ModuleType("transformers.masking_utils")
    mu.AttentionMaskInterface = Registry("mask")
    mu.causal_mask_function = causal_mask_function
    tf.masking_utils = mu
    monkeypatch.setitem(__import__("sys").modules, "transformers", tf)
    monkeypatch.setitem(__import__("sys").modules,
                        "transformers.masking_utils", mu)
    assert st.register() is True
    assert seen == {("attention", "stem"): st.attention_forward,
                    ("attention", "stem_dense"): st.dense_attention_forward,
                    ("mask", "stem"): st.mask_function,
                    ("mask", "stem_dense"): st.mask_function}
    assert st.mask_function(mask_function=causal_mask_function,
                            attention_mask=None) is None
    with pytest.raises(st.UnsupportedAttention, match="only the plain"):
        st.mask_function(mask_function=lambda b, h, q, kv: kv <= q)
