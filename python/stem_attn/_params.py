"""stem_params from a profile name and keyword overrides."""
import ctypes as C

from . import _abi, _lib
from ._errors import StemError

# other spellings accepted for stem_params fields: the CLI's options and
# the metadata names of AngelSlim / `stem run` files
ALIASES = {"lambda": "value_weight", "lambda_mag": "value_weight",
           "beta": "value_weight", "initial_blocks": "sinks",
           "window_size": "window", "block_size": "block", "f64": "use_f64",
           "mu": "alpha", "rho": "keep_ratio"}
ENUMS = {"value_rule": _abi.VALUE_RULE, "budget_rule": _abi.BUDGET_RULE,
         "profile": _abi.PROFILE, "compute": _abi.COMPUTE}
FIELDS = tuple(n for n, _ in _abi.stem_params._fields_)


def profile_id(profile):
    if isinstance(profile, int):
        return profile
    name = str(profile).lower().replace("_", "-")
    if name == "hpcops":
        name = "hpc-ops"
    if name not in _abi.PROFILE:
        raise ValueError("stem: unknown profile %r (angelslim, paper, "
                         "hpc-ops)" % (profile,))
    return _abi.PROFILE[name]


def is_param(key):
    return key in FIELDS or key in ALIASES


def make(profile="angelslim", **overrides):
    """A stem_params of the profile's preset with overrides applied (keys:
    stem_params field names, or the aliases above), validated."""
    p = _abi.stem_params()
    st = _lib.func("stem_params_init")(C.byref(p), profile_id(profile))
    if st != _abi.STEM_OK:
        raise StemError(st, "stem_params_init")
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
        setattr(p, field, val)
    st = _lib.func("stem_params_validate")(C.byref(p))
    if st != _abi.STEM_OK:
        raise StemError(st, "parameters %s" % as_dict(p))
    return p


def as_dict(p):
    return {n: getattr(p, n) for n in FIELDS}
