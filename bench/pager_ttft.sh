#!/bin/sh
# pager_ttft.sh - time to first token of two moerun builds side by side,
# cold page cache before every run, alternating A B A B ... so that the
# shared disk's drift hits both alike.  Root only (drop_caches).
#
#   bench/pager_ttft.sh MODEL "RUN ARGS" ROUNDS BIN_A [BIN_B]
#   e.g. bench/pager_ttft.sh mix8.gguf "--mem 3G -n 4 -p 'Once upon a time'" 3 old/moerun ./moerun
#
# First token = the "load:" plus the "prompt:" seconds run prints (both
# builds print them).  Prints one line per run and the medians; asserts
# nothing.
set -eu
model=$1 args=$2 rounds=$3 a=$4 b=${5:-}
[ "$(id -u)" -eq 0 ] || { echo "pager_ttft.sh: needs root (drop_caches)" >&2; exit 77; }
grep -m1 "model name" /proc/cpuinfo | sed 's/^/# /'
grep -m1 "cpu family" /proc/cpuinfo | sed 's/^/# /'
grep -m1 "^model" /proc/cpuinfo | sed 's/^/# /'
one() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
    sh -c "$1 run -m '$model' $args -s 1 --temp 0" 2>&1 >/dev/null |
        awk '/^load:/ {l=$2} /^prompt:/ {p=$5} END {printf "%.3f %.3f %.3f\n", l + p, l, p}'
}
: >/tmp/pager_ttft.$$
i=0
while [ "$i" -lt "$rounds" ]; do
    for bin in $a $b; do
        r=$(one "$bin")
        echo "$bin $r" | tee -a /tmp/pager_ttft.$$ | awk '{printf "%-40s first token %s s (load %s + prompt %s)\n", $1, $2, $3, $4}'
    done
    i=$((i + 1))
done
for bin in $a $b; do
    grep "^$bin " /tmp/pager_ttft.$$ | awk '{print $2}' | sort -n |
        awk -v b="$bin" '{v[NR]=$1} END {printf "median %-33s %.3f s over %d runs\n", b, v[int((NR+1)/2)], NR}'
done
rm -f /tmp/pager_ttft.$$
