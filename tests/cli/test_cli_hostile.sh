#!/bin/sh
# test_cli_hostile.sh BUILD - hostile and extreme inputs to the stem tool.
#
# Crafts safetensors and .npy files by hand (python3, standard library only):
# shape products that overflow, offsets outside the file, data shorter than
# declared, unknown dtypes, negative and absurd dimensions, missing tensors,
# q/k dim mismatch, Hq not a multiple of Hkv, NaN / Inf in q, k and v,
# finite values too large for float32 arithmetic (1e30, 1e300), empty
# tensors, d = 1, d = 256 and d = 257, one token, bad header lengths, and
# hostile command lines.  Each must exit 2 (bad input: data or command
# line) with a message on stderr, or exit 0 with a correct result (one
# token: out equals v exactly).  Every failing run writes to an existing
# output file, which must come out byte-identical.
# Ends with "hostile: N passed, M failed"; exits 1 if any failed.
LABEL=hostile
. "$(dirname "$0")/../common/cli_lib.sh"
PY=python3

# The existing output every failing run aims at.
KEEP="$T/existing.safetensors"
printf 'precious bytes that a failed run must not clobber\n' >"$KEEP"
cp "$KEEP" "$T/existing.orig"

# expect NAME RC ARGS...: `stem ARGS` exits RC; on RC != 0 a message is on
# stderr, nothing crashed, and $KEEP is unchanged (cli_lib.sh's expect, made
# stricter and given stem's arguments alone).
expect() {
    name=$1
    want=$2
    shift 2
    "$STEM" "$@" >"$T/stdout" 2>"$T/stderr"
    got=$?
    why=""
    [ "$got" -eq "$want" ] || why="exit $got, expected $want"
    if [ -z "$why" ] && [ "$want" -ne 0 ]; then
        [ -s "$T/stderr" ] || why="no message on stderr"
        cmp -s "$KEEP" "$T/existing.orig" || why="existing output clobbered"
        grep -q -i -e 'sanitizer' -e 'runtime error' "$T/stderr" && why="sanitizer report"
    fi
    if [ -z "$why" ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: $why: stem $*"
        sed 's/^/    /' "$T/stderr" | head -n 8
        cp "$T/existing.orig" "$KEEP"
    fi
}


# ------------------------------------------------------------ the files
$PY - "$T" <<'PYEOF' || { echo "hostile: 0 passed, 1 failed"; exit 1; }
import json, math, os, struct, sys

T = sys.argv[1]
FMT = {"F32": "f", "F64": "d"}


def st(name, tensors, hlen=None, cut=0, raw_header=None, extra=b""):
    """Write T/name: tensors is [(name, dtype, shape, values or bytes,
    offsets or None)]."""
    hdr, data = {}, b""
    for tn, dt, shape, vals, offs in tensors:
        if isinstance(vals, bytes):
            b = vals
        elif dt in FMT:
            b = struct.pack("<%d%s" % (len(vals), FMT[dt]), *vals)
        elif dt in ("BF16", "F16"):
            b = b"".join(struct.pack("<e", v) for v in vals) if dt == "F16" else \
                b"".join(struct.pack("<f", v)[2:] for v in vals)
        else:
            b = bytes(vals)
        hdr[tn] = {"dtype": dt, "shape": shape,
                   "data_offsets": offs if offs else [len(data), len(data) + len(b)]}
        data += b
    h = raw_header if raw_header is not None else json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    n = len(h) if hlen is None else hlen
    blob = struct.pack("<Q", n) + h + data + extra
    if cut:
        blob = blob[:-cut]
    open(os.path.join(T, name), "wb").write(blob)


def vals(n, seed=1):
    return [math.sin(0.37 * i + seed) for i in range(n)]


def qkv(hq=2, hkv=1, n=256, d=16, dt="F32", qd=None, patch=None):
    """Consistent q, k, v; patch(name, list) may poison a tensor."""
    out = []
    for tn, h, dd in (("q", hq, qd or d), ("k", hkv, d), ("v", hkv, d)):
        v = vals(h * n * dd, len(tn))
        if patch:
            patch(tn, v)
        out.append((tn, dt, [h, n, dd], v, None))
    return out


st("good.safetensors", qkv())
st("overflow.safetensors", [("q", "F32", [2**62, 2**3], b"\0" * 16, None)] + qkv()[1:])
st("overflow2.safetensors", [("q", "F32", [2**31, 2**31, 2**31], b"\0" * 16, None)] + qkv()[1:])
st("offsets_out.safetensors", [("q", "F32", [2, 256, 16], vals(2 * 256 * 16), [0, 10**9])] + qkv()[1:])
st("offsets_neg.safetensors", [("q", "F32", [2, 256, 16], vals(2 * 256 * 16), [-4, 32764])] + qkv()[1:])
st("offsets_reversed.safetensors", [("q", "F32", [1], b"\0" * 4, [4, 0])])
st("offsets_2e64.safetensors", [("q", "F32", [1], b"\0" * 4, [18446744073709551612, 18446744073709551616])])
st("short.safetensors", qkv(), cut=100)
st("unknown_dtype.safetensors", [("q", "F8_E4M3", [2, 256, 16], b"\0" * 8192, None)] + qkv()[1:])
st("int_dtype.safetensors", [("q", "I32", [2, 256, 16], b"\0" * 32768, None)] + qkv()[1:])
st("neg_dim.safetensors", [("q", "F32", [2, -256, 16], b"", None)] + qkv()[1:])
st("frac_dim.safetensors", [("q", "F32", [2, 25.5, 16], b"", None)] + qkv()[1:])
st("absurd_dim.safetensors", [("q", "F32", [1, 2**40, 128], b"\0" * 64, None)] + qkv()[1:])
st("missing_v.safetensors", qkv()[:2])
st("dim_mismatch.safetensors", qkv(qd=8))
st("gqa.safetensors", qkv(hq=3, hkv=2))
st("nan_q.safetensors", qkv(patch=lambda n, v: v.__setitem__(-1, float("nan")) if n == "q" else None))
st("inf_k.safetensors", qkv(patch=lambda n, v: v.__setitem__(7, float("inf")) if n == "k" else None))
st("ninf_v.safetensors", qkv(patch=lambda n, v: v.__setitem__(0, float("-inf")) if n == "v" else None))
st("nan_bf16.safetensors", qkv(dt="BF16", patch=lambda n, v: v.__setitem__(100, float("nan")) if n == "v" else None))
st("huge_f32.safetensors", qkv(patch=lambda n, v: v.__setitem__(9, 1e30) if n == "k" else None))
st("huge_f64.safetensors", qkv(dt="F64", patch=lambda n, v: v.__setitem__(3, 1e300) if n == "q" else None))
st("inf_f16.safetensors", qkv(dt="F16", patch=lambda n, v: v.__setitem__(5, float("inf")) if n == "q" else None))
st("empty.safetensors", qkv(n=0))
st("zero_heads.safetensors", qkv(hq=0, hkv=0))
st("d1.safetensors", qkv(d=1))
st("d256.safetensors", qkv(d=256, n=130))
st("d257.safetensors", qkv(d=257, n=3))
st("one_token.safetensors", qkv(hq=4, hkv=2, n=1, d=8))
st("q_2d.safetensors", [("q", "F32", [256, 16], vals(256 * 16), None)] + qkv()[1:])
st("q_5d.safetensors", [("q", "F32", [1, 1, 2, 256, 16], vals(2 * 256 * 16), None)] + qkv()[1:])
st("hlen_huge.safetensors", qkv(), hlen=2**63)
st("hlen_zero.safetensors", qkv(), hlen=0)
st("hlen_past_end.safetensors", qkv(), hlen=10**6)
st("not_json.safetensors", [], raw_header=b'{"q": {"dtype": "F32", "shape": [1], ')
st("not_object.safetensors", [], raw_header=b'[1, 2, 3]')
st("dup_names.safetensors", [], raw_header=b'{"q":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"q":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', extra=b"\0" * 4)
st("deep_json.safetensors", [], raw_header=b"[" * 100000 + b"]" * 100000)
open(os.path.join(T, "tiny.safetensors"), "wb").write(b"\x01\x00\x00")
open(os.path.join(T, "empty_file.safetensors"), "wb").write(b"")


def npy(name, descr, shape, data, cut=0, magic=b"\x93NUMPY", ver=1, hlen=None):
    d = ("{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)).encode()
    total = 10 + len(d) + 1
    d += b" " * ((64 - total % 64) % 64) + b"\n"
    n = len(d) if hlen is None else hlen
    blob = magic + bytes([ver, 0]) + struct.pack("<H", n) + d + data
    if cut:
        blob = blob[:-cut]
    os.makedirs(os.path.dirname(os.path.join(T, name)), exist_ok=True)
    open(os.path.join(T, name), "wb").write(blob)


def npy_dir(dname, q=None, k=None, v=None):
    good = ("<f4", "(1, 256, 16)", struct.pack("<4096f", *vals(4096)))
    for tn, spec in (("q", q), ("k", k), ("v", v)):
        descr, shape, data = spec or good
        npy("%s/%s.npy" % (dname, tn), descr, shape, data)


npy_dir("npy_good")
npy_dir("npy_overflow", q=("<f4", "(4611686018427387904, 4)", b"\0" * 64))
npy_dir("npy_short", k=("<f4", "(1, 256, 16)", b"\0" * 100))
npy_dir("npy_bigendian", v=(">f4", "(1, 256, 16)", b"\0" * 16384))
npy_dir("npy_unknown", q=("<c8", "(1, 256, 16)", b"\0" * 32768))
npy_dir("npy_negative", q=("<f4", "(1, -256, 16)", b""))
npy_dir("npy_huge_number", q=("<f4", "(1, 99999999999999999999999, 16)", b""))
npy_dir("npy_nan", v=("<f4", "(1, 256, 16)", struct.pack("<4096f", *([float("nan")] + vals(4095)))))
npy("npy_badmagic/q.npy", "<f4", "(1,)", b"\0" * 4, magic=b"\x93NUMPZ")
npy("npy_hlen/q.npy", "<f4", "(1,)", b"\0" * 4, hlen=60000)
npy("npy_version/q.npy", "<f4", "(1,)", b"\0" * 4, ver=9)
os.makedirs(os.path.join(T, "npy_none"), exist_ok=True)
PYEOF

# ------------------------------------------------------------ the runs
O="$KEEP"
expect "good input runs" 0 run "$T/good.safetensors" -o "$T/good.out.safetensors"
expect "npy directory runs" 0 run "$T/npy_good" -o "$T/npy.out.safetensors"
for f in overflow overflow2 offsets_out offsets_neg offsets_reversed offsets_2e64 \
         short unknown_dtype int_dtype neg_dim frac_dim absurd_dim missing_v \
         dim_mismatch gqa nan_q inf_k ninf_v nan_bf16 inf_f16 huge_f32 huge_f64 empty zero_heads \
         d257 q_2d q_5d hlen_huge hlen_zero hlen_past_end not_json not_object \
         dup_names deep_json tiny empty_file; do
    expect "run $f" 2 run "$T/$f.safetensors" -o "$O"
    expect "run --dense $f" 2 run "$T/$f.safetensors" --dense -o "$O"
done
for f in npy_overflow npy_short npy_bigendian npy_unknown npy_negative \
         npy_huge_number npy_nan npy_badmagic npy_hlen npy_version npy_none; do
    expect "run $f" 2 run "$T/$f" -o "$O"
done
expect "run: input missing" 2 run "$T/absent.safetensors" -o "$O"
expect "run: input is /dev/null" 2 run /dev/null -o "$O"
# a directory that holds other files is not an output directory: refused
expect "run: output is a directory of other files" 2 run "$T/good.safetensors" -o "$T"
expect "run: output directory missing" 2 run "$T/good.safetensors" -o "$T/no/such/dir/x.safetensors"
expect "run --f64 overflow" 2 run "$T/overflow.safetensors" -o "$O" --f64
for d in d1 d256; do
    expect "run $d" 0 run "$T/$d.safetensors" -o "$T/$d.out.safetensors"
    expect "run --dense $d" 0 run "$T/$d.safetensors" --dense -o "$T/$d.dense.safetensors"
done

# one token: softmax over one key, so out is v exactly (per GQA group)
expect "run one token" 0 run "$T/one_token.safetensors" -o "$T/one.out.safetensors"
ok "one token: out equals v" $PY - "$T/one_token.safetensors" "$T/one.out.safetensors" <<'PYEOF'
import json, struct, sys
def read(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, e in h.items():
        if k == "__metadata__":
            continue
        a, z = e["data_offsets"]
        raw = b[8 + n + a:8 + n + z]
        out[k] = (e["shape"], struct.unpack("<%df" % (len(raw) // 4), raw) if e["dtype"] == "F32" else raw)
    return out
i, o = read(sys.argv[1]), read(sys.argv[2])
(hq, n, d), v = i["q"][0], i["v"][1]
hkv = i["v"][0][0]
out = o["out"][1]
want = [struct.unpack("<f", struct.pack("<f", v[(h // (hq // hkv)) * d + c]))[0]
        for h in range(hq) for c in range(d)]
sys.exit(0 if list(out) == want and o["out"][0] == [hq, 1, d] else 1)
PYEOF

# ------------------------------------------------------------ command lines
expect "gen: tokens overflow" 2 gen -o "$O" --tokens 99999999999999999999999 --heads 1 --kv-heads 1 --dim 8
expect "gen: tokens 0" 2 gen -o "$O" --tokens 0 --heads 1 --kv-heads 1 --dim 8
expect "gen: negative heads" 2 gen -o "$O" --tokens 8 --heads -1 --kv-heads 1 --dim 8
expect "gen: dim 257" 2 gen -o "$O" --tokens 8 --heads 1 --kv-heads 1 --dim 257
expect "gen: heads not a multiple" 2 gen -o "$O" --tokens 8 --heads 3 --kv-heads 2 --dim 8
expect "gen: empty value" 2 gen -o "$O" --tokens "" --heads 1 --kv-heads 1 --dim 8
expect "gen: trailing junk" 2 gen -o "$O" --tokens 8x --heads 1 --kv-heads 1 --dim 8
expect "gen: missing value" 2 gen -o "$O" --tokens 8 --heads 1 --kv-heads 1 --dim
expect "run: alpha nan" 2 run "$T/good.safetensors" -o "$O" --alpha nan
expect "run: alpha inf" 2 run "$T/good.safetensors" -o "$O" --alpha inf
expect "run: keep-ratio 2" 2 run "$T/good.safetensors" -o "$O" --keep-ratio 2
expect "run: block 0" 2 run "$T/good.safetensors" -o "$O" --block 0
expect "run: stride not dividing" 2 run "$T/good.safetensors" -o "$O" --stride 7
expect "run: threads absurd" 2 run "$T/good.safetensors" -o "$O" --threads 99999999999
expect "run: threads negative" 2 run "$T/good.safetensors" -o "$O" --threads -3
expect "run: unknown profile" 2 run "$T/good.safetensors" -o "$O" --profile nope
expect "run: unknown layout" 2 run "$T/good.safetensors" -o "$O" --layout xyz
expect "run: unknown option" 2 run "$T/good.safetensors" -o "$O" --frobnicate
expect "run: two inputs" 2 run "$T/good.safetensors" "$T/good.safetensors" -o "$O"
expect "run: no output" 2 run "$T/good.safetensors"
expect "unknown command" 2 frobnicate
expect "no command" 2
ok "stem run wrote nothing next to the existing output" \
    test "$(ls "$T" | grep -c -e '^existing' -e '\.tmp')" -eq 2

# ------------------------------------------------- hostile paths, metadata
# has NAME PATTERN: the last run's stderr matches PATTERN
has() {
    if grep -q -e "$2" "$T/stderr"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $1: stderr lacks '$2'"
        sed 's/^/    /' "$T/stderr" | head -n 4
    fi
}
$PY - "$T" <<'PYEOF' || { echo "FAIL crafting the second files"; fail=$((fail + 1)); }
import json, struct, sys
T = sys.argv[1]
def st(path, header, data):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
qkv = bytes(4 * 2 * 8 * 4)
# dtype "F32\u0000": libcjson's C string would read "F32"
h = {"q": {"dtype": "F32", "shape": [2, 8, 4], "data_offsets": [0, 256]},
     "k": {"dtype": "F32", "shape": [2, 8, 4], "data_offsets": [256, 512]},
     "v": {"dtype": "F32", "shape": [2, 8, 4], "data_offsets": [512, 768]}}
raw = json.dumps(h).replace('"F32"', '"F32\\u0000"', 1).encode()
raw += b" " * (-len(raw) % 8)
open(T + "/nul_dtype.safetensors", "wb").write(
    struct.pack("<Q", len(raw)) + raw + bytes(768))
# k and v share their bytes
h2 = dict(h)
h2["v"] = {"dtype": "F32", "shape": [2, 8, 4], "data_offsets": [256, 512]}
st(T + "/overlap.safetensors", h2, bytes(768))
# a NUL inside a .npy descr: '<f4\0x' would read as '<f4'
import os
os.makedirs(T + "/npy_nul", exist_ok=True)
for n in "qkv":
    d = "{'descr': '<f4%s', 'fortran_order': False, 'shape': (2, 8, 4), }" % (
        "\0x" if n == "q" else "")
    d = d.encode()
    d += b" " * (-(10 + len(d) + 1) % 64) + b"\n"
    open("%s/npy_nul/%s.npy" % (T, n), "wb").write(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d + bytes(256))
PYEOF
expect "run: dtype F32\\u0000" 2 run "$T/nul_dtype.safetensors" -o "$O"
has "run: dtype F32\\u0000 named" 'NUL'
expect "run: overlapping data_offsets" 2 run "$T/overlap.safetensors" -o "$O"
has "run: overlapping data_offsets named" "share data bytes"
expect "run: NUL in a .npy descr" 2 run "$T/npy_nul" -o "$O"
has "run: NUL in a .npy descr named" 'NUL byte'

# inputs that are not regular files are refused at once, never waited on
mkfifo "$T/fifo.safetensors"
TO=""
command -v timeout >/dev/null 2>&1 && TO="timeout 20"
expect_to() {
    name=$1
    shift
    $TO "$STEM" "$@" >"$T/stdout" 2>"$T/stderr" </dev/null
    got=$?
    if [ "$got" -eq 2 ] && [ -s "$T/stderr" ] && cmp -s "$KEEP" "$T/existing.orig"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: exit $got (124: it waited), expected 2"
        sed 's/^/    /' "$T/stderr" | head -n 4
    fi
}
expect_to "run: input is a FIFO" run "$T/fifo.safetensors" -o "$O"
has "run: input is a FIFO named" 'FIFO'
mkdir "$T/fifodir"
cp "$T/npy_nul/k.npy" "$T/npy_nul/v.npy" "$T/fifodir/"
mkfifo "$T/fifodir/q.npy"
expect_to "run: q.npy of a directory is a FIFO" run "$T/fifodir" -o "$O"
expect_to "check: input is a FIFO" check "$T/fifo.safetensors"
expect_to "mask: input is a FIFO" mask "$T/fifo.safetensors" -o "$T/m.png"

# outputs: only a regular file (or an earlier output directory) is replaced
mkfifo "$T/out.fifo"
expect_to "run: output is a FIFO" run "$T/good.safetensors" -o "$T/out.fifo"
ok "run: the FIFO output is still a FIFO" test -p "$T/out.fifo"
ln -s "$KEEP" "$T/out.link"
expect "run: output is a symlink" 2 run "$T/good.safetensors" -o "$T/out.link"
ok "run: the symlink output is still a symlink" test -L "$T/out.link"
ok "run: the symlink's target is untouched" cmp -s "$KEEP" "$T/existing.orig"
ln -s "$T/nowhere" "$T/dangling.link"
expect "run: output is a dangling symlink" 2 run "$T/good.safetensors" -o "$T/dangling.link"
ok "run: nothing created through the dangling symlink" test ! -e "$T/nowhere"
expect "gen: output is a symlink" 2 gen -o "$T/out.link" --tokens 8 --heads 1 --kv-heads 1 --dim 8
ok "gen: the symlink output is still a symlink" test -L "$T/out.link"
expect_to "gen: output is a FIFO" gen -o "$T/out.fifo" --tokens 8 --heads 1 --kv-heads 1 --dim 8
mkdir "$T/realdir"
ln -s "$T/realdir" "$T/dir.link"
expect "run: output directory is a symlink" 2 run "$T/good.safetensors" -o "$T/dir.link/"
ok "run: the directory symlink is still one" test -L "$T/dir.link"
if [ "$(id -u)" -eq 0 ] && mknod "$T/chardev" c 1 3 2>/dev/null; then
    # a node of our own (the null device's numbers) in the test folder
    expect "run: output is a character device" 2 run "$T/good.safetensors" -o "$T/chardev"
    ok "run: the device node is still one" test -c "$T/chardev"
    has "run: the device named" 'character device'
else
    echo "SKIP the character-device output (needs root and mknod)"
fi

# sizes from file metadata are bounded, and an unusable value is named
# with the file it came from
"$STEM" run "$T/good.safetensors" -o "$T/meta_run/" >/dev/null 2>&1
sed 's/"prompt_blocks":[[:space:]]*"[0-9]*"/"prompt_blocks": "250000000"/' \
    "$T/meta_run/metadata.json" >"$T/meta.tmp" && mv "$T/meta.tmp" "$T/meta_run/metadata.json"
expect "check: metadata prompt_blocks 250000000" 2 check "$T/good.safetensors" "$T/meta_run"
has "check: metadata prompt_blocks named with its file" "metadata prompt_blocks=250000000 in $T/meta_run/metadata.json"
sed 's/"prompt_blocks":[[:space:]]*"[0-9]*"/"prompt_blocks": "0", "block_size": "5000"/' \
    "$T/meta_run/metadata.json" >"$T/meta.tmp" && mv "$T/meta.tmp" "$T/meta_run/metadata.json"
expect "check: metadata block_size 5000" 2 check "$T/good.safetensors" "$T/meta_run"
has "check: metadata block_size named with its file" "metadata block_size=5000 in $T/meta_run/metadata.json: must be an integer in 16..4096"
sed 's/"block_size":[[:space:]]*"5000"/"block_size": "2"/' \
    "$T/meta_run/metadata.json" >"$T/meta.tmp" && mv "$T/meta.tmp" "$T/meta_run/metadata.json"
expect "check: metadata block_size 2 (work quadratic in the tokens)" 2 check "$T/good.safetensors" "$T/meta_run"
has "check: metadata block_size 2 refused" "metadata block_size=2 in $T/meta_run/metadata.json: must be an integer in 16..4096"
sed 's/"block_size":[[:space:]]*"2"/"block_size": true/' \
    "$T/meta_run/metadata.json" >"$T/meta.tmp" && mv "$T/meta.tmp" "$T/meta_run/metadata.json"
expect "check: metadata block_size true" 2 check "$T/good.safetensors" "$T/meta_run"
has "check: metadata block_size true refused" "metadata block_size='true'"

# prompt_blocks from an option has the bound metadata's has (2^24), in
# every command that takes it, dense runs too: refused before any work
BIGPB=16777217
for cmd in "run $T/good.safetensors -o $KEEP --dense" \
           "run $T/good.safetensors -o $KEEP" \
           "budget --blocks 16" \
           "explain $T/good.safetensors --head 0" \
           "mask $T/good.out.safetensors --diff $T/good.safetensors -o $KEEP" \
           "check $T/good.safetensors $T/good.out.safetensors"; do
    # shellcheck disable=SC2086 # the command's words
    expect "${cmd%% *}: --prompt-blocks $BIGPB" 2 $cmd --prompt-blocks $BIGPB
    has "${cmd%% *}: --prompt-blocks $BIGPB named with its range" \
        "prompt-blocks: $BIGPB is outside 0..16777216"
done
expect "run --dense: --prompt-blocks 2^24 runs" 0 run "$T/good.safetensors" \
    -o "$T/pb.safetensors" --dense --prompt-blocks 16777216

# errors name the tensor and its dims
$PY - "$T" <<'PYEOF' || { echo "FAIL crafting the shape files"; fail=$((fail + 1)); }
import json, struct, sys
T = sys.argv[1]
def st(path, shapes):
    h, off = {}, 0
    for n, s in shapes.items():
        size = 4 * s[0] * s[1] * s[2]
        h[n] = {"dtype": "F32", "shape": s, "data_offsets": [off, off + size]}
        off += size
    b = json.dumps(h).encode()
    b += b" " * (-len(b) % 8)
    open(path, "wb").write(struct.pack("<Q", len(b)) + b + bytes(off))
st(T + "/lq_gt_lk.safetensors", {"q": [2, 256, 8], "k": [1, 128, 8], "v": [1, 128, 8]})
st(T + "/kv_tokens.safetensors", {"q": [2, 128, 8], "k": [1, 128, 8], "v": [1, 256, 8]})
PYEOF
expect "run: Lq > Lk" 2 run "$T/lq_gt_lk.safetensors" -o "$O" --dense
has "run: Lq > Lk names q and k" 'q \[2 heads, 256 tokens, 8 dim\] has more tokens than k \[1 heads, 128 tokens, 8 dim\]'
expect "run: k/v token mismatch" 2 run "$T/kv_tokens.safetensors" -o "$O"
has "run: k/v token mismatch names k and v" 'k \[1 heads, 128 tokens, 8 dim\] and v \[1 heads, 256 tokens, 8 dim\] differ'
expect "run: alpha 2 names alpha" 2 run "$T/good.safetensors" -o "$O" --alpha 2
has "run: alpha 2 named" 'alpha'

# an earlier output directory whose files cannot be removed (its
# directory is read-only to us) is refused before anything is written:
# no DIR.tmp.* left behind, the old files as they were.  Root removes
# anything, so as root this runs as nobody.
AS=""
if [ "$(id -u)" -eq 0 ]; then
    if command -v setpriv >/dev/null 2>&1 && id nobody >/dev/null 2>&1; then
        AS="setpriv --reuid=$(id -u nobody) --regid=$(id -g nobody) --clear-groups"
    else
        AS=none
    fi
fi
if [ "$AS" = none ]; then
    echo "SKIP the read-only earlier output (root without setpriv)"
else
    mkdir "$T/ro" && chmod 777 "$T/ro" && chmod 755 "$T" && chmod 644 "$T/good.safetensors"
    $AS "$STEM" run "$T/good.safetensors" -o "$T/ro/out/" >/dev/null 2>&1
    chmod 555 "$T/ro/out" 2>/dev/null || $AS chmod 555 "$T/ro/out"
    ls -l "$T/ro/out" >"$T/ro.before"
    $AS "$STEM" run "$T/good.safetensors" -o "$T/ro/out/" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    ls -l "$T/ro/out" >"$T/ro.after"
    ok "run -o DIR/ over an unremovable earlier output: exit 2 (got $rc)" test "$rc" -eq 2
    has "run -o DIR/ over an unremovable earlier output: said" "cannot be removed"
    ok "run -o DIR/ over an unremovable earlier output: untouched" cmp -s "$T/ro.before" "$T/ro.after"
    ok "run -o DIR/ over an unremovable earlier output: no DIR.tmp.*" \
        test "$(ls "$T/ro" | grep -c '\.tmp\.')" -eq 0
    chmod 755 "$T/ro/out" 2>/dev/null || $AS chmod 755 "$T/ro/out"
fi

ok "stem run left no temporary files" \
    test "$(ls "$T" | grep -c '\.tmp')" -eq 0

finish
