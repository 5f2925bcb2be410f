"""The package's shape: no import cycle among its modules, __all__ naming
every public name of stem_attn and nothing it lacks, and type hints on the
functions of the modules that mirror the C API."""
import ast
import inspect
import os
import types

import pytest

import stem_attn
from stem_attn import _abi, _errors, _lib, _params

PKG = os.path.dirname(os.path.abspath(stem_attn.__file__))


def _imports(path):
    """The package modules a module imports at its top level."""
    out = set()
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
    return out


def test_no_import_cycle():
    mods = {f[:-3] for f in os.listdir(PKG) if f.endswith(".py")}
    graph = {m: _imports(os.path.join(PKG, m + ".py")) & mods for m in mods}
    graph["__init__"].discard("__init__")
    state = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError("import cycle: " + " -> ".join(path + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(graph[m]):
            visit(n, path + [m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])
    # the package's own modules never import it back
    for m, deps in graph.items():
        assert m == "__init__" or "__init__" not in deps, m


def test_all_is_complete():
    public = {n for n, v in vars(stem_attn).items()
              if not n.startswith("_") and not isinstance(v, types.ModuleType)
              and getattr(v, "__module__", "stem_attn").startswith("stem_attn")
              and n not in ("annotations", "error_for")}
    assert public - {"testing"} <= set(stem_attn.__all__), \
        public - set(stem_attn.__all__)
    for n in stem_attn.__all__:
        assert hasattr(stem_attn, n), n


def test_type_hints():
    for mod in (_params, _errors):
        for name, f in vars(mod).items():
            if inspect.isfunction(f) and f.__module__ == mod.__name__:
                ann = f.__annotations__
                assert "return" in ann, "%s.%s" % (mod.__name__, name)
    assert _abi.PROTOTYPES and "PROTOTYPES" in _abi.__annotations__


def test_dtype_codes_from_the_library():
    """dtype codes come from libstem's one table, names both ways."""
    name = _lib.func("stem_dtype_name")
    for code in range(16):
        text = name(code).decode()
        if text == "?":
            break
        assert _lib.dtype_code(text) == code
    assert code >= 8                    # F32 .. BOOL
    with pytest.raises(ValueError):
        _lib.dtype_code("f32")
