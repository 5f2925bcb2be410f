"""The C ABI of libstem, mirrored for ctypes: every struct, enum and
prototype the package uses, in this one file.

Keep it in step with include/stem.h and include/stem_check.h field by field
(same names, same order, same C types).  tests/python/test_stem_abi.py compiles
a C program that prints sizeof/offsetof of every mirrored struct and
compares them with ctypes, and compares the field names of stem_params with
the header's, so a field added there without a mirror here fails the suite.
"""
from __future__ import annotations

import ctypes as C
from typing import Any, Dict, List, Tuple

c_enum = C.c_int  # every stem enum is an int-sized C enum (gcc, clang)

# ------------------------------------------------------------------ enums
STEM_OK = 0

PROFILE: Dict[str, int] = {"angelslim": 0, "paper": 1, "hpc-ops": 2}
VALUE_RULE: Dict[str, int] = {"none": 0, "zscore_full": 1,
                              "zscore_padded": 2, "log_max_block": 3}
BUDGET_RULE: Dict[str, int] = {"tpd_f64": 0, "tpd_f32_fma": 1, "paper_linear": 2}
COMPUTE: Dict[str, int] = {"f32": 0, "bf16": 1}
PREC: Dict[str, int] = {"fp32": 0, "bf16": 1, "fp16": 2, "fp8": 3}
STAGES: Tuple[str, ...] = ("logits", "selection", "mask", "out", "lse")
VERDICT: Dict[int, str] = {0: "ABSENT", 1: "PASS", 2: "FAIL"}
CHECK_PASS, CHECK_FAIL = 1, 2


# ---------------------------------------------------------------- structs
class stem_tensor(C.Structure):
    _fields_ = [("data", C.c_void_p),
                ("dtype", c_enum),
                ("heads", C.c_int64), ("tokens", C.c_int64),
                ("dim", C.c_int64),
                ("head_stride", C.c_int64), ("token_stride", C.c_int64)]


class stem_params(C.Structure):
    _fields_ = [("profile", c_enum),
                ("block", C.c_int),
                ("stride", C.c_int),
                ("qk_scaled", C.c_int),
                ("norm", C.c_double),
                ("value_rule", c_enum),
                ("value_weight", C.c_double),
                ("budget_rule", c_enum),
                ("keep_ratio", C.c_double),
                ("alpha", C.c_double),
                ("paper_min_k0", C.c_int),
                ("paper_ratio_short", C.c_double),
                ("paper_ratio_long", C.c_double),
                ("paper_long_tokens", C.c_int64),
                ("prompt_blocks", C.c_int64),
                ("sinks", C.c_int),
                ("window", C.c_int),
                ("keep_diagonal", C.c_int),
                ("ties_keep_all", C.c_int),
                ("use_f64", C.c_int),
                ("threads", C.c_int),
                ("sinks_unclipped", C.c_int),
                ("compute", c_enum)]


class stem_dims(C.Structure):
    _fields_ = [(n, C.c_int64) for n in
                ("hq", "hkv", "lq", "lk", "d", "offset", "qb", "kb")]


class stem_check_options(C.Structure):
    _fields_ = [("gpu_dtype", c_enum),
                ("arith", c_enum),
                ("arith_auto", C.c_int),
                ("strict", C.c_int),
                ("score_prec", c_enum),
                ("logit_store", c_enum),
                ("attn_prec", c_enum),
                ("attn_score_prec", c_enum),
                ("out_store", c_enum),
                ("lse_store", c_enum),
                ("tau", C.c_double),
                ("logit_tol", C.c_double),
                ("out_tol", C.c_double),
                ("lse_tol", C.c_double),
                ("sigmas", C.c_double),
                ("dense_test", C.c_int),
                ("head_begin", C.c_int64),
                ("head_count", C.c_int64),
                ("max_items", C.c_int)]


class stem_check_gpu(C.Structure):
    _fields_ = [("logits", C.POINTER(stem_tensor)),
                ("mask", C.POINTER(stem_tensor)),
                ("out", C.POINTER(stem_tensor)),
                ("lse", C.POINTER(stem_tensor))]


class stem_check_item(C.Structure):
    _fields_ = [("kind", c_enum),
                ("head", C.c_int64), ("qblock", C.c_int64),
                ("kblock", C.c_int64), ("row", C.c_int64), ("col", C.c_int64),
                ("gpu", C.c_double), ("ref", C.c_double),
                ("err", C.c_double), ("limit", C.c_double),
                ("ref_logit", C.c_double), ("threshold", C.c_double)]


class stem_check_stage_result(C.Structure):
    _fields_ = [("verdict", c_enum),
                ("checked", C.c_int64),
                ("faults", C.c_int64),
                ("worst_ratio", C.c_double),
                ("max_err", C.c_double),
                ("units", C.c_int64),
                ("undecided", C.c_int64),
                ("n_items", C.c_int64),
                ("items", C.POINTER(stem_check_item))]


BIAS_COUNT = 11   # stem_check_bias_test (include/stem_check.h)


class stem_check_bias(C.Structure):
    _fields_ = [("tests", C.c_int64), ("faults", C.c_int64),
                ("threshold", C.c_double), ("worst", C.c_double),
                ("worst_z", C.c_double), ("worst_component", C.c_double),
                ("worst_head", C.c_int64), ("worst_qblock", C.c_int64),
                ("worst_zratio", C.c_double),
                ("heads", C.c_int64), ("heads_undecided", C.c_int64),
                ("fault_size", C.c_double), ("smallest_failing", C.c_double)]


class stem_check_head(C.Structure):
    _fields_ = [("head", C.c_int64),
                ("out_rel_l2", C.c_double),
                ("rows_failed", C.c_int64),
                ("dense_t", C.c_double),
                ("dense_spread", C.c_double),
                ("masked_vs_dense", C.c_double),
                ("dense_decidable", C.c_int),
                ("status", c_enum)]


class stem_check_report(C.Structure):
    _fields_ = [("verdict", c_enum),
                ("dims", stem_dims),
                ("params", stem_params),
                ("options", stem_check_options),
                ("head_begin", C.c_int64), ("head_end", C.c_int64),
                ("stage", stem_check_stage_result * len(STAGES)),
                ("logit_nonfinite", C.c_int64), ("logit_pattern", C.c_int64),
                ("logit_scale", C.c_double),
                ("logit_zmax", C.c_double),
                ("mask_diffs", C.c_int64), ("mask_ties", C.c_int64),
                ("mask_unread", C.c_int64), ("rows_count_off", C.c_int64),
                ("gpu_kept", C.c_int64), ("ref_kept", C.c_int64),
                ("causal_blocks", C.c_int64),
                ("max_tie_gap", C.c_double),
                ("n_ties", C.c_int64),
                ("ties", C.POINTER(stem_check_item)),
                ("select_ties", C.c_int64),
                ("out_under_ref_mask", C.c_int),
                ("diag_added", C.c_int),
                ("out_rel_l2", C.c_double),
                ("lse_max_abs", C.c_double),
                ("lse_base2_hint", C.c_int),
                ("rows_failed", C.c_int64),
                ("qblocks_failed", C.c_int64),
                ("n_heads", C.c_int64),
                ("heads", C.POINTER(stem_check_head)),
                ("qblock_rows_failed", C.POINTER(C.c_int32)),
                ("hint", C.c_char * 512),
                ("arith_chosen", C.c_int),
                ("arith_note", C.c_char * 256),
                ("alt_ratio", C.c_double * len(STAGES)),
                ("strict_failed", C.c_int),
                ("bias_alpha", C.c_double),
                ("bias_z", C.c_double),
                ("bias", stem_check_bias * BIAS_COUNT)]


class stem_explain_block(C.Structure):
    _fields_ = [("logit", C.c_float),
                ("rank", C.c_int32),
                ("why", C.c_uint32),
                ("kept", C.c_int32)]


class stem_explain_summary(C.Structure):
    _fields_ = [("head", C.c_int64), ("qblock", C.c_int64),
                ("position", C.c_int64),
                ("n", C.c_int64),
                ("budget", C.c_int32),
                ("candidates", C.c_int32),
                ("topk", C.c_int32),
                ("kept", C.c_int32),
                ("threshold", C.c_float)]


# stem_explain_block.why bits (STEM_WHY_*), in the order explain names them
WHY: Tuple[Tuple[str, int], ...] = (
    ("sink", 0x04), ("window", 0x08), ("diagonal", 0x10), ("top-k", 0x01),
    ("tie at the threshold (every tie kept)", 0x02))


# The structs tests/python/test_stem_abi.py measures against the C compiler.
STRUCTS: Tuple[Any, ...] = (stem_tensor, stem_params, stem_dims, stem_check_options,
           stem_check_gpu, stem_check_item, stem_check_stage_result,
           stem_check_bias,
           stem_check_head, stem_check_report, stem_explain_block,
           stem_explain_summary)

# ------------------------------------------------------------- prototypes
P = C.POINTER
_status = c_enum
PROTOTYPES: Dict[str, Tuple[Any, List[Any]]] = {
    # name: (restype, argtypes)
    "stem_strerror": (C.c_char_p, [_status]),
    "stem_last_error": (C.c_char_p, []),
    "stem_version": (C.c_char_p, []),
    "stem_params_init": (_status, [P(stem_params), c_enum]),
    "stem_params_validate": (_status, [P(stem_params)]),
    "stem_profile_from_name": (_status, [C.c_char_p, P(c_enum)]),
    "stem_profile_name": (C.c_char_p, [c_enum]),
    "stem_dims_get": (_status, [P(stem_params), P(stem_tensor),
                                P(stem_tensor), P(stem_tensor), C.c_int,
                                P(stem_dims)]),
    "stem_block_logits": (_status, [P(stem_params), P(stem_tensor),
                                    P(stem_tensor), P(stem_tensor),
                                    C.c_void_p]),
    "stem_budget": (_status, [P(stem_params), C.c_int64, C.c_void_p]),
    "stem_budget_length": (_status, [P(stem_params), C.c_int64,
                                     P(C.c_int64)]),
    "stem_dtype_name": (C.c_char_p, [c_enum]),
    "stem_dtype_from_name": (_status, [C.c_char_p, P(c_enum)]),
    "stem_select": (_status, [P(stem_params), P(stem_dims), C.c_void_p,
                              C.c_void_p, C.c_void_p, C.c_void_p]),
    "stem_explain_row": (_status, [P(stem_params), P(stem_dims), C.c_void_p,
                                   C.c_int64, C.c_int64,
                                   P(stem_explain_summary),
                                   P(stem_explain_block)]),
    "stem_attention_sparse": (_status, [P(stem_params), P(stem_tensor),
                                        P(stem_tensor), P(stem_tensor),
                                        C.c_void_p, P(stem_tensor),
                                        C.c_void_p]),
    "stem_attention_dense": (_status, [P(stem_params), P(stem_tensor),
                                       P(stem_tensor), P(stem_tensor),
                                       P(stem_tensor), C.c_void_p]),
    "stem_prefill": (_status, [P(stem_params), P(stem_tensor),
                               P(stem_tensor), P(stem_tensor),
                               P(stem_tensor), C.c_void_p, C.c_void_p,
                               C.c_void_p]),
    "stem_isa_active": (_status, [P(c_enum)]),
    "stem_isa_name": (C.c_char_p, [c_enum]),
    # stem_check.h
    "stem_prec_from_name": (_status, [C.c_char_p, P(c_enum)]),
    "stem_prec_name": (C.c_char_p, [c_enum]),
    "stem_check_options_init": (_status, [P(stem_check_options), c_enum]),
    "stem_check_options_arith": (_status, [P(stem_check_options), c_enum]),
    "stem_arith_from_name": (_status, [C.c_char_p, P(C.c_int)]),
    "stem_arith_name": (C.c_char_p, [c_enum]),
    "stem_check_stage_name": (C.c_char_p, [c_enum]),
    "stem_check_kind_name": (C.c_char_p, [c_enum]),
    "stem_check_kind_is_fault": (C.c_int, [c_enum]),
    "stem_check": (_status, [P(stem_params), P(stem_tensor), P(stem_tensor),
                             P(stem_tensor), P(stem_check_gpu),
                             P(stem_check_options), P(stem_check_report)]),
    "stem_check_report_free": (None, [P(stem_check_report)]),
    "stem_check_report_text": (C.c_size_t, [P(stem_check_report), C.c_int,
                                            C.c_char_p, C.c_size_t]),
    "stem_check_report_json": (C.c_size_t, [P(stem_check_report),
                                            C.c_char_p, C.c_size_t]),
}
