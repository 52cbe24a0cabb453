#!/bin/sh
# zipf_sweep.sh - expert hit rate and decode speed under --mem as routing
# skew grows: for each S, `moerun synth --routing zipf:S` of one shape, then
# `moerun run --mem BUDGET --stats`; prints a markdown table and writes an
# SVG (hit rate and tokens/s against S).  Nothing here asserts a speed.
#
#   bench/zipf_sweep.sh [-s SHAPE] [-l LAYERS] [-m BUDGET] [-n TOKENS] [-o OUT.svg] [S ...]
#   e.g. bench/zipf_sweep.sh -s mixtral-8x7b -l 4 -m 1500M 0 0.5 1 1.5 2
set -eu
bin=${MOERUN_BIN:-./moerun}
shape=mixtral-8x7b layers=4 mem=1500M ntok=32 svg=zipf_sweep.svg
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "$1"; }
while getopts s:l:m:n:o:h o; do
    case $o in
    s) shape=$OPTARG ;; l) layers=$OPTARG ;; m) mem=$OPTARG ;; n) ntok=$OPTARG ;;
    o) svg=$OPTARG ;; h) usage 0 ;; *) usage 1 >&2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- 0 0.5 1 1.5 2
[ -x "$bin" ] || { echo "zipf_sweep.sh: no moerun at $bin (set MOERUN_BIN)" >&2; exit 1; }
dir=${TMPDIR:-/tmp}/zipf-sweep-$$
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
echo "shape $shape, $layers layers, --mem $mem, $ntok tokens; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')"
echo
echo "| S | routing entropy (bits) | busiest expert | hit rate | tokens/s | paged bound | of bound |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
: >"$dir/points"
for S in "$@"; do
    r=uniform
    [ "$S" = 0 ] || r=zipf:$S
    "$bin" synth --shape "$shape" --layers "$layers" --routing "$r" -s 1 -o "$dir/m.gguf" --force >/dev/null 2>&1
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    "$bin" run -m "$dir/m.gguf" --mem "$mem" -p "Once upon a time" -n "$ntok" --temp 0 --stats >/dev/null 2>"$dir/log" || {
        echo "| $S | run failed: $(tail -1 "$dir/log") |"; continue; }
    ent=$(sed -n 's/^routing: entropy \([0-9.]*\) of.*/\1/p' "$dir/log")
    busy=$(sed -n 's/.*busiest expert takes \([0-9.]*\)%.*/\1/p' "$dir/log")
    hit=$(sed -n 's/^  generation only: .* hit rate \([0-9.]*\)%.*/\1/p' "$dir/log")
    tps=$(sed -n 's/^generation: .* = \([0-9.]*\) tokens\/s.*/\1/p' "$dir/log")
    bound=$(sed -n 's/^  bound: \([0-9.]*\) tokens\/s.*reached \([0-9.]*\)%.*/\1 \2/p' "$dir/log")
    echo "| $S | $ent | $busy % | $hit % | $tps | ${bound% *} | ${bound#* } % |"
    echo "$S $hit $tps" >>"$dir/points"
    rm -f "$dir/m.gguf"
done
# the plot: hit rate (left axis, %) and tokens/s (right axis) against S
awk -v out="$svg" -v title="$shape, $layers layers, --mem $mem" '
{ s[NR] = $1; h[NR] = $2; t[NR] = $3; if ($1 > smax) smax = $1; if ($3 > tmax) tmax = $3 }
END {
    if (NR == 0) exit; if (smax == 0) smax = 1; if (tmax == 0) tmax = 1
    W = 640; H = 400; L = 60; R = 60; T = 40; B = 50; pw = W - L - R; ph = H - T - B
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H > out
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%d\" y=\"20\" font-size=\"14\">expert hit rate and decode speed vs routing skew: %s</text>\n", L, title > out
    printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T + ph, L + pw, T + ph > out
    printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T, L, T + ph > out
    printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L + pw, T, L + pw, T + ph > out
    for (i = 0; i <= 4; i++) {
        y = T + ph - i * ph / 4
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#1f77b4\">%d%%</text>\n", L - 6, y + 4, i * 25 > out
        printf "<text x=\"%d\" y=\"%d\" fill=\"#d62728\">%.1f</text>\n", L + pw + 6, y + 4, i * tmax / 4 > out
    }
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">Zipf exponent S (0 = uniform routing)</text>\n", L + pw / 2, H - 12 > out
    ph1 = ""; pt1 = ""
    for (i = 1; i <= NR; i++) {
        x = L + s[i] / smax * pw
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, T + ph + 16, s[i] > out
        ph1 = ph1 sprintf("%.1f,%.1f ", x, T + ph - h[i] / 100 * ph)
        pt1 = pt1 sprintf("%.1f,%.1f ", x, T + ph - t[i] / tmax * ph)
    }
    printf "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"%s\"/>\n", ph1 > out
    printf "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" points=\"%s\"/>\n", pt1 > out
    printf "<text x=\"%d\" y=\"%d\" fill=\"#1f77b4\">hit rate (left)</text><text x=\"%d\" y=\"%d\" fill=\"#d62728\">tokens/s (right)</text>\n</svg>\n", L + 10, T + 14, L + 130, T + 14 > out
}' "$dir/points"
echo
echo "plot: $svg"
