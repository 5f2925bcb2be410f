#!/bin/sh
# demo.sh BUILD_DIR - the main job on the built-in default workload.
#
# Generates (once) a structured workload of 8192 tokens, 4 query heads,
# 2 kv heads, head dim 128 under BUILD_DIR/demo/, runs Stem (profile
# angelslim) and dense attention on it with the stem tool, and prints the
# time of each, the mask's causal density, and the error of Stem's output
# against the dense output (relative L2 and max abs).
#
# STEM_DEMO_TOKENS overrides the token count.  When the active instruction
# set is the scalar fallback and no override is given, 4096 tokens are used
# so that the demo stays within about two minutes on two cores.
set -eu

BUILD=${1:-build}
STEM="$BUILD/stem"
if [ ! -x "$STEM" ]; then
    echo "demo: $STEM not found; run make first" >&2
    exit 1
fi

isa=$("$STEM" info | sed -n 's/^isa active: //p')
if [ -z "$isa" ] || [ "$isa" = invalid ]; then
    echo "demo: no usable instruction set (see: $STEM info)" >&2
    exit 1
fi
threads=$("$STEM" info | sed -n 's/^openmp max threads: //p')

if [ -n "${STEM_DEMO_TOKENS:-}" ]; then
    tokens=$STEM_DEMO_TOKENS
elif [ "$isa" = scalar ]; then
    tokens=4096
    echo "demo: scalar kernels only; using $tokens tokens (set STEM_DEMO_TOKENS to change)"
else
    tokens=8192
fi
heads=4
kv_heads=2
dim=128
seed=1

dir="$BUILD/demo"
mkdir -p "$dir"
in="$dir/structured-n$tokens-h$heads-g$kv_heads-d$dim-s$seed.safetensors"
if [ ! -f "$in" ]; then
    "$STEM" gen -o "$in" --tokens "$tokens" --heads "$heads" \
        --kv-heads "$kv_heads" --dim "$dim" --seed "$seed" --kind structured
fi

echo "== stem demo: structured workload, $tokens tokens, $heads heads /" \
     "$kv_heads kv heads, d $dim, bf16; isa $isa, $threads threads"

"$STEM" run "$in" -o "$dir/stem.safetensors" --profile angelslim \
    2> "$dir/stem.log" || { cat "$dir/stem.log" >&2; exit 1; }
"$STEM" run "$in" -o "$dir/dense.safetensors" --dense \
    2> "$dir/dense.log" || { cat "$dir/dense.log" >&2; exit 1; }

t_stem=$(sed -n 's/.*: \([0-9.]*\) s,.*/\1/p' "$dir/stem.log")
t_dense=$(sed -n 's/.*: \([0-9.]*\) s,.*/\1/p' "$dir/dense.log")
causal=$(sed -n 's/.*causal density \([0-9.]*\) (\([0-9]*\) of \([0-9]*\).*/\1 (\2 of \3 causal blocks)/p' "$dir/stem.log")
density=$(sed -n 's/.*mask density \([0-9.]*\),.*/\1/p' "$dir/stem.log")
err=$("$STEM" compare "$dir/stem.safetensors" "$dir/dense.safetensors" --tensor out)

echo "stem (angelslim): $t_stem s"
echo "dense:            $t_dense s"
awk -v a="$t_stem" -v b="$t_dense" 'BEGIN { if (a > 0) printf "speedup:          %.2fx\n", b / a }'
echo "mask causal density: $causal; of all Hq*Qb*Kb blocks: $density"
echo "stem out vs dense out: $(echo "$err" | sed 's/^out: //')"
