"""A GPU kernel's test suite, played with NumPy "kernels".

A Stem kernel author's pytest calls stem.testing.assert_matches_reference
on what the kernel produced.  Here the kernel is NumPy: its scoring stage
is stem's block logits, its selection stage the Token Position-Decay rule
written out in NumPy, and its attention stage block-sparse attention over
the selected blocks, the output rounded to bf16.  The correct kernel must
pass; each broken one must fail with an AssertionError that names the
stage, the kind of fault and where it is.

The queries are the last 2048 of 8192 positions (chunked prefill: every
query block lies where the budget has decayed, so every row is sparse).
"""
import numpy as np
import pytest

import stem_attn as stem
import stem_attn.testing  # noqa: F401
from stio import bf16_to_f32, f32_to_bf16

HQ, HKV, N, LQ, D, B = 2, 1, 8192, 2048, 64, 128
QB, KB, PB = LQ // B, N // B, (N - LQ) // B


@pytest.fixture(scope="module")
def qkv():
    rng = np.random.default_rng(7)
    q = f32_to_bf16(rng.standard_normal((HQ, LQ, D), dtype=np.float32))
    k = f32_to_bf16(rng.standard_normal((HKV, N, D), dtype=np.float32))
    v = f32_to_bf16(rng.standard_normal((HKV, N, D), dtype=np.float32))
    return q, k, v


@pytest.fixture(scope="module")
def scoring(qkv):
    """The kernel's scoring stage: stem's logits (it would be ours)."""
    return stem.prefill(*qkv, storage="bf16").logits


def select(logits, budget, budget_delta=0):
    """The selection stage: per row the top-`budget` causal logits (lower
    index first on ties), plus 4 sinks and the 4 blocks ending at the
    diagonal (query block i sits at key-block position i + PB)."""
    hq, qb, kb = logits.shape
    mask = np.zeros(logits.shape, np.uint8)
    for h in range(hq):
        for i in range(qb):
            pos = i + kb - qb
            row = logits[h, i, :pos + 1]
            b = int(budget[pos]) + budget_delta
            order = np.lexsort((np.arange(pos + 1), -row))  # -logit, index
            mask[h, i, order[:max(b, 0)]] = 1
            mask[h, i, :min(4, pos + 1)] = 1
            mask[h, i, max(0, pos - 3):pos + 1] = 1
    return mask


def attend(q, k, v, mask, skip=None, base=None):
    """Block-sparse causal attention in float32: out (bf16 bits) and lse.
    skip=(h, I, J): block J's P.V product left out for query block I of
    head h (the softmax still counts it); with base=(out, lse) only that
    block is computed, the rest taken from base."""
    qf, kf, vf = bf16_to_f32(q), bf16_to_f32(k), bf16_to_f32(v)
    out = np.zeros((HQ, LQ, D), np.float32)
    lse = np.zeros((HQ, LQ), np.float32)
    if base is not None:
        out, lse = bf16_to_f32(base[0]).copy(), base[1].copy()
    tri = np.tril(np.ones((B, B), bool))
    for h in range(HQ):
        g = h // (HQ // HKV)
        for i in range(QB):
            if base is not None and (h, i) != skip[:2]:
                continue
            pos = i + PB
            js = np.nonzero(mask[h, i, :pos + 1])[0]
            keys = np.concatenate([np.arange(j * B, (j + 1) * B) for j in js])
            s = qf[h, i * B:(i + 1) * B] @ kf[g, keys].T / np.float32(np.sqrt(D))
            if js[-1] == pos:  # causal inside the diagonal block
                s[:, -B:][~tri] = -np.inf
            m = s.max(axis=1, keepdims=True)
            p = np.exp(s - m)
            l = p.sum(axis=1, keepdims=True)
            if skip is not None and (h, i) == skip[:2]:
                at = int(np.nonzero(js == skip[2])[0][0])
                p[:, at * B:(at + 1) * B] = 0
            out[h, i * B:(i + 1) * B] = (p @ vf[g, keys]) / l
            lse[h, i * B:(i + 1) * B] = (m + np.log(l))[:, 0]
    return f32_to_bf16(out), lse


@pytest.fixture(scope="module")
def correct(qkv, scoring):
    mask = select(scoring, stem.budget(KB))
    out, lse = attend(*qkv, mask)
    return {"logits": scoring, "mask": mask, "out": out, "lse": lse}


def test_the_numpy_selection_is_stems(scoring, qkv):
    """The kernel's selection stage written out in NumPy gives stem's mask
    byte for byte (the budget and selection invariants of the library)."""
    ref = stem.prefill(*qkv, storage="bf16")
    np.testing.assert_array_equal(select(scoring, stem.budget(KB)), ref.mask)
    causal = np.tril(np.ones((QB, KB)), k=PB).sum() * HQ
    assert ref.mask.sum() < 0.8 * causal  # sparse rows
    assert not np.triu(ref.mask, k=PB + 1).any()  # nothing above diagonal


def test_correct_kernel_passes(qkv, correct):
    report = stem.testing.assert_matches_reference(*qkv, **correct)
    assert report and report.verdict == "PASS"
    assert [s.verdict for s in report.stages.values()] == ["PASS"] * 5
    assert report.faults == []


def fails(qkv, **gpu):
    with pytest.raises(AssertionError) as e:
        stem.testing.assert_matches_reference(*qkv, **gpu)
    msg = str(e.value)
    assert "FAIL" in msg
    assert not e.value.report and str(e.value.report) in msg
    return msg, e.value.report


def test_budget_one_short(qkv, correct, scoring):
    mask = select(scoring, stem.budget(KB), budget_delta=-1)
    out, lse = attend(*qkv, mask)
    msg, rep = fails(qkv, logits=scoring, mask=mask, out=out, lse=lse)
    assert "budget count" in msg, msg
    bad = [it for it in rep.faults if it.kind == "budget count"]
    assert bad and all(it.stage == "mask" for it in bad)
    it = bad[0]
    assert it.gpu < it.ref and it.err == 1  # one short of its allowed count
    assert "head %d" % it.head in msg and "qblock %d" % it.qblock in msg, msg
    # the selection stage too: the GPU's own logits keep one more block
    assert rep.stages["selection"].verdict == "FAIL"
    # attention under its own mask is right: only the mask stages fail
    assert rep.stages["out"].verdict == "PASS"


def test_budget_one_over(qkv, correct, scoring):
    """One block too many per row: the selection stage (the rule on the
    kernel's own logits) names each extra block.  From the mask alone the
    random inputs' near-equal logits put every row's extra block within tau
    of its threshold, but the counts are off the same way in every row:
    the mask stage names the rows."""
    mask = select(scoring, stem.budget(KB), budget_delta=+1)
    msg, rep = fails(qkv, mask=mask)
    counts = [it for it in rep.faults if it.kind == "budget count"]
    assert counts and all(it.gpu == it.ref + 1 for it in counts), msg
    msg, rep = fails(qkv, logits=scoring, mask=mask)
    extra = [it for it in rep.faults if it.kind == "selection extra"]
    assert extra and rep.stages["selection"].verdict == "FAIL", msg
    it = extra[0]
    assert mask[it.head, it.qblock, it.kblock] == 1
    assert "selection extra" in msg
    assert "head %d qblock %d kblock %d" % (it.head, it.qblock, it.kblock) \
        in msg, msg


def test_skipped_block_in_pv(qkv, correct):
    h, i = 1, QB - 3
    js = np.nonzero(correct["mask"][h, i, :i + PB + 1])[0]
    j = int(js[len(js) // 2])  # a top-k block, neither sink nor window
    out, _ = attend(*qkv, correct["mask"], skip=(h, i, j),
                    base=(correct["out"], correct["lse"]))
    gpu = dict(correct, out=out)
    msg, rep = fails(qkv, **gpu)
    rows = [it for it in rep.faults if it.kind == "out row"]
    assert rows and all(it.stage == "out" for it in rows), msg
    assert {it.head for it in rows} == {h}
    assert {it.qblock for it in rows} == {i}
    assert "out row" in msg and "head %d" % h in msg
    assert "qblock %d" % i in msg or "query block %d" % i in msg, msg
    assert rep.stages["mask"].verdict == "PASS"


def test_zero_row(qkv, correct):
    out = correct["out"].copy()
    out[0, 1500] = 0
    msg, rep = fails(qkv, **dict(correct, out=out))
    rows = [it for it in rep.faults if it.stage == "out"]
    assert [(it.kind, it.head, it.row) for it in rows] == [("out row", 0,
                                                             1500)], msg
    assert "row 1500" in msg, msg


def test_ignores_the_mask(qkv, correct):
    out = f32_to_bf16(stem.dense(*qkv, storage="bf16").out)
    msg, rep = fails(qkv, mask=correct["mask"], out=out)
    assert "ignores the mask" in msg, msg
    kinds = {(it.kind, it.head) for it in rep.faults}
    assert ("ignores the mask", 0) in kinds and ("ignores the mask", 1) in kinds


def test_nan_is_located(qkv, correct):
    out = bf16_to_f32(correct["out"]).copy()
    out[1, 77, 3] = np.nan
    msg, rep = fails(qkv, **dict(correct, out=out), dtype="bf16")
    it = [it for it in rep.faults if it.kind == "non-finite out"][0]
    assert (it.head, it.row) == (1, 77), msg
