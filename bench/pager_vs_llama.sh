#!/bin/sh
# pager_vs_llama.sh - a model larger than the memory limit, run by moerun
# (--mem, the pager) and by llama.cpp (mmap, the kernel's page cache)
# inside the same cgroup v1 memory limit, each from a cold page cache,
# alternating, and the ratios of their figures.  Root only (cgroups,
# drop_caches).
#
#   LLAMA_BIN=/path/to/llama.cpp/build/bin bench/pager_vs_llama.sh MODEL LIMIT [RUNS]
#   e.g. bench/pager_vs_llama.sh qwen3-30b-q4_k_m.gguf 8G 2
#
# Environment: MOERUN_BIN (default ./moerun), LLAMA_BIN (a folder holding
# llama-completion), THREADS (2), N (tokens generated, 16), PROMPT ("Once
# upon a time"), MEM (moerun's --mem, default auto: the cgroup's limit less
# headroom).  llama.cpp runs with -nr (no weight repacking: a repacked copy
# of the weights would not fit the limit) and --temp 0, moerun with
# --temp 0 --stats.  Nothing here asserts a speed: it prints figures.
set -eu
model=$1 limit=$2 runs=${3:-1}
bin=${MOERUN_BIN:-./moerun}
llama=${LLAMA_BIN:?set LLAMA_BIN to a llama.cpp build/bin folder}/llama-completion
threads=${THREADS:-2} n=${N:-16} prompt=${PROMPT:-Once upon a time} mem=${MEM:-auto}
[ "$(id -u)" -eq 0 ] || { echo "pager_vs_llama.sh: needs root (cgroups, drop_caches)" >&2; exit 77; }
[ -d /sys/fs/cgroup/memory ] || { echo "pager_vs_llama.sh: no cgroup v1 memory controller" >&2; exit 77; }
[ -x "$llama" ] || { echo "pager_vs_llama.sh: no $llama" >&2; exit 77; }
own=$(sed -n 's/^[0-9]*:\([^:]*,\)\{0,1\}memory\(,[^:]*\)\{0,1\}:\(.*\)$/\3/p' /proc/self/cgroup | head -1)
cg=/sys/fs/cgroup/memory${own%/}/moerun-vs-llama-$$
out=$(mktemp -d)
mkdir "$cg"
trap 'rmdir "$cg" 2>/dev/null || true; rm -rf "$out"' EXIT
numfmt --from=iec "$limit" >"$cg/memory.limit_in_bytes"
echo 0 >"$cg/memory.swappiness" 2>/dev/null || true

# run NAME CMD...: cold cache, inside the cgroup; its stderr to $out/NAME
run() {
    name=$1
    shift
    sync
    echo 3 >/proc/sys/vm/drop_caches
    echo 0 >"$cg/memory.max_usage_in_bytes" 2>/dev/null || true
    start=$(date +%s.%N)
    sh -c 'echo $$ >"$0/cgroup.procs"; shift; exec "$@"' "$cg" - "$@" >"$out/$name.out" 2>"$out/$name.err" || true
    end=$(date +%s.%N)
    echo "wall $(echo "$end - $start" | bc) peak $(numfmt --to=iec "$(cat "$cg/memory.max_usage_in_bytes")")" >>"$out/$name.err"
}

cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)
fam=$(sed -n 's/^cpu family[^:]*: //p' /proc/cpuinfo | head -1)
mod=$(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "model $(basename "$model") ($(du -h "$model" | cut -f1)), cgroup limit $limit, $threads threads, -n $n, cold page cache; CPU: $cpu, family $fam model $mod"
echo
echo "| run | moerun first token s | of its floor | llama.cpp first token s | ratio | moerun decode t/s | llama.cpp decode t/s | ratio | moerun share of paged bound | hit rate | prefetch precision / recall | moerun peak | llama.cpp peak |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
i=1
while [ "$i" -le "$runs" ]; do
    run moerun "$bin" run -m "$model" --mem "$mem" -p "$prompt" -n "$n" -t "$threads" --temp 0 --stats
    run llama "$llama" -m "$model" -p "$prompt" -n "$n" -t "$threads" --temp 0 -no-cnv -nr
    m=$out/moerun.err l=$out/llama.err
    m_first=$(sed -n 's/^first token: \([0-9.]*\) s.*/\1/p' "$m")
    m_floor=$(sed -n 's/.*first token at \([0-9.]*x\) the floor.*/\1/p' "$m")
    m_tg=$(sed -n 's/^generation: .*= \([0-9.]*\) tokens\/s/\1/p' "$m")
    m_share=$(sed -n 's/^  bound: .*reached \([0-9.]*%\).*/\1/p' "$m")
    m_hit=$(sed -n 's/^  hit rate \([0-9.]*%\).*/\1/p' "$m")
    m_pr=$(sed -n 's/.*guesses right \([0-9.]*%\) (precision), \([0-9.]*%\) of needed.*/\1 \/ \2/p' "$m")
    m_peak=$(sed -n 's/^wall .* peak //p' "$m")
    # llama.cpp: load + prompt eval is its first token
    l_load=$(sed -n 's/.*load time = *\([0-9.]*\) ms.*/\1/p' "$l" | head -1)
    l_pp=$(sed -n 's/.*prompt eval time = *\([0-9.]*\) ms.*/\1/p' "$l" | head -1)
    l_tg=$(sed -n 's/.* eval time = .*, *\([0-9.]*\) tokens per second.*/\1/p' "$l" | grep -v '^$' | tail -1)
    l_peak=$(sed -n 's/^wall .* peak //p' "$l")
    l_first=$(echo "scale=3; (${l_load:-0} + ${l_pp:-0}) / 1000" | bc)
    r_first=$(echo "scale=2; $l_first / ${m_first:-1}" | bc)
    r_tg=$(echo "scale=2; ${m_tg:-0} / ${l_tg:-1}" | bc)
    echo "| $i | $m_first | $m_floor | $l_first | ${r_first}x | $m_tg | $l_tg | ${r_tg}x | $m_share | $m_hit | $m_pr | $m_peak | $l_peak |"
    i=$((i + 1))
done
echo
echo "(first token: moerun's own split, load + prompt; llama.cpp's load time + prompt eval time."
echo " decode: tokens/s of the generated tokens; the paged bound is moerun --stats' own.)"
echo
echo "last moerun --stats:"
sed -n '/^first token/,$p' "$out/moerun.err"
