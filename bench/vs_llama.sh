#!/bin/sh
# vs_llama.sh - moerun bench and llama.cpp's llama-bench on the same GGUF in
# the same run, interleaved, and the ratio per row (pp and tg, at 1 thread
# and at all threads), beside moerun's share of the read bandwidth it
# measured in that run.  Nothing here asserts a speed.
#
#   LLAMA_BIN=/path/to/llama.cpp/build/bin bench/vs_llama.sh [-p N] [-n N] [-r R] [-t LIST] MODEL.gguf
#   bench/vs_llama.sh --shape gpt-oss-20b [--layers 8] [--type q4_k_m]   (synthesizes the file first)
#
# Without LLAMA_BIN only moerun's rows are printed.
set -eu
bin=${MOERUN_BIN:-./moerun}
pp=128 tg=32 reps=3 threads= shape= layers= type= model=
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "$1"; }
while [ $# -gt 0 ]; do
    case $1 in
    -p) pp=$2; shift 2 ;; -n) tg=$2; shift 2 ;; -r) reps=$2; shift 2 ;; -t) threads=$2; shift 2 ;;
    --shape) shape=$2; shift 2 ;; --layers) layers=$2; shift 2 ;; --type) type=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) echo "vs_llama.sh: unknown option $1" >&2; usage 1 >&2 ;;
    *) model=$1; shift ;;
    esac
done
[ -x "$bin" ] || { echo "vs_llama.sh: no moerun at $bin (set MOERUN_BIN)" >&2; exit 1; }
if [ -n "${LLAMA_BIN:-}" ] && [ ! -x "$LLAMA_BIN/llama-bench" ]; then
    echo "vs_llama.sh: LLAMA_BIN=$LLAMA_BIN has no llama-bench" >&2; exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "$shape" ]; then
    model=${SYNTH_DIR:-$tmp}/$shape${layers:+-$layers}${type:+-$type}.gguf
    "$bin" synth --shape "$shape" ${layers:+--layers "$layers"} ${type:+--type "$type"} -s 1 -o "$model" --force >&2
fi
[ -n "$model" ] && [ -r "$model" ] || { echo "vs_llama.sh: give MODEL.gguf or --shape NAME" >&2; usage 1 >&2; }
all=$(nproc)
[ -n "$threads" ] || threads=$( [ "$all" -gt 1 ] && echo "1,$all" || echo 1)
cat "$model" >/dev/null # both read it from the page cache
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')"
echo "model $(basename "$model"); CPU: $cpu; pp$pp, tg$tg, $reps repetitions, interleaved"
echo
# one repetition at a time, alternating the two programs, so drift hits both
: >"$tmp/m" ; : >"$tmp/l"
i=0
while [ "$i" -lt "$reps" ]; do
    "$bin" bench -m "$model" -p "$pp" -n "$tg" -t "$threads" -r 1 --json 2>/dev/null |
        tr '{' '\n' | sed -n 's/.*"threads": \([0-9]*\), "test": "\([a-z]*\)[0-9]*", "tokens_per_s": \([0-9.]*\),.*"read_bw_gbs": \([0-9.]*\), "weights_gbs": \([0-9.]*\), "bw_fraction": \([0-9.]*\).*/\1 \2 \3 \4 \6/p' >>"$tmp/m"
    if [ -n "${LLAMA_BIN:-}" ]; then
        "$LLAMA_BIN/llama-bench" -m "$model" -p "$pp" -n "$tg" -t "$threads" -r 1 -o jsonl 2>/dev/null |
            sed -n 's/.*"n_prompt": \([0-9]*\), "n_gen": \([0-9]*\),.*/&/p' |
            awk '{ t = $0; sub(/.*"n_threads": /, "", t); sub(/,.*/, "", t);
                   p = $0; sub(/.*"n_prompt": /, "", p); sub(/,.*/, "", p);
                   a = $0; sub(/.*"avg_ts": /, "", a); sub(/[,}].*/, "", a);
                   print t, (p > 0 ? "pp" : "tg"), a }' >>"$tmp/l"
    fi
    i=$((i + 1))
done
echo "| test | threads | moerun t/s | llama.cpp t/s | ratio | moerun share of read BW |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for th in $(echo "$threads" | tr ',' ' '); do
    for test in pp tg; do
        m=$(awk -v t="$th" -v k="$test" '$1 == t && $2 == k { print $3 }' "$tmp/m" | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }')
        f=$(awk -v t="$th" -v k="$test" '$1 == t && $2 == k { print $5 }' "$tmp/m" | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }')
        l=$(awk -v t="$th" -v k="$test" '$1 == t && $2 == k { print $3 }' "$tmp/l" | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }')
        [ -n "$m" ] || continue
        ratio=-
        [ -n "$l" ] && ratio=$(awk -v a="$m" -v b="$l" 'BEGIN { printf "%.2fx", a / b }')
        share=-
        [ "$test" = tg ] && share=$(awk -v f="$f" 'BEGIN { printf "%.0f %%", 100 * f }')
        echo "| ${test}$( [ "$test" = pp ] && echo "$pp" || echo "$tg") | $th | $m | ${l:--} | $ratio | $share |"
    done
done
echo
echo "(medians of $reps interleaved runs; the share is bytes read per generated token times tokens/s"
echo " over the read bandwidth moerun measured in its run)"
