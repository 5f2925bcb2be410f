"""stem_attn.to_bf16 / from_bf16: float32 <-> bfloat16 bits, round to
nearest even, as torch and the library's bf16 mode round."""
import numpy as np
import pytest

import stem_attn


def wide_floats(n=200000, seed=0):
    """float32 values over the whole exponent range, both signs, plus the
    edges: ties, the largest finite values, infinities, zeros, subnormals."""
    rng = np.random.default_rng(seed)
    m = rng.uniform(1, 2, n).astype(np.float32)
    e = rng.integers(-149, 128, n).astype(np.float32)
    with np.errstate(over="ignore", under="ignore"):
        x = (m * np.exp2(e)).astype(np.float32) * rng.choice([-1, 1], n)
    edge = np.array([1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8), 3.3895314e38,
                     3.4028235e38, -3.4028235e38, np.inf, -np.inf, 0.0,
                     -0.0, 1e-45, 1e-40, 2**-126, 2**-133 * 1.5],
                    dtype=np.float32)
    return np.concatenate([x.astype(np.float32), edge])


def test_hand_values():
    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-7 + 2**-9, -2.0,
                  3.4028235e38, np.inf, -0.0], np.float32)
    assert [hex(b) for b in stem_attn.to_bf16(x)] == [
        "0x3f80",   # exact
        "0x3f80",   # tie: to the even neighbour below
        "0x3f82",   # tie: to the even neighbour above
        "0x3f81",   # above the tie: up
        "0xc000", "0x7f80", "0x7f80", "0x8000"]  # past the largest: inf
    nan = stem_attn.to_bf16(np.array([np.nan, -np.nan], np.float32))
    assert np.isnan(stem_attn.from_bf16(nan)).all()
    assert stem_attn.to_bf16(np.zeros((2, 3))).shape == (2, 3)


def test_round_trip_is_exact_on_bf16_values():
    bits = np.arange(0, 1 << 16, dtype=np.uint32).astype(np.uint16)
    f = stem_attn.from_bf16(bits)
    assert f.dtype == np.float32
    ok = ~np.isnan(f)
    assert np.array_equal(stem_attn.to_bf16(f)[ok], bits[ok])
    assert np.array_equal(stem_attn.from_bf16(bits.view(np.int16)), f,
                          equal_nan=True)
    with pytest.raises(TypeError, match="uint16"):
        stem_attn.from_bf16(f)


def test_the_library_reads_the_bits_as_the_values():
    rng = np.random.default_rng(2)
    x = [rng.standard_normal((2, 256, 32)).astype(np.float32) for _ in "qkv"]
    bits = [stem_attn.to_bf16(a) for a in x]
    vals = [stem_attn.from_bf16(b) for b in bits]
    a = stem_attn.prefill(*bits, storage="bf16", block=16, stride=4)
    b = stem_attn.prefill(*vals, block=16, stride=4)
    assert np.array_equal(a.out, b.out) and np.array_equal(a.mask, b.mask)
    # the bf16 compute mode rounds float32 inputs the same way
    c = stem_attn.prefill(*x, block=16, stride=4, compute="bf16")
    d = stem_attn.prefill(*bits, storage="bf16", block=16, stride=4,
                          compute="bf16")
    assert np.array_equal(c.out, d.out)


def test_same_bits_as_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    x = wide_floats()
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy()
    assert np.array_equal(stem_attn.to_bf16(x), want.view(np.uint16))
    back = torch.from_numpy(want).view(torch.bfloat16).float().numpy()
    assert np.array_equal(stem_attn.from_bf16(want), back)
