"""stem_params from a profile name and keyword overrides."""
from __future__ import annotations

import ctypes as C
import numbers
from typing import Any, Dict, Tuple, Union

from . import _abi, _lib
from ._errors import STEM_ERR_PARAM, StemInputError, error_for

# other spellings accepted for stem_params fields: the CLI's options and
# the metadata names of AngelSlim / `stem run` files
ALIASES: Dict[str, str] = {
    "lambda": "value_weight", "lambda_mag": "value_weight",
    "beta": "value_weight", "initial_blocks": "sinks",
    "window_size": "window", "block_size": "block", "f64": "use_f64",
    "mu": "alpha", "rho": "keep_ratio"}
ENUMS: Dict[str, Dict[str, int]] = {
    "value_rule": _abi.VALUE_RULE, "budget_rule": _abi.BUDGET_RULE,
    "profile": _abi.PROFILE, "compute": _abi.COMPUTE}
FIELDS: Tuple[str, ...] = tuple(n for n, _ in _abi.stem_params._fields_)
FIELD_TYPES: Dict[str, Any] = dict(_abi.stem_params._fields_)


def profile_id(profile: Union[str, int]) -> int:
    """The stem_profile value of a profile name ("angelslim", "paper",
    "hpc-ops"; "_" for "-" and any case accepted) or number."""
    if isinstance(profile, int):
        return profile
    name = str(profile).lower().replace("_", "-")
    if name == "hpcops":
        name = "hpc-ops"
    if name not in _abi.PROFILE:
        raise ValueError("stem: unknown profile %r (angelslim, paper, "
                         "hpc-ops)" % (profile,))
    return _abi.PROFILE[name]


def is_param(key: str) -> bool:
    """Whether key names a stem_params field or one of its aliases."""
    return key in FIELDS or key in ALIASES


def make(profile: Union[str, int] = "angelslim",
         **overrides: Any) -> _abi.stem_params:
    """A stem_params of the profile's preset with overrides applied (keys:
    stem_params field names, or the aliases above), validated."""
    p = _abi.stem_params()
    st = _lib.func("stem_params_init")(C.byref(p), profile_id(profile))
    if st != _abi.STEM_OK:
        raise error_for(st, "stem_params_init")
    for key, val in overrides.items():
        field = ALIASES.get(key, key)
        if field not in FIELDS or field == "profile":
            raise TypeError("stem: unknown parameter %r (stem_params fields: "
                            "%s)" % (key, ", ".join(FIELDS[1:])))
        if field in ENUMS and isinstance(val, str):
            if val not in ENUMS[field]:
                raise ValueError("stem: %s=%r: one of %s" % (
                    key, val, ", ".join(ENUMS[field])))
            val = ENUMS[field][val]
        elif isinstance(val, bool):
            val = int(val)
        _set_checked(p, key, field, val)
    st = _lib.func("stem_params_validate")(C.byref(p))
    if st != _abi.STEM_OK:
        raise error_for(st, "parameters")
    return p


_INT_BITS: Dict[Any, int] = {C.c_int: 32, C.c_int64: 64}


def _set_checked(p: _abi.stem_params, key: str, field: str,
                 val: Any) -> None:
    """setattr(p, field, val) after checking that val is a number that the
    C field holds as it is: ctypes would wrap 2**32 + 128 to 128.  A value
    beyond the C type is refused with the library's own range for the
    field (found by validating the nearest value the type holds)."""
    ctype = FIELD_TYPES[field]
    if ctype is C.c_double:
        if not isinstance(val, numbers.Real):
            raise StemInputError(STEM_ERR_PARAM, "parameters",
                                 "%s = %r: must be a number" % (key, val))
        setattr(p, field, float(val))
        return
    if not isinstance(val, numbers.Integral):
        raise StemInputError(STEM_ERR_PARAM, "parameters",
                             "%s = %r: must be an integer" % (key, val))
    val = int(val)
    bits = _INT_BITS.get(ctype, 32)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if lo <= val <= hi:
        setattr(p, field, val)
        return
    near = hi if val > hi else lo
    probe = _abi.stem_params()
    C.pointer(probe)[0] = p
    setattr(probe, field, near)
    st = _lib.func("stem_params_validate")(C.byref(probe))
    detail = None
    if st != _abi.STEM_OK:
        text = _lib.func("stem_last_error")().decode(errors="replace")
        head = "%s = %d" % (field, near)
        if text.startswith(head):
            detail = "%s = %d%s" % (key, val, text[len(head):])
    if detail is None:
        detail = "%s = %d: must be in %d..%d (a %d-bit C integer)" % (
            key, val, lo, hi, bits)
    raise StemInputError(STEM_ERR_PARAM, "parameters", detail)


def as_dict(p: _abi.stem_params) -> Dict[str, Any]:
    """Every field of p by name."""
    return {n: getattr(p, n) for n in FIELDS}
