#!/usr/bin/python3
"""doc_run.py - run the commands of a document and hold it to their output.

    doc_run.py check  BUILD [DOC]   (make figures-check, make test)
    doc_run.py update BUILD [DOC]   (make figures)

DOC (default docs/ALGORITHM.md) shows commands in ```sh blocks, each
optionally followed by a ```text block: what the commands print on stdout.
The blocks run in order, as `sh -e`, in one scratch directory (files made by
one block are there for the next) that holds an empty docs/img/, with
BUILD/stem first on PATH as `stem` (and /usr/bin/python3, which has NumPy,
as `python3`, the package python/stem_attn on its path with BUILD's
library).  Blocks that start with `python3` are skipped for a build
without BUILD/libstem.so and for a sanitizer build, whose library an
ordinary python3 cannot load.  Pictures the commands write under docs/img/
are the document's figures.

check: every text block must equal the output (trailing blanks aside) and
every figure must equal, byte for byte, the one committed under docs/img/;
the differences are printed and the exit status is 1.
update: rewrite the text blocks with the output and copy the figures to
docs/img/.
"""
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile

BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def blocks(text):
    """(kind, body, start, end) of every fenced block of text."""
    return [(m.group(1), m.group(2), m.start(2), m.end(2))
            for m in BLOCK.finditer(text)]


def norm(s):
    return "\n".join(line.rstrip() for line in s.rstrip("\n").split("\n"))


def sanitized(lib):
    """True when lib is an ASan/TSan build, which an ordinary python3 cannot
    load (tests/run-tests.sh skips the Python tests for it likewise)."""
    try:
        r = subprocess.run(["nm", "-D", lib], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, universal_newlines=True)
    except OSError:
        return False
    return "__asan_init" in r.stdout or "__tsan_init" in r.stdout


def main(argv):
    if len(argv) < 3 or argv[1] not in ("check", "update"):
        sys.stderr.write(__doc__)
        return 2
    mode, build = argv[1], os.path.abspath(argv[2])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    doc = os.path.abspath(argv[3]) if len(argv) > 3 else os.path.join(
        root, "docs", "ALGORITHM.md")
    stem = os.path.join(build, "stem")
    if not os.access(stem, os.X_OK):
        sys.stderr.write("doc_run.py: %s not found (build first)\n" % stem)
        return 2
    text = open(doc).read()
    bl = blocks(text)
    failures = 0
    edits = []  # (start, end, new body) of text blocks to rewrite
    with tempfile.TemporaryDirectory(prefix="stem-doc-") as work:
        bindir = os.path.join(work, ".bin")
        os.makedirs(bindir)
        os.makedirs(os.path.join(work, "docs", "img"))
        os.symlink(stem, os.path.join(bindir, "stem"))
        if os.path.exists("/usr/bin/python3"):  # the one with numpy
            os.symlink("/usr/bin/python3", os.path.join(bindir, "python3"))
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"],
                   STEM_LIBRARY=os.path.join(build, "libstem.so"),
                   PYTHONPATH=os.path.join(root, "python"))
        env.pop("STEM_ISA", None)
        lib = os.path.join(build, "libstem.so")
        no_python = not os.path.exists(lib) or sanitized(lib)
        skipped = 0
        for i, (kind, body, _, _) in enumerate(bl):
            if kind != "sh":
                continue
            if no_python and body.lstrip().startswith("python3"):
                skipped += 1
                continue
            r = subprocess.run(["sh", "-e", "-c", body], cwd=work, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True)
            if r.returncode != 0:
                print("FAIL: block exited %d:\n%s\n%s" % (r.returncode, body,
                                                         r.stderr))
                failures += 1
                continue
            nxt = bl[i + 1] if i + 1 < len(bl) else None
            if not nxt or nxt[0] != "text":
                continue
            got, want = norm(r.stdout), norm(nxt[1])
            if got == want:
                continue
            if mode == "update":
                edits.append((nxt[2], nxt[3], got + "\n"))
                continue
            failures += 1
            print("FAIL: the output of\n%s differs from the text after it:"
                  % body.rstrip())
            sys.stdout.writelines(difflib.unified_diff(
                (want + "\n").splitlines(True), (got + "\n").splitlines(True),
                "document", "output", n=1))
        made = sorted(os.listdir(os.path.join(work, "docs", "img")))
        for name in made:
            new = os.path.join(work, "docs", "img", name)
            old = os.path.join(root, "docs", "img", name)
            same = (os.path.exists(old) and
                    open(old, "rb").read() == open(new, "rb").read())
            if same:
                continue
            if mode == "update":
                os.makedirs(os.path.dirname(old), exist_ok=True)
                shutil.copyfile(new, old)
                print("wrote docs/img/%s" % name)
            else:
                failures += 1
                print("FAIL: docs/img/%s differs from what its command "
                      "draws now (make figures redraws it)" % name)
    if edits:
        for start, end, body in sorted(edits, reverse=True):
            text = text[:start] + body + text[end:]
        open(doc, "w").write(text)
        print("updated %d output blocks of %s" % (len(edits), doc))
    ran = sum(1 for b in bl if b[0] == "sh")
    print("%s: %d command blocks (%d Python blocks skipped: no library "
          "python3 can load), %d figures, %d failures"
          % (os.path.relpath(doc, root), ran, skipped, len(made), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
