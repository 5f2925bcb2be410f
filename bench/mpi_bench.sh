#!/bin/sh
# bench/mpi_bench.sh - stem-mpi on one node: 1 rank x 16 threads against
# 4 x 4 and 16 x 1 on the same job, beside `stem run` with 16 threads.
#
#   sh bench/mpi_bench.sh run BUILD [TOKENS HEADS KV_HEADS]
#       BUILD holds stem and stem-mpi.  Prints, per configuration, the wall
#       time of the whole mpirun, the compute time (the slowest rank's, from
#       the output's metadata "seconds"), and the MPI overhead: the wall time
#       not spent computing beyond what `stem run` itself spends reading and
#       writing, as a share of the wall time.  Checks every output against
#       `stem run`'s bytes (metadata "threads", per rank, aside).  Default
#       job: 131072 tokens, 16 query heads, 4 kv heads, d 128, BF16
#       (angelslim profile).
#   sh bench/mpi_bench.sh pack DIR
#       Here (Debian 12, Open MPI installed): DIR/stem-mpi.tar.xz with
#       build-mpi's stem and stem-mpi, Debian's Open MPI (mpirun, orted,
#       plugins, help files) and every library they load but glibc, for a
#       machine without Open MPI; `run DIR` unpacks it to /tmp/ompi and
#       points Open MPI there (OPAL_DESTDIR, PMIX_PREFIX).
set -u
cmd=${1:-run}
[ $# -gt 0 ] && shift

if [ "$cmd" = pack ]; then
    out=${1:?pack DIR}
    root=$(mktemp -d)
    mkdir -p "$root/usr/bin" "$root/lib" "$root/bin"
    cp build-mpi/stem build-mpi/stem-mpi "$root/bin/" && strip "$root"/bin/*
    cp tests/cli/mpi_same.py "$root/bin/"
    cp -L /usr/bin/orterun /usr/bin/orted "$root/usr/bin/"
    ln -s orterun "$root/usr/bin/mpirun"
    # the plugins one node's job needs (shared memory), none of the
    # network fabrics', MPI-IO's or OpenSHMEM's: the carried files must
    # stay small (the device takes 64 MiB with the working tree)
    P=/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
    mkdir -p "$root$P" "$root/usr/lib/x86_64-linux-gnu/pmix2/lib" \
        "$root/usr/share" "$root/etc"
    for f in "$P"/*.so; do
        case $(basename "$f" .so) in
        mca_allocator_basic|mca_allocator_bucket|mca_bml_r2|mca_btl_self|mca_btl_vader|\
        mca_coll_basic|mca_coll_libnbc|mca_coll_self|mca_coll_tuned|\
        mca_errmgr_default_app|mca_errmgr_default_hnp|mca_ess_env|\
        mca_ess_hnp|mca_ess_pmi|mca_ess_singleton|mca_filem_raw|\
        mca_grpcomm_direct|mca_iof_hnp|mca_odls_default|mca_oob_tcp|\
        mca_patcher_overwrite|mca_plm_isolated|mca_plm_rsh|mca_pmix_ext3x|\
        mca_pml_ob1|mca_pstat_linux|mca_rcache_grdma|mca_regx_fwd|\
        mca_regx_naive|mca_rmaps_round_robin|mca_rmaps_ppr|\
        mca_rmaps_mindist|mca_rml_oob|mca_routed_direct|mca_routed_radix|\
        mca_routed_binomial|mca_rtc_hwloc|mca_schizo_ompi|mca_schizo_orte|\
        mca_shmem_mmap|mca_shmem_posix|mca_state_app|mca_state_hnp|\
        mca_reachable_weighted|mca_mpool_hugepage|mca_crs_none)
            cp "$f" "$root$P/" ;;
        esac
    done
    cp -r /usr/lib/x86_64-linux-gnu/pmix2/lib/pmix \
        "$root/usr/lib/x86_64-linux-gnu/pmix2/lib/"
    cp -r /usr/lib/x86_64-linux-gnu/pmix2/share \
        "$root/usr/lib/x86_64-linux-gnu/pmix2/"
    cp -r /usr/share/openmpi "$root/usr/share/"
    cp -r /etc/openmpi "$root/etc/"
    # every library the programs and plugins load, but glibc's, gcc's and
    # the few any Linux with a compiler has
    find "$root" -type f \( -name '*.so*' -o -perm -u+x \) | while read -r f; do
        ldd "$f" 2>/dev/null | awk '/=> \//{print $3}'
    done | sort -u |
        grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux-x86-64|libstdc\+\+|libgcc_s|libgomp|libz|libudev)\.so' |
        while read -r l; do cp -L "$l" "$root/lib/"; done
    mkdir -p "$out"
    XZ_OPT=-9e tar -C "$root" -cJf "$out/stem-mpi.tar.xz" .
    rm -rf "$root"
    ls -la "$out/stem-mpi.tar.xz"
    exit 0
fi

B=${1:?run BUILD}
TOK=${2:-131072}
HQ=${3:-16}
HKV=${4:-4}
if [ -f "$B/stem-mpi.tar.xz" ]; then
    rm -rf /tmp/ompi && mkdir -p /tmp/ompi &&
        tar -C /tmp/ompi -xJf "$B/stem-mpi.tar.xz" || exit 1
    export OPAL_DESTDIR=/tmp/ompi
    export PMIX_PREFIX=/tmp/ompi/usr/lib/x86_64-linux-gnu/pmix2
    export OMPI_MCA_mca_base_component_path=/tmp/ompi/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
    export OMPI_MCA_mca_base_component_show_load_errors=0
    export OMPI_MCA_btl=self,vader     # the TCP BTL is not carried
    export LD_LIBRARY_PATH=/tmp/ompi/lib:/tmp/ompi/usr/lib/x86_64-linux-gnu/openmpi/lib:/tmp/ompi/usr/lib/x86_64-linux-gnu/pmix2/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export PATH=/tmp/ompi/usr/bin:$PATH
    BIN=/tmp/ompi/bin
else
    BIN=$(cd "$B" && pwd)
    cp tests/cli/mpi_same.py "$BIN/" 2>/dev/null
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export PMIX_MCA_pcompress_base_silence_warning=1
export OPENBLAS_CORETYPE=SkylakeX
echo "== machine: $(nproc) cores, $(uname -r), $(ldd --version | head -1)"
grep -m1 'model name' /proc/cpuinfo
echo "== $(mpirun --version 2>&1 | head -1)"
W=${TMPDIR:-/tmp}/stem-mpi-bench
rm -rf "$W" && mkdir -p "$W" || exit 1
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
hdr() { python3 -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read(8)
n = struct.unpack("<Q", b)[0]
print(json.loads(open(sys.argv[1], "rb").read(8 + n)[8:])["__metadata__"]["seconds"])' "$1"; }

t0=$(now)
"$BIN/stem" gen -o "$W/w.safetensors" --tokens "$TOK" --heads "$HQ" \
    --kv-heads "$HKV" --dim 128 --seed 1 2>/dev/null || exit 1
echo "== job: $TOK tokens, $HQ query heads, $HKV kv heads, d 128, BF16;" \
     "input $(du -m "$W/w.safetensors" | cut -f1) MiB (gen $(calc "$(now) - $t0") s)"
"$BIN/stem-mpi" --version >/dev/null 2>&1 || true
t0=$(now)
mpirun -n 16 --oversubscribe "$BIN/stem-mpi" --version >/dev/null || {
    echo "mpirun cannot start stem-mpi here"; exit 1; }
echo "== mpirun -n 16 of an empty job: $(calc "$(now) - $t0") s"

t0=$(now)
"$BIN/stem" run "$W/w.safetensors" -o "$W/ref.safetensors" --threads 16 \
    2>"$W/log" || { cat "$W/log"; exit 1; }
t1=$(now)
sw=$(calc "$t1 - $t0")
sc=$(hdr "$W/ref.safetensors")
echo "== stem run, 16 threads: wall $sw s, compute $sc s, read+write $(calc "$sw - $sc") s"
printf '%-16s %9s %9s %9s %9s  %s\n' "ranks x threads" "wall s" "compute s" "other s" \
    "MPI ovh" "bytes"
for cfg in "1 16" "4 4" "16 1"; do
    set -- $cfg
    r=$1 t=$2
    rm -f "$W/m.safetensors"
    t0=$(now)
    mpirun -n "$r" --oversubscribe --bind-to none "$BIN/stem-mpi" run \
        "$W/w.safetensors" -o "$W/m.safetensors" --threads "$t" 2>"$W/log" ||
        { cat "$W/log"; continue; }
    t1=$(now)
    mw=$(calc "$t1 - $t0")
    mc=$(hdr "$W/m.safetensors")
    # read+write of stem run is not MPI's: what is left over is
    ovh=$(calc "($mw - $mc - ($sw - $sc)) / $mw * 100")
    python3 "$BIN/mpi_same.py" "$W/ref.safetensors" "$W/m.safetensors" threads &&
        same="= stem run" || same="DIFFER"
    printf '%-16s %9.3f %9.3f %9.3f %8.2f%%  %s\n' "$r x $t" "$mw" "$mc" \
        "$(calc "$mw - $mc")" "$ovh" "$same"
done
rm -rf "$W"
