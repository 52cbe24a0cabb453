#!/bin/sh
# pager_families.sh - the pager on every family's real shapes: for each
# shape, a random-weight slice of its first LAYERS layers (`moerun synth`,
# in the quant people download: Q4_K_M; gpt-oss's MXFP4 experts with Q8_0
# beside), run from a cold page cache with --mem holding the non-expert
# weights plus FRAC of the experts (at least the minimum moerun asks for),
# and the hit rate, the prefetch precision and recall, decode against its
# paged bound, and the first token against its floor, one table row per
# shape.  Root for
# drop_caches (without it the cache is warm and the script says so).
# Nothing here asserts a speed: it prints figures.
#
#   bench/pager_families.sh [-l LAYERS] [-f FRAC] [-n TOKENS] [-r ROUTING] [-t TYPE] [SHAPE ...]
#   e.g. bench/pager_families.sh -l 4 -f 0.5 qwen3-30b-a3b gpt-oss-20b
#        bench/pager_families.sh -l 5 -t iq1_s deepseek-v3   (3 dense layers lead)
#
# Environment: MOERUN_BIN (default ./moerun), THREADS (all), SYNTH_DIR
# (where the slices are written, default $TMPDIR; each is deleted after).
set -eu
bin=${MOERUN_BIN:-./moerun}
layers=4 frac=0.5 ntok=32 routing=uniform force_type=
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit "$1"; }
while getopts l:f:n:r:t:h o; do
    case $o in
    l) layers=$OPTARG ;; f) frac=$OPTARG ;; n) ntok=$OPTARG ;; r) routing=$OPTARG ;; t) force_type=$OPTARG ;;
    h) usage 0 ;; *) usage 1 >&2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- mixtral-8x7b qwen3-30b-a3b qwen3-235b-a22b gpt-oss-20b gpt-oss-120b llama4-scout deepseek-v3
[ -x "$bin" ] || { echo "pager_families.sh: no moerun at $bin (set MOERUN_BIN)" >&2; exit 1; }
threads=${THREADS:-$(nproc)}
dir=${SYNTH_DIR:-${TMPDIR:-/tmp}}/pager-families-$$
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
cold=1
[ "$(id -u)" -eq 0 ] || cold=0
echo "first $layers layers of each shape, --mem = non-expert weights + $frac of the experts, $ntok tokens, $threads threads, routing $routing, $( [ $cold = 1 ] && echo 'cold page cache' || echo 'WARM page cache (not root)' )"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')"
echo
echo "| shape | type | file | experts | --mem | hit rate (generation) | prefetch precision / recall | decode t/s | of paged bound | first token | of its floor |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
# MiB in a "123.45 MiB" / "1.20 GiB" figure
mib() { awk -v v="$1" -v u="$2" 'BEGIN { f = u == "GiB" ? 1024 : u == "KiB" ? 1 / 1024 : u == "TiB" ? 1048576 : 1; printf "%d", v * f }'; }
for shape in "$@"; do
    case $shape in gpt-oss*) type=q8_0 ;; *) type=q4_k_m ;; esac # gpt-oss: MXFP4 experts whatever the type
    [ -z "$force_type" ] || type=$force_type
    m=$dir/$shape.gguf
    if ! "$bin" synth --shape "$shape" --layers "$layers" --type "$type" --routing "$routing" -s 1 -o "$m" --force >/dev/null 2>"$dir/synth.log"; then
        echo "| $shape | $type | synth failed: $(tail -1 "$dir/synth.log") |"
        continue
    fi
    "$bin" info --no-tensors "$m" >"$dir/info" 2>&1
    ex=$(sed -n 's/.*all experts: \([0-9.]*\) \([KMGT]iB\).*/\1 \2/p' "$dir/info")
    ne=$(sed -n 's/^non-expert weights: \([0-9.]*\) \([KMGT]iB\).*/\1 \2/p' "$dir/info")
    ex_mib=$(mib $ex) ne_mib=$(mib $ne)
    mem=$(awk -v e="$ex_mib" -v n="$ne_mib" -v f="$frac" 'BEGIN { printf "%d", n + f * e + 128 }')
    # below moerun's minimum: take the minimum it names, plus 64 MiB
    if "$bin" run -m "$m" --mem "${mem}M" -p x -n 0 >/dev/null 2>"$dir/probe" </dev/null; then :; else
        need=$(sed -n 's/.*below the \([0-9.]*\) \([KMGT]iB\) this model needs.*/\1 \2/p' "$dir/probe")
        [ -n "$need" ] || { echo "| $shape | $type | run failed: $(tail -1 "$dir/probe") |"; rm -f "$m"; continue; }
        mem=$(( $(mib $need) + 64 ))
    fi
    if [ $cold = 1 ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
    if ! "$bin" run -m "$m" --mem "${mem}M" -p "Once upon a time" -n "$ntok" -t "$threads" --temp 0 --stats >/dev/null 2>"$dir/log" </dev/null; then
        echo "| $shape | $type | run failed: $(tail -1 "$dir/log") |"
        rm -f "$m"
        continue
    fi
    hit=$(sed -n 's/^  generation only: .* hit rate \([0-9.]*\)%.*/\1/p' "$dir/log")
    pr=$(sed -n 's/.*guesses right \([0-9.]*\)% (precision), \([0-9.]*\)% of needed.*/\1 % \/ \2 %/p' "$dir/log")
    tps=$(sed -n 's/^generation: .* = \([0-9.]*\) tokens\/s.*/\1/p' "$dir/log")
    bound=$(sed -n 's/^  bound: .*reached \([0-9.]*\)%.*/\1/p' "$dir/log")
    first=$(sed -n 's/^first token: \([0-9.]*\) s.*/\1/p' "$dir/log")
    floor=$(sed -n 's/.*first token at \([0-9.]*x\) the floor.*/\1/p' "$dir/log")
    echo "| $shape | $type | $(du -h "$m" | cut -f1) | $ex_mib MiB | ${mem}M | $hit % | $pr | $tps | $bound % | $first s | $floor |"
    rm -f "$m"
done
