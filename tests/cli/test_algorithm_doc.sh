#!/bin/sh
# docs/ALGORITHM.md cannot drift from the code: every command it shows is
# run again, its output compared with the text block after it, and the
# pictures it draws compared byte for byte with docs/img/ (`make figures`
# rewrites both after an intended change).
BUILD=${1:-build}
cd "$(dirname "$0")/../.." || exit 2
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    echo "SKIP: /usr/bin/python3 with numpy is needed"
    exit 0
fi
exec /usr/bin/python3 tools/doc_run.py check "$BUILD"
