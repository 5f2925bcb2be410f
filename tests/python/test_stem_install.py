"""The package installs offline with Debian's pip and setuptools
(`pip install --no-build-isolation --no-deps ./python`, into a --target
folder or a virtual environment with the system's site packages, the route
docs/PYTHON.md gives) and works from where it was installed, and
`make install` places it beside the library so that it finds libstem.so
with no environment."""
import os
import shutil
import subprocess
import sys

import pytest

from stio import ROOT, library


def _run_py(code, env_extra, cwd):
    env = {k: v for k, v in os.environ.items() if k != "STEM_LIBRARY"}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)


def test_pip_install_offline(tmp_path):
    if subprocess.run([sys.executable, "-m", "pip", "--version"],
                      stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        pytest.skip("no pip")
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "python"), str(src))  # build dirs stay out of the tree
    tgt = tmp_path / "target"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                        "--no-build-isolation", "--no-deps", "--no-index",
                        "--target", str(tgt), str(src)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    assert p.returncode == 0, p.stdout
    assert (tgt / "stem_attn" / "__init__.py").exists()
    r = _run_py("import stem_attn as stem; print(stem.__file__); print(stem.budget(64)[-1])",
                {"PYTHONPATH": str(tgt), "STEM_LIBRARY": library()},
                str(tmp_path))
    assert r.returncode == 0, r.stdout
    assert str(tgt) in r.stdout and r.stdout.split()[-1] == "29"


def test_pip_venv_install(tmp_path):
    """The README's pip route, which PEP 668 accepts on Debian 12: a virtual
    environment that sees the system's NumPy, pip offline without build
    isolation; the package then runs from the environment."""
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "python"), str(src))  # build dirs stay out of the tree
    venv = tmp_path / ".venv" / "stem"
    p = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                        str(venv)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    assert p.returncode == 0, "python3 -m venv (python3-venv): " + p.stdout
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    p = subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                        "--no-build-isolation", "--no-deps", str(src)],
                       env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    assert p.returncode == 0, p.stdout
    env["STEM_LIBRARY"] = library()
    r = subprocess.run([str(venv / "bin" / "python"), "-c",
                        "import stem_attn, numpy; print(stem_attn.__file__); "
                        "print(stem_attn.budget(64)[-1])"],
                       env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    assert r.returncode == 0, r.stdout
    assert str(venv) in r.stdout and r.stdout.split()[-1] == "29"


def test_make_install_layout(tmp_path):
    """make install's Python lines: PREFIX/lib/python3/dist-packages/stem_attn
    finds PREFIX/lib/libstem.so by itself."""
    lib = library()
    if not os.path.exists(lib):
        pytest.skip("no library at %s" % lib)
    prefix = tmp_path / "prefix"
    pydir = prefix / "lib" / "python3" / "dist-packages"
    (pydir / "stem_attn").mkdir(parents=True)
    for f in os.listdir(os.path.join(ROOT, "python", "stem_attn")):
        if f.endswith(".py"):
            shutil.copy(os.path.join(ROOT, "python", "stem_attn", f),
                        str(pydir / "stem_attn"))
    shutil.copy(os.path.realpath(lib), str(prefix / "lib" / "libstem.so.0"))
    r = _run_py("import stem_attn as stem; print(stem.library_path())",
                {"PYTHONPATH": str(pydir)}, str(tmp_path))
    assert r.returncode == 0, r.stdout
    assert r.stdout.strip() == str(prefix / "lib" / "libstem.so.0")
    # the Makefile's recipe installs exactly these
    mk = open(os.path.join(ROOT, "Makefile")).read()
    assert "PYTHONDIR ?= $(PREFIX)/lib/python3/dist-packages" in mk
    assert "python/stem_attn/*.py $(DESTDIR)$(PYTHONDIR)/stem_attn/" in mk
    assert "tools/stem_dump.py $(DESTDIR)$(PYTHONDIR)/" in mk
