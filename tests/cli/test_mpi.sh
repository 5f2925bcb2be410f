#!/bin/sh
# test_mpi.sh BUILD - stem-mpi against stem on this machine, with 1, 2 and
# 3 ranks (oversubscribed): `run` writes the bytes of `stem run` (metadata
# "seconds" aside), `check` gives the verdicts of `stem check` and takes
# its options; a failing, misled or killed rank fails the whole job within
# seconds with its message, nothing written and no temporary file left.
# Skipped, with a message, when mpirun or BUILD/stem-mpi is missing.
BUILD=${1:-build}
STEM=$BUILD/stem
MPI=$BUILD/stem-mpi
HERE=$(cd "$(dirname "$0")" && pwd)
if ! command -v mpirun >/dev/null 2>&1 || [ ! -x "$MPI" ]; then
    echo "SKIP test_mpi.sh: mpirun or $MPI missing (install libopenmpi-dev" \
         "openmpi-bin, then make)"
    exit 0
fi
# Open MPI as root in a container: allow root, and copy through shared
# memory without cross-memory attach (often refused in containers).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN="mpirun --allow-run-as-root --oversubscribe"
# a job that hangs fails its test after this long, instead of hanging it
TMO="timeout 60"
# Under AddressSanitizer, Open MPI's own allocations (some in plugins it has
# unloaded by exit) would read as leaks: keep every other check, not that.
if nm "$MPI" 2>/dev/null | grep -q '__asan_init'; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    MPIRUN="$MPIRUN -x ASAN_OPTIONS"
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# a python3 with numpy (a pyenv one first on PATH may lack it)
PY=python3
"$PY" -c 'import numpy' 2>/dev/null || PY=/usr/bin/python3
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# ------------------------------------------------------------------ run
"$STEM" gen -o "$T/a.safetensors" --tokens 1024 --heads 6 --kv-heads 2 \
    --dim 64 --seed 3 2>/dev/null || bad "gen a"
"$STEM" gen -o "$T/b.safetensors" --tokens 640 --heads 4 --kv-heads 4 \
    --dim 32 --seed 5 --dtype f32 --layout nhd 2>/dev/null || bad "gen b"
"$STEM" gen -o "$T/c.safetensors" --tokens 512 --heads 2 --kv-heads 1 \
    --dim 16 --seed 7 --dtype f16 --kind random 2>/dev/null || bad "gen c"
# a directory of .npy files, queries the last 384 of 896 positions
# (chunked prefill), and a copy with a NaN in the last query head only
"$PY" - "$T" <<'EOF' || bad "npy inputs"
import json, os, struct, sys
import numpy as np
t = sys.argv[1]
raw = open(os.path.join(t, "b.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
def get(name):
    e = hdr[name]
    b, f = e["data_offsets"]
    a = np.frombuffer(raw[8 + n + b:8 + n + f], dtype="<f4")
    return a.reshape(e["shape"]).transpose(1, 0, 2).copy()   # nhd -> hnd
q, k, v = get("q"), get("k"), get("v")
for name, q2 in (("d", q[:, -384:, :]), ("nan", q.copy())):
    os.mkdir(os.path.join(t, name))
    if name == "nan":
        q2[3, 17, 5] = np.nan
    np.save(os.path.join(t, name, "q.npy"), np.ascontiguousarray(q2))
    np.save(os.path.join(t, name, "k.npy"), k[:, -640:, :])
    np.save(os.path.join(t, name, "v.npy"), v[:, -640:, :])
EOF

same() {  # name, stem-run args...
    name=$1
    shift
    "$STEM" run "$@" -o "$T/ref.safetensors" --threads 1 2>/dev/null ||
        { bad "$name: stem run"; return; }
    for n in 1 2 3; do
        rm -f "$T/m.safetensors"
        if ! $MPIRUN -n $n "$MPI" run "$@" -o "$T/m.safetensors" \
            --threads 1 2>"$T/err"; then
            bad "$name: stem-mpi run -n $n: $(cat "$T/err")"
        elif "$PY" "$HERE/mpi_same.py" "$T/ref.safetensors" \
            "$T/m.safetensors"; then
            ok "$name: -n $n bytes of stem run"
        else
            bad "$name: -n $n differs from stem run"
        fi
    done
}
same "bf16 GQA 6/2 (partial groups)" "$T/a.safetensors"
same "f32 nhd 4/4" "$T/b.safetensors" --layout nhd
same "f16 2 heads, 3 ranks > heads" "$T/c.safetensors" --profile hpc-ops
same "dense" "$T/a.safetensors" --dense
same "npy directory, chunked" "$T/d"
same "paper profile, block 64" "$T/a.safetensors" --profile paper --block 64
same "bf16 attention arithmetic" "$T/a.safetensors" --compute bf16

# ------------------------------------------------------- failing ranks
echo keep >"$T/out.safetensors"
"$STEM" run "$T/nan" -o "$T/x.safetensors" 2>"$T/serr"
src=$?
$MPIRUN -n 3 "$MPI" run "$T/nan" -o "$T/out.safetensors" --threads 1 \
    2>"$T/err"
rc=$?
msg=$(grep 'stem-mpi:' "$T/err")
want=$(sed 's/^stem: //' "$T/serr")
if [ $rc -eq $src ] && [ $src -ne 0 ] &&
    [ "$(cat "$T/out.safetensors")" = keep ] &&
    echo "$msg" | grep -q "rank 2 of 3" &&
    echo "$msg" | grep -q "$(echo "$want" | sed 's/.*: //')" &&
    [ -z "$(ls "$T" | grep 'out.safetensors.tmp')" ]; then
    ok "a NaN on rank 2: exit $rc as stem run, '$msg', OUT kept, no" \
        "temporary file"
else
    bad "a NaN on rank 2: exit $rc ($src), '$msg' vs '$want'"
fi
$MPIRUN -n 2 "$MPI" run "$T/none.safetensors" -o "$T/o2.safetensors" \
    2>"$T/err"
rc=$?
if [ $rc -eq 2 ] && grep -q 'none.safetensors' "$T/err" &&
    [ ! -e "$T/o2.safetensors" ]; then
    ok "missing input: exit 2 (bad input) with its message"
else
    bad "missing input: exit $rc: $(cat "$T/err")"
fi
head -c 100 "$T/a.safetensors" >"$T/trunc.safetensors"
$MPIRUN -n 2 "$MPI" run "$T/trunc.safetensors" -o "$T/o3.safetensors" \
    2>"$T/err"
rc=$?
if [ $rc -eq 2 ] && [ "$(grep -c 'stem-mpi:' "$T/err")" -eq 1 ] &&
    [ ! -e "$T/o3.safetensors" ]; then
    ok "truncated input: exit 2, one message"
else
    bad "truncated input: exit $rc: $(cat "$T/err")"
fi
$MPIRUN -n 2 "$MPI" run "$T/a.safetensors" --bogus 2>"$T/err"
rc=$?
if [ $rc -eq 2 ] && [ "$(grep -c 'bogus' "$T/err")" -eq 1 ]; then
    ok "usage error: exit 2, one message"
else
    bad "usage error: exit $rc: $(cat "$T/err")"
fi

# Ranks given different inputs (another token count; the same shape with
# other bytes; another dtype) or options: refused before computing, exit
# 2, rank 0 saying which rank differs and how; no output, no temporary.
"$STEM" gen -o "$T/a2k.safetensors" --tokens 2048 --heads 6 --kv-heads 2 \
    --dim 64 --seed 3 2>/dev/null || bad "gen a2k"
"$STEM" gen -o "$T/a_s4.safetensors" --tokens 1024 --heads 6 --kv-heads 2 \
    --dim 64 --seed 4 2>/dev/null || bad "gen a_s4"
"$STEM" gen -o "$T/a_f32.safetensors" --tokens 1024 --heads 6 \
    --kv-heads 2 --dim 64 --seed 3 --dtype f32 2>/dev/null || bad "gen a_f32"
mixed() {  # name, what the message must say, rank 1's input, its options
    name=$1 want=$2 other=$3
    shift 3
    rm -f "$T"/mixed.safetensors*
    $TMO $MPIRUN -n 1 "$MPI" run "$T/a.safetensors" \
        -o "$T/mixed.safetensors" --threads 1 : \
        -n 1 "$MPI" run "$other" -o "$T/mixed.safetensors" --threads 1 \
        "$@" 2>"$T/err"
    rc=$?
    msg=$(grep 'stem-mpi:' "$T/err")
    if [ $rc -eq 2 ] && echo "$msg" | grep -q "rank 1 of 2" &&
        echo "$msg" | grep -q -- "$want" &&
        [ -z "$(ls "$T" | grep mixed.safetensors)" ]; then
        ok "mixed $name: exit 2, '$msg', nothing written"
    else
        bad "mixed $name: exit $rc, '$msg', $(ls "$T" | grep mixed)"
    fi
}
mixed "token count" "q: shape 6x2048x64 here, 6x1024x64 on rank 0" \
    "$T/a2k.safetensors"
mixed "contents" "q: same shape 6x1024x64 and dtype BF16, other bytes" \
    "$T/a_s4.safetensors"
mixed "dtype" "q: dtype F32 here, BF16 on rank 0" "$T/a_f32.safetensors"
mixed "options" "--alpha is 0.5 here, 0.7 on rank 0" "$T/a.safetensors" \
    --alpha 0.5
# a usage error on rank 1 alone: its message, not a hung job
mixed "usage error on rank 1" "--alpha: 5 is outside 0..1" \
    "$T/a.safetensors" --alpha 5

# A rank killed (SIGKILL) while the job runs: mpirun ends the others, the
# job fails; no output and no temporary file are left.  Rank 1 is killed
# once rank 0 has created the temporary file (which rank 0 removes on the
# SIGTERM mpirun sends it), or after a time.
"$STEM" gen -o "$T/big.safetensors" --tokens 8192 --heads 4 --kv-heads 2 \
    --dim 64 --seed 9 2>/dev/null || bad "gen big"
cat >"$T/die.sh" <<'EOF'
#!/bin/sh
# die.sh SECONDS CMD...: CMD, which kills itself after SECONDS on rank 1
if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then (sleep "$1"; kill -9 $$) & fi
shift
exec "$@"
EOF
cat >"$T/die_at.sh" <<'EOF'
#!/bin/sh
# die_at.sh GLOB CMD...: CMD, which kills itself on rank 1 once a file
# matching GLOB exists
if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then
    (while kill -0 $$ 2>/dev/null; do
        for f in $1; do [ -e "$f" ] && kill -9 $$; done
    done) &
fi
shift
exec "$@"
EOF
chmod +x "$T/die.sh" "$T/die_at.sh"
$TMO $MPIRUN -n 2 "$T/die_at.sh" "$T/killed.safetensors.tmp.*" "$MPI" run \
    "$T/big.safetensors" -o "$T/killed.safetensors" --threads 1 \
    >"$T/err" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] &&
    [ -z "$(ls "$T" | grep killed.safetensors)" ]; then
    ok "run, rank 1 killed: exit $rc, nothing left"
else
    bad "run, rank 1 killed: exit $rc, $(ls "$T" | grep killed)"
fi

# ---------------------------------------------------------------- check
# Conformance pairs, doctored copies (tests/cli/check_doctor.py), a
# single-file dump in a directory of dumps, and a dump stem check refuses:
# each dump's verdict from stem-mpi must be stem check's exit code.
D=$(cd "$HERE/../data/conformance" && pwd)
DOC="$PY $HERE/check_doctor.py"
mkdir -p "$T/dumps"
$DOC add_block "$D/s2.angelslim.safetensors" "$T/add.safetensors" >/dev/null
"$STEM" run --dense "$D/s2.in.safetensors" -o "$T/dense_run.safetensors" \
    >/dev/null 2>&1
$DOC dense "$D/s2.angelslim.safetensors" "$T/dense_run.safetensors" \
    "$T/dense1.safetensors" 1 >/dev/null
$DOC bad_shape "$D/s2.angelslim.safetensors" "$T/shape.safetensors" \
    >/dev/null
"$PY" -c '
import sys
sys.path.insert(0, sys.argv[1])
import check_doctor as c
a, ma = c.read_st(sys.argv[2])
b, mb = c.read_st(sys.argv[3])
a.update(b)
ma.update(mb)
c.write_st(sys.argv[4], a, ma)' "$HERE" "$D/r1.in.safetensors" \
    "$D/r1.angelslim.safetensors" "$T/dumps/r1.safetensors" ||
    bad "merged dump"
# name IN GPU (GPU "-": IN holds both)
set -- s2 "$D/s2.in.safetensors" "$D/s2.angelslim.safetensors" \
    add "$D/s2.in.safetensors" "$T/add.safetensors" \
    dense1 "$D/s2.in.safetensors" "$T/dense1.safetensors" \
    shape "$D/s2.in.safetensors" "$T/shape.safetensors" \
    r1 "$T/dumps/r1.safetensors" -
want=""
pairs=""
while [ $# -ge 3 ]; do
    if [ "$3" = - ]; then
        "$STEM" check "$2" --threads 1 >/dev/null 2>&1
        src=$?
    else
        "$STEM" check "$2" "$3" --threads 1 >/dev/null 2>&1
        src=$?
        pairs="$pairs --pair $2 $3"
    fi
    want="$want $1=$src"
    shift 3
done
echo "     stem check:$want"
for n in 1 2 3; do
    $MPIRUN -n $n "$MPI" check $pairs "$T/dumps" --threads 1 \
        --json "$T/mpi.json" >"$T/out" 2>"$T/err"
    rc=$?
    got=$("$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
code = {"pass": 0, "fail": 1, "bad input": 2}
names = ["s2", "add", "dense1", "shape", "r1"]
print("".join(" %s=%d" % (n, code[d["result"]])
              for n, d in zip(names, r["dumps"])))' "$T/mpi.json" 2>&1)
    if [ "$got" = "$want" ] && [ $rc -eq 2 ] &&
        grep -q '^FAIL .*add.safetensors.*heads 0 ' "$T/out" &&
        grep -q '^FAIL .*dense1.safetensors.*heads 1 ' "$T/out" &&
        grep -q '^BAD .*shape.safetensors' "$T/out" &&
        grep -q '^worst offenders' "$T/out"; then
        ok "check -n $n: verdicts of stem check,$got, exit 2"
    else
        bad "check -n $n: exit $rc,$got (want$want)"
        sed 's/^/     | /' "$T/out" "$T/err"
    fi
done
# without the refused dump: exit 1; the passing dump alone: exit 0
$MPIRUN -n 2 "$MPI" check --pair "$D/s2.in.safetensors" \
    "$T/add.safetensors" "$T/dumps" --threads 1 >"$T/out" 2>&1
rc1=$?
$MPIRUN -n 3 "$MPI" check "$T/dumps" --threads 1 >"$T/out" 2>&1
rc0=$?
if [ $rc1 -eq 1 ] && [ $rc0 -eq 0 ]; then
    ok "check exit codes: 1 on a fault, 0 when all pass (1 unit, 3 ranks)"
else
    bad "check exit codes: $rc1 (want 1), $rc0 (want 0)"
fi
$MPIRUN -n 2 "$MPI" check "$T/dumps" --heads 1 >"$T/out" 2>&1
[ $? -eq 2 ] && ok "check usage error: exit 2" || bad "check usage error"

# stem check's options are stem-mpi check's: --compute bf16 (and --sigmas)
# give stem check's verdict and exit code.
S2I="$D/s2.in.safetensors" S2G="$D/s2.angelslim.safetensors"
"$STEM" check "$S2I" "$S2G" --compute bf16 --sigmas 3 --threads 1 \
    >/dev/null 2>&1
src=$?
$TMO $MPIRUN -n 2 "$MPI" check --pair "$S2I" "$S2G" --compute bf16 \
    --sigmas 3 --threads 1 >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -eq $src ] && [ $src -le 1 ]; then
    ok "check --pair IN GPU --compute bf16 --sigmas 3: exit $rc as stem check"
else
    bad "check --compute bf16: exit $rc, stem check $src: $(cat "$T/err")"
fi
# a usage error on rank 1 alone: its message, exit 2, not a hung job
$TMO $MPIRUN -n 1 "$MPI" check "$T/dumps" --threads 1 : \
    -n 1 "$MPI" check "$T/dumps" --threads 1 --sigmas x >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -eq 2 ] && grep -q "sigmas.*(rank 1 of 2)" "$T/err"; then
    ok "check, usage error on rank 1: exit 2, '$(grep stem-mpi "$T/err")'"
else
    bad "check, usage error on rank 1: exit $rc: $(cat "$T/err")"
fi
# One dump name, other bytes on one rank (as a stale node-local copy):
# ranks 1 and 2 work in directories holding different d.safetensors; the
# dump is bad input, exit 2, instead of a verdict mixing the two.
mkdir -p "$T/node1" "$T/node2"
"$PY" -c '
import sys
sys.path.insert(0, sys.argv[1])
import check_doctor as c
a, ma = c.read_st(sys.argv[2])
b, mb = c.read_st(sys.argv[3])
a.update(b)
ma.update(mb)
c.write_st(sys.argv[4], a, ma)
dt, q = a["q"]
q = q.copy()
q.flat[0] += 1.0
a["q"] = (dt, q)
c.write_st(sys.argv[5], a, ma)' "$HERE" "$S2I" "$S2G" \
    "$T/node1/d.safetensors" "$T/node2/d.safetensors" || bad "stale copy"
ABS=$(cd "$(dirname "$MPI")" && pwd)/stem-mpi
$TMO $MPIRUN -n 2 -wdir "$T/node1" "$ABS" check d.safetensors --threads 1 : \
    -n 1 -wdir "$T/node2" "$ABS" check d.safetensors --threads 1 \
    >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -eq 2 ] && grep -q '^BAD .*read it otherwise than rank' "$T/out"
then
    ok "check, a dump read otherwise by one rank: exit 2, $(grep BAD "$T/out")"
else
    bad "check, a dump read otherwise by one rank: exit $rc"
    sed 's/^/     | /' "$T/out" "$T/err"
fi
# A worker killed while it judges: the job fails, no temporary left.
before=$(ls /tmp | grep -c '^stem-mpi-')
$TMO $MPIRUN -n 2 "$T/die.sh" 1.5 "$MPI" check --pair "$S2I" "$S2G" \
    --threads 1 >"$T/out" 2>&1
rc=$?
after=$(ls /tmp | grep -c '^stem-mpi-')
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$after" -le "$before" ]; then
    ok "check, rank 1 killed: exit $rc, no temporary left"
else
    bad "check, rank 1 killed: exit $rc, /tmp/stem-mpi-*: $before, $after"
fi

echo "test_mpi.sh: $fails failed"
[ $fails -eq 0 ]
