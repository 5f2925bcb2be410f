"""stem.prefill / dense / sparse / budget / explain against the C
library's own results through the `stem` CLI, and invariants."""
import os
import subprocess

import numpy as np
import pytest

import stem_attn as stem
from stio import bf16_to_f32, f32_to_bf16, read_st, stem_binary, write_st

H, G, N, D = 2, 1, 1280, 64


@pytest.fixture(scope="module")
def qkv():
    rng = np.random.default_rng(3)
    return tuple(f32_to_bf16(rng.standard_normal((h, N, D), dtype=np.float32))
                 for h in (H, G, G))


def run_cli(tmp_path, qkv, *args):
    exe = stem_binary()
    if not os.access(exe, os.X_OK):
        pytest.skip("no stem binary at %s" % exe)
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    write_st(str(src), dict(zip("qkv", qkv)))
    subprocess.run([exe, "run", str(src), "-o", str(dst)] + list(args),
                   check=True, stdout=subprocess.DEVNULL)
    return read_st(str(dst))[0]


def test_prefill_is_stem_run_byte_for_byte(tmp_path, qkv):
    r = stem.prefill(*qkv, storage="bf16")
    c = run_cli(tmp_path, qkv)
    assert r.logits.shape == (H, 10, 10) and r.mask.dtype == np.uint8
    for name, got in (("block_logits", r.logits), ("mask", r.mask),
                      ("out", r.out), ("lse", r.lse)):
        np.testing.assert_array_equal(got, c[name].reshape(got.shape),
                                      err_msg=name)


def test_params_follow_the_cli(tmp_path, qkv):
    r = stem.prefill(*qkv, storage="bf16", profile="hpc-ops", alpha=0.5,
                     window=2)
    c = run_cli(tmp_path, qkv, "--profile", "hpc-ops", "--alpha", "0.5",
                "--window", "2")
    np.testing.assert_array_equal(r.mask, c["mask"])
    np.testing.assert_array_equal(r.out, c["out"])


def test_dense_is_stem_run_dense(tmp_path, qkv):
    r = stem.dense(*qkv, storage="bf16")
    c = run_cli(tmp_path, qkv, "--dense")
    np.testing.assert_array_equal(r.out, c["out"])
    np.testing.assert_array_equal(r.lse, c["lse"].reshape(r.lse.shape))


def test_layouts_dtypes_and_sparse_agree(qkv):
    ref = stem.prefill(*qkv, storage="bf16")
    nhd = [x.transpose(1, 0, 2) for x in qkv]  # views: strided, no copy
    r = stem.prefill(*nhd, storage="bf16", layout="nhd")
    np.testing.assert_array_equal(r.out.transpose(1, 0, 2), ref.out)
    np.testing.assert_array_equal(r.lse, ref.lse)
    np.testing.assert_array_equal(r.mask, ref.mask)
    f32 = stem.prefill(*[bf16_to_f32(x) for x in qkv])  # same values, F32
    np.testing.assert_array_equal(f32.mask, ref.mask)
    np.testing.assert_allclose(f32.out, ref.out, rtol=0, atol=1e-6)
    batched = stem.prefill(*[x[None] for x in qkv], storage="bf16")
    np.testing.assert_array_equal(batched.out, ref.out)
    s = stem.sparse(*qkv, ref.mask, storage="bf16")
    np.testing.assert_array_equal(s.out, ref.out)
    np.testing.assert_array_equal(s.lse, ref.lse)
    f64 = stem.prefill(*qkv, storage="bf16", use_f64=True)
    assert f64.out.dtype == np.float64
    assert np.abs(f64.out - ref.out).max() < 1e-4


def test_budget_invariants():
    for kb in (10, 64, 100, 400):
        b = stem.budget(kb)
        assert b.dtype == np.int32 and b.shape == (kb,)
        assert (np.diff(b) <= 0).all() and b[-1] >= 1
        assert b[0] == (kb if kb < 56 else int(b[0]))
        assert b[-1] >= int(0.7 * b[0]) - 1
    assert (stem.budget(10) == 10).all()  # short prompts stay dense
    assert stem.budget(tokens=8192).shape == (64,)
    assert stem.budget(64, prompt_blocks=128).shape == (128,)
    assert (stem.budget(200, alpha=1.0) == stem.budget(200)[0]).all()


def test_explain_agrees_with_the_mask():
    rng = np.random.default_rng(5)
    q = rng.standard_normal((1, 8192, 32), dtype=np.float32)
    k = rng.standard_normal((1, 8192, 32), dtype=np.float32)
    v = rng.standard_normal((1, 8192, 32), dtype=np.float32)
    ref = stem.prefill(q, k, v)
    e = stem.explain(q, k, v, head=0, qblock=60)
    assert len(e) == 61 and e.position == 60
    assert [r["kept"] for r in e] == list(ref.mask[0, 60, :61] == 1)
    assert all("disagrees" not in r["why"] for r in e)
    assert sum(r["why"].startswith("top-k") for r in e) <= e.budget
    assert e.budget == stem.budget(64)[60]
    for r in e:
        assert r["logit"] == ref.logits[0, 60, r["kblock"]]
        assert abs(r["qk"] + r["value"] - r["logit"]) < 1e-6
    text = str(e)
    assert "budget %d" % e.budget in text and "window" in text
    assert len(text.splitlines()) == 5 + 61
    # the summary counts what the rows say
    assert e.kept == sum(r["kept"] for r in e)
    assert e.topk == sum("top-k" in r["why"] for r in e) == min(e.budget, 61)
    assert e.candidates == 61
    ranked = stem.explain(q, k, v, head=0, qblock=60, sort="rank")
    assert [r["rank"] for r in ranked] == list(range(1, 62))


def test_errors(qkv):
    q, k, v = qkv
    with pytest.raises(TypeError, match="storage='bf16'"):
        stem.prefill(q, k, v)
    with pytest.raises(TypeError, match="unknown parameter"):
        stem.prefill(q, k, v, storage="bf16", alhpa=0.5)
    with pytest.raises(stem.StemError, match="status"):
        stem.prefill(q, k, v, storage="bf16", stride=7)
    with pytest.raises(stem.StemError) as e:
        stem.prefill(np.zeros((3, N, D), np.float32),
                     np.zeros((2, N, D), np.float32),
                     np.zeros((2, N, D), np.float32))
    assert e.value.status != 0
    with pytest.raises(ValueError, match="profile"):
        stem.prefill(q, k, v, storage="bf16", profile="nope")
    assert stem.params("hpc-ops", lambda_mag=0.5)["value_weight"] == 0.5
    assert stem.params(compute="bf16")["compute"] == 1
