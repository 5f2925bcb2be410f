#!/usr/bin/python3
"""doc_blocks.py BUILD [FILE.md ...] - run the code blocks of the docs.

Every fenced code block of README.md and docs/*.md but ALGORITHM.md (which
tests/cli/test_algorithm_doc.sh runs), or of the FILEs given, must carry
an info string, and the blocks a reader is told to run are run,
in the order they appear, in one scratch directory per document (so a
block may use what an earlier block of the same document wrote):

    ```sh          run by sh -e; BUILD (stem, stem-mpi) first on PATH,
                   python3 being Debian's /usr/bin/python3
    ```c           a whole program: compiled with cc -std=c11 -Iinclude,
                   linked with BUILD/libstem.a, run; must exit 0
    ```python      run by /usr/bin/python3
    ```text        output, or a synopsis: not run
    ```LANG no-run shown, not run (it changes the system, needs a GPU or
                   a cluster, or its own test runs it)
    ```LANG file=NAME     written to NAME in the scratch directory, not
                   run by itself (a later block uses it)
    ```LANG requires=TOOL skipped with a message when TOOL is not on PATH

For a sanitizer build, python blocks, shell blocks that run python and
the shell blocks after a skipped one are skipped (python3 lacks the
sanitizer's runtime), and leak reports are off for blocks that run mpirun.
Every block sees PYTHONPATH=<repo>/python:<repo>/tools (the package and
stem_dump.py), STEM_LIBRARY=BUILD/libstem.so, HOME=<scratch>/home and the
working directory <scratch>.  Relative links [..](path) of the documents must name existing files.

Prints one line per block and "docs: N passed, M failed, K skipped";
exits 1 if any block failed or a block has no known info string.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                     "..", ".."))
LANGS = ("sh", "c", "python", "text")
TIMEOUT = 120
FENCE = re.compile(r"^( {0,3})(```+)(.*)$")
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def blocks(path):
    """[(line, lang, attrs, text)] of the fenced blocks of path; a block
    with a missing or unknown language gets lang None."""
    out = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, info = len(m.group(1)), m.group(2), m.group(3).split()
        start = i + 1
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == ""
                        else lines[i])
            i += 1
        i += 1
        lang = info[0] if info and info[0] in LANGS else None
        attrs = {}
        for word in info[1:]:
            key, _, val = word.partition("=")
            attrs[key] = val
        out.append((start, lang if info else None, attrs, "\n".join(body) + "\n",
                    info[0] if info else ""))
    return out


def sanitizer_flags(build):
    """The -fsanitize flags a program linked with this build needs."""
    try:
        syms = subprocess.run(["nm", "-D", os.path.join(build, "libstem.so")],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True).stdout
    except OSError:
        return []
    if "__asan_init" in syms:
        return ["-fsanitize=address,undefined"]
    if "__tsan_init" in syms:
        return ["-fsanitize=thread"]
    return []


def run(cmd, cwd, env):
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=TIMEOUT)
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        return 124, (e.stdout or "") + "\n(timed out after %d s)" % TIMEOUT


def check_links(path):
    bad = []
    base = os.path.dirname(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):
            continue
        if not os.path.exists(os.path.join(base, target)):
            bad.append(target)
    return bad


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().split("\n")[0], file=sys.stderr)
        return 2
    build = os.path.abspath(argv[1])
    # docs/ALGORITHM.md is run, and its output compared, by
    # tests/cli/test_algorithm_doc.sh (tools/doc_run.py)
    docs = argv[2:] or (["README.md"] + sorted(
        os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
        if f.endswith(".md") and f != "ALGORITHM.md"))
    san = sanitizer_flags(build)
    cc = os.environ.get("CC", "cc")
    passed = failed = skipped = 0
    top = tempfile.mkdtemp(prefix="stem_docs.")
    shim = os.path.join(top, "bin")
    os.mkdir(shim)
    os.symlink("/usr/bin/python3", os.path.join(shim, "python3"))
    try:
        for doc in docs:
            path = doc if os.path.isabs(doc) else os.path.join(ROOT, doc)
            for target in check_links(path):
                failed += 1
                print("FAIL %s: link to missing file %s" % (doc, target))
            scratch = os.path.join(top, re.sub(r"[^A-Za-z0-9]", "_", doc))
            os.makedirs(os.path.join(scratch, "home"))
            env = dict(os.environ)
            env.update(PATH=build + os.pathsep + shim + os.pathsep + env.get("PATH", ""),
                       PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"),
                                             os.path.join(ROOT, "tools")]),
                       STEM_LIBRARY=os.path.join(build, "libstem.so"),
                       HOME=os.path.join(scratch, "home"),
                       OMPI_ALLOW_RUN_AS_ROOT="1",
                       OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                       OMPI_MCA_btl_vader_single_copy_mechanism="none",
                       OMPI_MCA_rmaps_base_oversubscribe="1")
            env.pop("PYTHONHOME", None)
            py_skipped = False
            for n, (line, lang, attrs, text, word) in enumerate(blocks(path)):
                where = "%s:%d" % (doc, line)
                if lang is None:
                    failed += 1
                    print("FAIL %s: code block without a known info string "
                          "(%r; use one of %s)" % (where, word, ", ".join(LANGS)))
                    continue
                if lang == "text" or "no-run" in attrs:
                    continue
                if "file" in attrs:
                    with open(os.path.join(scratch, attrs["file"]), "w") as f:
                        f.write(text)
                    continue
                tool = attrs.get("requires")
                if tool and shutil.which(tool, path=env["PATH"]) is None:
                    skipped += 1
                    print("SKIP %s (%s not found)" % (where, tool))
                    continue
                if san and (lang == "python" or
                            (lang == "sh" and (py_skipped or re.search(r"\bpython3?\b", text)))):
                    # python3 lacks the sanitizer's runtime; a shell block
                    # after a skipped python block may need what it wrote
                    py_skipped = True
                    skipped += 1
                    print("SKIP %s (python with a sanitizer build)" % where)
                    continue
                benv = env
                if san and "mpirun" in text:
                    # Open MPI's own allocations are not ours to report
                    benv = dict(env, ASAN_OPTIONS=env.get("ASAN_OPTIONS", "") +
                                ":detect_leaks=0")
                src = os.path.join(scratch, "block%d.%s" % (n, {"sh": "sh", "c": "c",
                                                               "python": "py"}[lang]))
                with open(src, "w") as f:
                    f.write(text)
                t0 = time.time()
                if lang == "sh":
                    rc, log = run(["sh", "-e", src], scratch, benv)
                elif lang == "python":
                    rc, log = run(["/usr/bin/python3", src], scratch, benv)
                else:
                    exe = src[:-2]
                    rc, log = run([cc, "-std=c11", "-Wall", "-Werror"] + san +
                                  ["-I" + os.path.join(ROOT, "include"), "-o", exe, src,
                                   os.path.join(build, "libstem.a"), "-fopenmp",
                                   "-lsleef", "-lm"], scratch, benv)
                    if rc == 0:
                        rc, log = run([exe], scratch, benv)
                if rc == 0:
                    passed += 1
                    print("ok   %s %s (%.1f s)" % (where, lang, time.time() - t0))
                else:
                    failed += 1
                    print("FAIL %s %s (exit %d)" % (where, lang, rc))
                    for l in log.rstrip("\n").split("\n")[-15:]:
                        print("    " + l)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    print("docs: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
