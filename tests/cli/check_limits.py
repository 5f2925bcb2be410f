"""How tight the limits of `stem check` sit on genuine GPU captures, and the
smallest faults that fail (docs/CHECKING.md "How tight", docs/ALGORITHM.md
section 5).

For every genuine capture (AngelSlim s2, r1, s6; hpc-ops s2, r1;
FlexAttention s2, r1; full length) under the arithmetic `stem check`
declares for it:
  - the worst genuine error as a fraction of each stage's limit (logits,
    out, lse), which must lie in [0.1, 0.7] (a limit neither tighter than
    the kernel's rounding nor looser than 10 times its worst error);
  - flash-style emulations of the capture in bf16 and fp16 (float32
    scores, P and out rounded to the dtype, float32 lse; check_faults.py's
    emulate), with the capture's own mask, judged under --arith flash with
    the capture's scoring places (its mask came from them), which must
    pass;
  - by bisection on deltas added to the genuine output (its rounding noise
    stays in), the smallest failing: output scale error on one query block,
    softmax-scale error (every row), lse offset (one head), change of the
    logits' value term and of their QK term (relative).  Each is given
    also as a multiple of the capture's own error where it acts, which
    must be at most 3.

usage: check_limits.py STEM [--capture NAME] [--no-emulate]
Prints a Markdown table and ends with "limits: N goals met, M missed";
exits 1 when a goal is missed.  Minutes: `make check-full` runs it.
"""
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_faults as cf  # noqa: E402
from check_doctor import as_f32  # noqa: E402

STAGES = ("logits", "out", "lse")


def worst(rep):
    """{stage: worst err / limit} of the stages judged."""
    return {s: rep["stages"][s]["worst_ratio"] for s in STAGES
            if rep["stages"][s]["verdict"] != "absent"}


def genuine(stem, c, tmp, tensors, extra, tag):
    rc, text, rep = cf.run_check(stem, c.files(tmp, tensors, tag) + extra,
                                 tmp)
    return rc, rep


def smallest(stem, c, tmp, build, lo, hi):
    return cf.smallest_failing(stem, c, tmp, build, lo, hi, steps=7)


def measure(stem, c, what, tmp):
    """The smallest failing faults of capture c: {name: (size, multiple of
    the capture's own error there)}; size None where the largest tried
    passes."""
    res = {}
    if "out" in c.g:
        o = cf.gpu_out(c)
        h, qb = 0, min(1, (c.lq - 1) // cf.BLOCK)
        rows = c.rows_of(qb)
        ref = c.ref(h)[0]
        own = np.linalg.norm(o[h, rows] - ref[rows])

        def scale_block(x):
            oo = o.copy()
            oo[h, rows] += x * ref[rows]
            return cf.with_out(c, oo)
        x = smallest(stem, c, tmp, scale_block, 1e-5, 0.2)
        res["out scale"] = (x, x and x * np.linalg.norm(ref[rows]) / own)
        eps = 1e-3
        dirs = np.stack([(c.attend(hh, range(c.lq), scale_mul=1 + eps) -
                          c.attend(hh, range(c.lq), scale_mul=1 - eps)) /
                         (2 * eps) for hh in range(c.hq)])
        own_all = np.linalg.norm(o - np.stack([c.ref(hh)[0]
                                               for hh in range(c.hq)]))

        def temp(x):
            return cf.with_out(c, o + x * dirs)
        x = smallest(stem, c, tmp, temp, 1e-5, 0.2)
        res["softmax scale"] = (x, x and x * np.linalg.norm(dirs) / own_all)
    if "lse" in c.g:
        h = c.hq - 1
        lse = as_f32(c.g["lse"]).astype(np.float64)
        own = np.sqrt(np.mean((lse[h] - c.ref(h)[1]) ** 2))

        def off(x):
            ll = lse.copy()
            ll[h] += x
            return cf.lse_tensors(c, ll)
        x = smallest(stem, c, tmp, off, 1e-8, 1e-2)
        res["lse offset"] = (x, x and x / own)
    if "block_logits" in c.g:
        dl = cf.logits_delta(c, tmp, stem, ["--lambda", "0"], "lam0")  # -T
        lref = c.lref
        g = as_f32(c.g["block_logits"]).astype(np.float64)
        fin = np.isfinite(lref) & np.isfinite(g)
        own = np.sqrt(np.mean((g[fin] - lref[fin]) ** 2))
        qk = np.where(fin, np.where(fin, lref, 0) + dl, 0.0)
        for name, direction in (("value term", -dl), ("QK term", qk)):
            x = smallest(stem, c, tmp,
                         lambda x, dd=direction: cf.with_logits(c, x * dd),
                         1e-5, 1.0)
            ch = x and np.sqrt(np.mean((x * direction[fin]) ** 2))
            res[name] = (x, x and ch / own)
    return res


def fmt_ratio(r):
    return "%.2f" % r if r is not None else "-"


def main(argv):
    stem = argv[1]
    cap = argv[argv.index("--capture") + 1] if "--capture" in argv else ""
    emu = "--no-emulate" not in argv
    met = missed = 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c, what in cf.captures(True):
            if cap and cap not in c.name:
                continue
            rc, rep = genuine(stem, c, tmp, c.g, [], "genuine")
            w = worst(rep)
            arith = rep["arithmetic"]["name"] if isinstance(
                rep.get("arithmetic"), dict) else rep.get("arithmetic")
            goals = []
            goals.append(("genuine passes", rc == 0))
            for s, r in w.items():
                goals.append(("%s worst %.2f of its limit in [0.1, 0.7]" %
                              (s, r), 0.1 <= r <= 0.7))
            ew = {}
            if emu:
                for dt in ("bf16", "fp16"):
                    t = cf.emulate(c, dt)
                    saved = c.meta
                    c.meta = dict(saved, dtype=dt)
                    o = rep["options"]
                    erc, erep = genuine(stem, c, tmp, t,
                                        ["--arith", "flash", "--dtype", dt,
                                         "--scoring", o["score_prec"],
                                         "--logits-store", o["logit_store"]],
                                        "emu_" + dt)
                    c.meta = saved
                    ew[dt] = worst(erep) if erep else {}
                    goals.append(("flash-style %s emulation passes" % dt,
                                  erc == 0))
            m = measure(stem, c, what, tmp)
            for name, (x, mult) in m.items():
                goals.append(("%s fails at %s, %sx its own error" %
                              (name, "%.3g" % x if x else "-",
                               "%.2g" % mult if mult else "-"),
                              x is not None and mult <= 3))
            for g, ok in goals:
                met, missed = met + ok, missed + (not ok)
                print("%s %s: %s" % ("ok  " if ok else "MISS", c.name, g))
            sys.stdout.flush()
            rows.append((c.name, arith, w, ew, m))
    print()
    print("| capture | arith | logits | out | lse | emulated bf16 out / lse "
          "| emulated fp16 out / lse | out scale | softmax scale | "
          "lse offset | value term | QK term |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, arith, w, ew, m in rows:
        cells = [name, str(arith)] + [fmt_ratio(w.get(s)) for s in STAGES]
        for dt in ("bf16", "fp16"):
            e = ew.get(dt, {})
            cells.append("%s / %s" % (fmt_ratio(e.get("out")),
                                      fmt_ratio(e.get("lse"))))
        for k in ("out scale", "softmax scale", "lse offset", "value term",
                  "QK term"):
            if k in m and m[k][0]:
                cells.append("%.2g (%.2gx)" % m[k])
            else:
                cells.append("-")
        print("| " + " | ".join(cells) + " |")
    print("limits: %d goals met, %d missed" % (met, missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
