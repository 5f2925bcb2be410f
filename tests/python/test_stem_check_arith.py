"""stem_attn.check's declared arithmetic, undecided rows and strict mode,
and the report's items read once ("out row", not "out out row")."""
import numpy as np

import stem_attn as stem
from stio import conformance


def meta_params(m):
    return {"alpha": float(m["alpha"]), "keep_ratio": float(m["keep_ratio"])}


def test_flex_capture_is_judged_as_flash():
    i, g, m = conformance("s2", "flex")
    r = stem.check(i["q"], i["k"], i["v"], mask=g["mask"], out=g["out"],
                   lse=g["lse"], dtype=m["dtype"], dense_test=False,
                   **meta_params(m))
    assert r.arithmetic == "flash"
    assert not [it for it in r.stages["lse"].items if it.kind == "lse row"]
    assert not [it for it in r.stages["out"].items if it.kind == "out row"]
    assert 0.1 <= r.stages["lse"].worst_ratio <= 0.7, str(r)
    assert r.undecided["out"] == 0 and r.undecided["lse"] == 0
    # declared coarser, the report says the errors fit the tighter one
    r2 = stem.check(i["q"], i["k"], i["v"], mask=g["mask"], out=g["out"],
                    lse=g["lse"], dtype=m["dtype"], arith="angelslim",
                    dense_test=False, **meta_params(m))
    assert r2.arithmetic == "angelslim"
    assert "also fit float32 attention scores" in r2.arith_note
    assert r2.stages["out"].worst_ratio < r.stages["out"].worst_ratio


def test_angelslim_output_declared_flash_names_bf16_scores():
    i, g, m = conformance("s2")
    r = stem.check(i["q"], i["k"], i["v"], mask=g["mask"], out=g["out"],
                   dtype=m["dtype"], arith="flash", dense_test=False,
                   **meta_params(m))
    assert not r
    assert r.stages["out"].verdict == "FAIL"
    assert "rounded to bf16 before the softmax" in r.arith_note
    assert "--arith angelslim" in r.arith_note
    rows = [it for it in r.stages["out"].items if it.kind == "out row"]
    assert rows and str(rows[0]).startswith("out row at head ")
    assert "out out" not in str(rows[0])


def test_undecided_mask_rows_and_strict():
    i, g, m = conformance("s2")
    r = stem.check(i["q"], i["k"], i["v"], mask=g["mask"], dtype=m["dtype"],
                   **meta_params(m))
    assert r, str(r)
    # the genuine AngelSlim mask has ties: without its logits they are
    # undecided, and the text says so
    assert r.undecided["mask"] >= 1
    assert r.stages["mask"].units > r.undecided["mask"]
    assert "undecided: " in str(r)
    rs = stem.check(i["q"], i["k"], i["v"], mask=g["mask"], dtype=m["dtype"],
                    strict=True, **meta_params(m))
    assert not rs and rs.stages["mask"].verdict == "FAIL"
    assert rs.strict_failed == 1
    # with its logits every row is decided
    rl = stem.check(i["q"], i["k"], i["v"], mask=g["mask"],
                    logits=g["block_logits"], dtype=m["dtype"], strict=True,
                    **meta_params(m))
    assert rl.undecided["mask"] == 0


def test_bad_arith_is_a_value_error():
    q = np.zeros((1, 256, 64), np.float32)
    try:
        stem.check(q, q, q, out=q, arith="cuda")
    except ValueError as e:
        assert "flash, angelslim or hpc-ops" in str(e)
    else:
        raise AssertionError("arith='cuda' accepted")
