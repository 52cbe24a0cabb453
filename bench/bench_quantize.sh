#!/bin/sh
# bench_quantize.sh - moerun quantize on a synthetic checkpoint of real
# Mixtral-8x7B shapes (bench/synth_hf): the read rate it reaches against the
# disk's own sequential read bandwidth measured in the same run, its peak
# RSS (/usr/bin/time -v), and what SIGINT / SIGKILL leave behind.
# Prints figures; asserts nothing.
#
# Usage: bench/bench_quantize.sh [-l LAYERS] [-t TYPE] [-d DIR] [-j THREADS] [--clean]
#   -l LAYERS   layers of the synthetic checkpoint (default 8: ~23.7 GB bf16)
#   -t TYPE     output type (default q8_0)
#   -d DIR      work directory (default ${TMPDIR:-/tmp}/moerun-bench); the
#               checkpoint is made there once and reused
#   -j THREADS  quantizer threads (default: all CPUs)
#   --clean     remove DIR at the end
# Run from the build directory (MOERUN_BIN, SYNTH_HF and MOERUN_TESTDATA
# override where moerun, synth_hf and the tokenizer's checkpoint are).
# As root the page cache is dropped before each timed read.
set -u
BIN=${MOERUN_BIN:-./moerun}
SYNTH=${SYNTH_HF:-./bench/synth_hf}
SRC=$(cd "$(dirname "$0")/.." && pwd)
TOK=${MOERUN_TESTDATA:-$SRC/../shared}/models/tinymix
LAYERS=8 TYPE=q8_0 DIR=${TMPDIR:-/tmp}/moerun-bench THREADS= CLEAN=0
while [ $# -gt 0 ]; do
    case $1 in
    -l) LAYERS=$2; shift 2 ;;
    -t) TYPE=$2; shift 2 ;;
    -d) DIR=$2; shift 2 ;;
    -j) THREADS="-t $2"; shift 2 ;;
    --clean) CLEAN=1; shift ;;
    *) echo "usage: $0 [-l LAYERS] [-t TYPE] [-d DIR] [-j THREADS] [--clean]" >&2; exit 1 ;;
    esac
done
mkdir -p "$DIR" || exit 3
HF=$DIR/hf OUT=$DIR/out.gguf

drop_caches() {
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches
    else echo "  (not root: page cache not dropped, figures may be warm)"; fi
}
now() { date +%s.%N; }
# calc EXPR [DECIMALS]: arithmetic without bc
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

if [ ! -f "$HF/config.json" ] || ! grep -q "\"num_hidden_layers\": $LAYERS," "$HF/config.json"; then
    rm -rf "$HF"
    t0=$(now)
    "$SYNTH" "$HF" --layers "$LAYERS" --tokenizer "$TOK" || exit 3
    echo "synthetic checkpoint written in $(calc "$(now) - $t0" 1) s"
fi
src_bytes=$(stat -c %s "$HF"/*.safetensors | awk '{ s += $1 } END { print s }')
big=$(ls -S "$HF"/*.safetensors | head -n 1)
echo "checkpoint: $LAYERS layers, $(ls "$HF"/*.safetensors | wc -l) shards, $(calc "$src_bytes / 1e9") GB"

# 1. the disk's own sequential read bandwidth: the largest shard, cold
drop_caches
t0=$(now); cat "$big" >/dev/null; t1=$(now)
big_bytes=$(wc -c <"$big")
disk=$(calc "$big_bytes / 1e6 / ($t1 - $t0)" 1)
echo "disk read: $(basename "$big"), $(calc "$big_bytes / 1e9") GB in $(calc "$t1 - $t0") s = $disk MB/s"

# 2. quantize, cold
rm -f "$OUT"
drop_caches
/usr/bin/time -v "$BIN" quantize "$HF" "$OUT" --type "$TYPE" $THREADS 2>"$DIR/time.log"
rc=$?
summary=$(grep 'moerun quantize: wrote' "$DIR/time.log")
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$DIR/time.log")
wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$DIR/time.log")
echo "quantize --type $TYPE: exit $rc, wall $wall"
echo "  $summary"
rate=$(echo "$summary" | sed -n 's/.*(\([0-9.]*\) MB\/s read).*/\1/p')
echo "  read rate $rate MB/s = $(calc "100 * $rate / $disk" 0) % of the disk's $disk MB/s"
echo "  peak RSS (time -v): $(calc "$rss / 1024" 1) MiB for $(calc "$src_bytes / 1e9") GB of source"
ls -l "$OUT"

# 3. interruptions: nothing may be left behind
left() { ls -a "$DIR" | grep -c '^\.\?out\.gguf'; }
rm -f "$OUT"
for mode in "" "--no-tmpfile"; do
    for sig in INT KILL; do
        "$BIN" quantize "$HF" "$OUT" --type "$TYPE" $THREADS $mode 2>/dev/null &
        pid=$!
        sleep 8
        kill -s "$sig" "$pid"
        wait "$pid"
        echo "SIG$sig after 8 s ${mode:-(O_TMPFILE)}: exit $?, files left: $(left) $(ls -a "$DIR" | grep 'out\.gguf' | tr '\n' ' ')"
        rm -f "$OUT" "$DIR"/.out.gguf.*
    done
done
[ "$CLEAN" -eq 1 ] && rm -rf "$DIR"
exit 0
