#!/bin/sh
# test_cli_run.sh BUILD - exit codes and outputs of stem gen / run / info /
# compare.  Ends with "cli: N passed, M failed"; exits 1 if any failed.
LABEL=cli
. "$(dirname "$0")/../common/cli_lib.sh"

# ------------------------------------------------------------ top level
expect "no command" 2 "$STEM"
expect "--help" 0 "$STEM" --help
ok "--help lists run" stdout_has "run"
expect "--version" 0 "$STEM" --version
ok "--version prints the version" stdout_has "^stem [0-9]*\.[0-9]*\.[0-9]*"
expect "help run" 0 "$STEM" help run
ok "help run prints usage" stdout_has "usage: stem run"
expect "help unknown" 2 "$STEM" help frobnicate
expect "unknown command" 2 "$STEM" frobnicate
ok "messages are prefixed" stderr_has "^stem: "

# ------------------------------------------------------------------ gen
G="--tokens 512 --heads 2 --kv-heads 1 --dim 32"
expect "gen without -o" 2 "$STEM" gen $G
expect "gen without sizes" 2 "$STEM" gen -o "$T/x.safetensors"
expect "gen bad number" 2 "$STEM" gen -o "$T/x.safetensors" --tokens 12x --heads 2 --kv-heads 1 --dim 32
expect "gen zero tokens" 2 "$STEM" gen -o "$T/x.safetensors" --tokens 0 --heads 2 --kv-heads 1 --dim 32
expect "gen GQA mismatch" 2 "$STEM" gen -o "$T/x.safetensors" --tokens 64 --heads 3 --kv-heads 2 --dim 32
expect "gen odd dim structured" 2 "$STEM" gen -o "$T/x.safetensors" --tokens 64 --heads 2 --kv-heads 1 --dim 31
expect "gen bad dtype" 2 "$STEM" gen -o "$T/x.safetensors" $G --dtype f8
expect "gen bad kind" 2 "$STEM" gen -o "$T/x.safetensors" $G --kind fancy
expect "gen missing value" 2 "$STEM" gen -o "$T/x.safetensors" $G --seed
ok "gen usage errors write nothing" test ! -e "$T/x.safetensors"
expect "gen into a missing directory" 2 "$STEM" gen -o "$T/nodir/x.safetensors" $G
expect "gen" 0 "$STEM" gen -o "$T/a.safetensors" $G --seed 7
expect "gen again" 0 "$STEM" gen -o "$T/a2.safetensors" $G --seed 7
expect "gen other seed" 0 "$STEM" gen -o "$T/a3.safetensors" $G --seed 8
ok "gen is deterministic" cmp -s "$T/a.safetensors" "$T/a2.safetensors"
ok "gen depends on the seed" test -n "$(cmp "$T/a.safetensors" "$T/a3.safetensors" 2>&1)"
ok "gen writes no temporary files" test -z "$(ls "$T" | grep tmp)"
expect "gen random f32" 0 "$STEM" gen -o "$T/r.safetensors" --tokens 300 --heads 2 --kv-heads 2 --dim 16 --kind random --dtype f32 --seed 1
expect "gen f16 nhd" 0 "$STEM" gen -o "$T/a_nhd.safetensors" $G --seed 7 --dtype f16 --layout nhd
expect "gen f16" 0 "$STEM" gen -o "$T/a_f16.safetensors" $G --seed 7 --dtype f16
expect "compare q bf16 vs f16" 0 "$STEM" compare "$T/a_f16.safetensors" "$T/a.safetensors" --tensor q --max-rel-l2 1e-2

# ------------------------------------------------------------------ run
expect "run without args" 2 "$STEM" run
expect "run without -o" 2 "$STEM" run "$T/a.safetensors"
expect "run unknown option" 2 "$STEM" run "$T/a.safetensors" -o "$T/o.safetensors" --frobnicate
expect "run alpha out of range" 2 "$STEM" run "$T/a.safetensors" -o "$T/o.safetensors" --alpha 1.5
expect "run alpha not a number" 2 "$STEM" run "$T/a.safetensors" -o "$T/o.safetensors" --alpha 0.7x
expect "run unknown profile" 2 "$STEM" run "$T/a.safetensors" -o "$T/o.safetensors" --profile nope
expect "run bad threads" 2 "$STEM" run "$T/a.safetensors" -o "$T/o.safetensors" --threads 0
expect "run bad layout" 2 "$STEM" run "$T/a.safetensors" -o "$T/o.safetensors" --layout hdn
expect "run stride not dividing block" 2 "$STEM" run "$T/a.safetensors" -o "$T/o.safetensors" --block 64 --stride 7
expect "run missing input" 2 "$STEM" run "$T/absent.safetensors" -o "$T/o.safetensors"
ok "run missing input names the file" stderr_has "absent.safetensors"
head -c 3000 "$T/a.safetensors" > "$T/trunc.safetensors"
printf 'precious' > "$T/keep.safetensors"
expect "run truncated input" 2 "$STEM" run "$T/trunc.safetensors" -o "$T/keep.safetensors"
ok "output untouched after failure" test "$(cat "$T/keep.safetensors")" = precious
expect "run input without q/k/v" 2 "$STEM" run "$T/keep.safetensors" -o "$T/keep.safetensors"
ok "output untouched after a bad input" test "$(cat "$T/keep.safetensors")" = precious
expect "run into a missing directory" 2 "$STEM" run "$T/a.safetensors" -o "$T/nodir/o.safetensors"

expect "run" 0 "$STEM" run "$T/a.safetensors" -o "$T/s.safetensors"
ok "run prints a summary" stderr_has "causal density"
expect "run output has its tensors" 0 "$STEM" compare "$T/s.safetensors" "$T/s.safetensors" --tensor block_logits --tensor mask --tensor out --tensor lse --max-rel-l2 0
expect "run over an existing output" 0 "$STEM" run "$T/a.safetensors" -o "$T/keep.safetensors"
ok "existing output replaced on success" test "$(head -c 8 "$T/keep.safetensors")" != precious
expect "run --dense" 0 "$STEM" run "$T/a.safetensors" -o "$T/d.safetensors" --dense
expect "dense output has out and lse" 0 "$STEM" compare "$T/d.safetensors" "$T/d.safetensors" --tensor out --tensor lse
expect "dense output has no mask" 2 "$STEM" compare "$T/d.safetensors" "$T/d.safetensors" --tensor mask

# metadata under both naming styles, and the dtypes
for kv in '"profile":"angelslim"' '"dtype":"fp32"' '"input_dtype":"bf16"' \
          '"sinks":"4"' '"initial_blocks":"4"' '"window":"4"' '"window_size":"4"' \
          '"lambda":"0.2"' '"lambda_mag":"0.2"' '"alpha":"0.7"' '"keep_ratio":"0.2"' \
          '"block_size":"128"' '"stride":"8"'; do
    ok "run metadata has $kv" grep -aqF "$kv" "$T/s.safetensors"
done

# -o NAME.npy is refused; -o DIR/ (or an existing directory) is a directory
# of .npy files plus metadata.json
expect "run -o x.npy refused" 2 "$STEM" run "$T/a.safetensors" -o "$T/x.npy"
ok "run -o x.npy says why" stderr_has "one .npy file holds one tensor"
ok "run -o x.npy writes nothing" test ! -e "$T/x.npy"
expect "run -o dir/" 0 "$STEM" run "$T/a.safetensors" -o "$T/rd/"
for f in block_logits.npy mask.npy out.npy lse.npy metadata.json; do
    ok "run -o dir/ wrote $f" test -f "$T/rd/$f"
done
ok "run -o dir/ leaves no temporary directory" test -z "$(ls "$T" | grep -e '\.tmp' -e '\.old')"
expect "directory output equals the safetensors output" 0 "$STEM" compare "$T/rd" "$T/s.safetensors" --tensor block_logits --tensor mask --tensor out --tensor lse --max-rel-l2 0
ok "metadata.json names initial_blocks" grep -q '"initial_blocks":[[:space:]]*"4"' "$T/rd/metadata.json"
ok "metadata.json names window_size" grep -q '"window_size":[[:space:]]*"4"' "$T/rd/metadata.json"
ok "metadata.json names lambda_mag" grep -q '"lambda_mag":[[:space:]]*"0.2"' "$T/rd/metadata.json"
ok "metadata.json names the dtype" grep -q '"dtype":[[:space:]]*"fp32"' "$T/rd/metadata.json"
expect "run --dense over the earlier output directory" 0 "$STEM" run "$T/a.safetensors" -o "$T/rd" --dense
ok "no stale tensor left from the earlier run" test ! -e "$T/rd/mask.npy" -a ! -e "$T/rd/block_logits.npy" -a -f "$T/rd/out.npy"
mkdir "$T/mine" && printf 'precious' > "$T/mine/notes.txt"
expect "run into a directory holding other files" 2 "$STEM" run "$T/a.safetensors" -o "$T/mine"
ok "the refusal names the file" stderr_has "notes.txt"
ok "the foreign directory is untouched" test "$(ls "$T/mine")" = notes.txt -a "$(cat "$T/mine/notes.txt")" = precious
expect "run -o FILE/ where FILE is a file" 2 "$STEM" run "$T/a.safetensors" -o "$T/keep.safetensors/"

# a sparse case: small blocks give 64 key blocks over 1024 tokens
S="--block 16 --stride 8"
expect "gen sparse case" 0 "$STEM" gen -o "$T/b.safetensors" --tokens 1024 --heads 2 --kv-heads 1 --dim 32 --seed 3
expect "run sparse 1 thread" 0 "$STEM" run "$T/b.safetensors" -o "$T/b1.safetensors" $S --threads 1
expect "run sparse 2 threads" 0 "$STEM" run "$T/b.safetensors" -o "$T/b2.safetensors" $S --threads 2
expect "thread count does not change the bits" 0 "$STEM" compare "$T/b1.safetensors" "$T/b2.safetensors" --tensor block_logits --tensor mask --tensor out --tensor lse --max-rel-l2 0
expect "run sparse dense" 0 "$STEM" run "$T/b.safetensors" -o "$T/bd.safetensors" --dense $S
expect "sparse differs from dense" 1 "$STEM" compare "$T/b1.safetensors" "$T/bd.safetensors" --max-rel-l2 1e-12
expect "sparse is close to dense" 0 "$STEM" compare "$T/b1.safetensors" "$T/bd.safetensors" --max-rel-l2 0.5
# a run's output checked against the same input: its metadata (block,
# stride, initial_blocks, window_size, lambda_mag, alpha) sets the check's
# parameters, so non-default values still pass
expect "run sparse non-default parameters" 0 "$STEM" run "$T/b.safetensors" -o "$T/bp/" $S --sinks 1 --window 1 --lambda 0.6 --alpha 0.4
expect "stem check reads the run's parameters" 0 "$STEM" check "$T/b.safetensors" "$T/bp"
expect "run scalar isa" 0 env STEM_ISA=scalar "$STEM" run "$T/b.safetensors" -o "$T/bs.safetensors" $S
expect "every isa gives the same bits" 0 "$STEM" compare "$T/bs.safetensors" "$T/b1.safetensors" --tensor block_logits --tensor mask --tensor out --tensor lse --max-rel-l2 0
expect "run bad isa" 2 env STEM_ISA=bogus "$STEM" run "$T/b.safetensors" -o "$T/bx.safetensors" $S
# the bf16 compute mode: same logits and mask, out close to the f32 mode's
expect "run sparse bf16 mode" 0 "$STEM" run "$T/b.safetensors" -o "$T/bb.safetensors" $S --compute bf16
expect "bf16 mode keeps the logits and mask" 0 "$STEM" compare "$T/bb.safetensors" "$T/b1.safetensors" --tensor block_logits --tensor mask --max-rel-l2 0
expect "bf16 mode changes out" 1 "$STEM" compare "$T/bb.safetensors" "$T/b1.safetensors" --tensor out --max-rel-l2 0
expect "bf16 mode out is close" 0 "$STEM" compare "$T/bb.safetensors" "$T/b1.safetensors" --tensor out --max-rel-l2 2e-2
expect "bf16 mode scalar isa gives the same bits" 0 env STEM_ISA=scalar "$STEM" run "$T/b.safetensors" -o "$T/bbs.safetensors" $S --compute bf16
expect "bf16 mode bits across isas" 0 "$STEM" compare "$T/bbs.safetensors" "$T/bb.safetensors" --tensor out --tensor lse --max-rel-l2 0
expect "run unknown compute mode" 2 "$STEM" run "$T/b.safetensors" -o "$T/bx.safetensors" $S --compute fp8

# layouts: [N,H,d] storage gives the results of [H,N,d] storage
expect "run hnd f16" 0 "$STEM" run "$T/a_f16.safetensors" -o "$T/h.safetensors"
expect "run nhd f16" 0 "$STEM" run "$T/a_nhd.safetensors" -o "$T/n.safetensors" --layout nhd
expect "layouts agree" 0 "$STEM" compare "$T/n.safetensors" "$T/h.safetensors" --tensor block_logits --tensor mask --tensor out --tensor lse --max-rel-l2 0
expect "run random f32" 0 "$STEM" run "$T/r.safetensors" -o "$T/ro.safetensors" --profile hpc-ops

# ----------------------------------------------------------------- info
expect "info" 0 "$STEM" info
ok "info names the active isa" stdout_has "^isa active: "
expect "info --threads" 0 "$STEM" info --threads 3
ok "info honours --threads" stdout_has "^openmp max threads: 3$"
expect "info bad option" 2 "$STEM" info --frobnicate
expect "info scalar" 0 env STEM_ISA=scalar "$STEM" info
ok "info reports STEM_ISA" stdout_has "^isa active: scalar$"
expect "info bad isa" 2 env STEM_ISA=bogus "$STEM" info

# -------------------------------------------------------------- compare
expect "compare one file" 2 "$STEM" compare "$T/s.safetensors"
expect "compare bad threshold" 2 "$STEM" compare "$T/s.safetensors" "$T/s.safetensors" --max-rel-l2 x
expect "compare missing file" 2 "$STEM" compare "$T/s.safetensors" "$T/absent.safetensors"
expect "compare truncated file" 2 "$STEM" compare "$T/trunc.safetensors" "$T/s.safetensors"
expect "compare missing tensor" 2 "$STEM" compare "$T/s.safetensors" "$T/s.safetensors" --tensor nope
expect "compare other shapes" 2 "$STEM" compare "$T/s.safetensors" "$T/b1.safetensors"

finish
