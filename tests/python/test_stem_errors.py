"""Errors from Python: StemError subclasses whose message names the
parameter and its range, or the tensor and its dims; values checked before
ctypes could wrap them; integer q/k/v refused; thread counts the OpenMP
runtime cannot honour do not end the interpreter."""
import os
import subprocess
import sys

import numpy as np
import pytest

import stem_attn as stem
from stem_attn import _errors

N, D = 256, 16


@pytest.fixture(scope="module")
def qkv():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, N, D)).astype(np.float32)
    k = rng.standard_normal((1, N, D)).astype(np.float32)
    v = rng.standard_normal((1, N, D)).astype(np.float32)
    return q, k, v


def test_parameter_named_with_its_range(qkv):
    with pytest.raises(stem.StemInputError) as e:
        stem.prefill(*qkv, alpha=2)
    msg = str(e.value)
    assert "alpha = 2: must be in 0..1" in msg
    assert "keep_ratio" not in msg          # not the whole parameter set
    assert e.value.detail == "alpha = 2: must be in 0..1"
    assert isinstance(e.value, ValueError) and isinstance(e.value, stem.StemError)


@pytest.mark.parametrize("key,val,want", [
    ("block", 2**32 + 128, "block = 4294967424: must be in 1..4096"),
    ("threads", 2**32 + 1, "threads = 4294967297: must be in 0..4096"),
    ("threads", -2**40, "threads = -1099511627776: must be in 0..4096"),
    ("prompt_blocks", 2**64 + 1, "prompt_blocks = 18446744073709551617: must be in 0..1099511627776"),
    ("sinks", 2.5, "sinks = 2.5: must be an integer"),
    ("alpha", "0.5", "alpha = '0.5': must be a number"),
])
def test_values_checked_before_ctypes(qkv, key, val, want):
    # ctypes would store 2**32 + 128 in a C int as 128
    with pytest.raises(stem.StemInputError) as e:
        stem.prefill(*qkv, **{key: val})
    assert want in str(e.value)


def test_budget_kb_checked():
    with pytest.raises(stem.StemInputError, match="kb = 4294967297"):
        stem.budget(2**32 + 1)
    with pytest.raises(stem.StemInputError, match="kb = 0"):
        stem.budget(0)
    assert len(stem.budget(8)) == 8


def test_tensors_and_dims_named(qkv):
    q, k, v = qkv
    with pytest.raises(stem.StemInputError) as e:
        stem.dense(q, k[:, :128], v[:, :128])
    assert ("q [2 heads, 256 tokens, 16 dim] has more tokens than "
            "k [1 heads, 128 tokens, 16 dim]") in str(e.value)
    with pytest.raises(stem.StemInputError) as e:
        stem.prefill(q, k, v[:, :128])
    assert ("k [1 heads, 256 tokens, 16 dim] and v [1 heads, 128 tokens, "
            "16 dim] differ") in str(e.value)
    bad = q.copy()
    bad[1, 7, 3] = np.nan
    with pytest.raises(stem.StemInputError, match="q holds NaN or Inf"):
        stem.prefill(bad, k, v)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_integer_qkv_refused(qkv, dtype):
    q, k, v = qkv
    with pytest.raises(stem.StemInputError, match="q has dtype"):
        stem.prefill(q.astype(dtype), k, v)
    with pytest.raises(stem.StemInputError, match="v has dtype"):
        stem.prefill(q, k, v.astype(dtype))


def test_integer_torch_qkv_refused(qkv):
    torch = pytest.importorskip("torch")
    q, k, v = qkv
    with pytest.raises(stem.StemInputError, match="k has dtype torch.int32"):
        stem.prefill(torch.from_numpy(q), torch.from_numpy(k).to(torch.int32),
                     torch.from_numpy(v))


def test_error_classes():
    assert isinstance(_errors.error_for(10, "x", ""), stem.StemMemoryError)
    assert isinstance(_errors.error_for(10, "x", ""), MemoryError)
    assert isinstance(_errors.error_for(11, "x", ""), stem.StemISAError)
    assert isinstance(_errors.error_for(2, "x", ""), stem.StemInputError)


def test_absurd_thread_counts_keep_the_interpreter():
    # libgomp crashed on OMP_NUM_THREADS=100000 and exit(1)ed on tens of
    # thousands: the interpreter vanished without an exception
    code = ("import numpy as np, stem_attn as s\n"
            "q = np.ones((2, 256, 16), np.float32)\n"
            "a = s.prefill(q, q[:1], q[:1])\n"
            "b = s.prefill(q, q[:1], q[:1], threads=4096)\n"
            "c = s.prefill(q, q[:1], q[:1], threads=1)\n"
            "assert (a.out.tobytes() == c.out.tobytes() == b.out.tobytes())\n"
            "print('alive')\n")
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(stem.__file__)))
    for n in ("100000", "50000"):
        env = dict(os.environ, OMP_NUM_THREADS=n, STEM_LIBRARY=stem.library_path(),
                   PYTHONPATH=pkg)
        r = subprocess.run([sys.executable, "-c", code], env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and "alive" in r.stdout, r.stderr
