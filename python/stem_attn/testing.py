"""Assertions for a GPU Stem kernel's pytest suite.

    import stem_attn.testing

    def test_my_kernel(q, k, v):                     # q, k, v: torch/numpy
        logits, mask, out, lse = my_kernel(q, k, v)
        stem_attn.testing.assert_matches_reference(
            q, k, v, logits=logits, mask=mask, out=out, lse=lse)
"""
from __future__ import annotations

from typing import Any

from ._check import Report, check

__all__ = ["assert_matches_reference"]


def assert_matches_reference(q: Any, k: Any, v: Any, mask: Any = None,
                             out: Any = None, lse: Any = None,
                             logits: Any = None, **kwargs: Any) -> Report:
    """Run stem_attn.check with the same arguments and raise AssertionError with
    the report's text (the stage, kind and position of every fault, worst
    first) unless it passes; the error's .report holds the Report.
    Returns the Report on a pass."""
    __tracebackhide__ = True  # pytest: show the caller's line
    report = check(q, k, v, mask=mask, out=out, lse=lse, logits=logits,
                   **kwargs)
    if not report:
        err = AssertionError("stem check FAILED\n" + report.text())
        err.report = report
        raise err
    return report
