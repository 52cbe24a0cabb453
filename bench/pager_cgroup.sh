#!/bin/sh
# pager_cgroup.sh - run `moerun run` on a model larger than RAM inside a
# cgroup v1 memory limit, cold page cache, and report what --stats says plus
# the cgroup's own peak usage.  Root only (cgroups, drop_caches).
#
#   bench/pager_cgroup.sh MODEL LIMIT "MOERUN RUN ARGS..."
#   e.g. bench/pager_cgroup.sh big.gguf 12G "--mem 11G -n 16 -p 'Once upon a time'"
#
# Nothing here asserts a speed: it prints figures.
set -eu
model=$1 limit=$2 args=$3
bin=${MOERUN_BIN:-./moerun}
# a child of the memory cgroup this shell is in (not a sibling at the
# root): the run stays inside whatever limit already applies to us
own=$(sed -n 's/^[0-9]*:\([^:]*,\)\{0,1\}memory\(,[^:]*\)\{0,1\}:\(.*\)$/\3/p' /proc/self/cgroup | head -1)
cg=/sys/fs/cgroup/memory${own%/}/moerun-bench-$$
[ "$(id -u)" -eq 0 ] || { echo "pager_cgroup.sh: needs root (cgroups, drop_caches)" >&2; exit 77; }
[ -d /sys/fs/cgroup/memory ] || { echo "pager_cgroup.sh: no cgroup v1 memory controller" >&2; exit 77; }
mkdir "$cg"
trap 'rmdir "$cg" 2>/dev/null || true' EXIT
to_bytes() { numfmt --from=iec "$1"; }
echo "$(to_bytes "$limit")" >"$cg/memory.limit_in_bytes"
echo 0 >"$cg/memory.swappiness" 2>/dev/null || true
sync
echo 3 >/proc/sys/vm/drop_caches
echo "== $bin run -m $model $args   (cgroup limit $limit, page cache dropped)"
start=$(date +%s.%N)
set +e
sh -c "echo \$\$ >'$cg/cgroup.procs'; exec $bin run -m '$model' $args" 
rc=$?
set -e
end=$(date +%s.%N)
peak=$(cat "$cg/memory.max_usage_in_bytes")
fails=$(cat "$cg/memory.failcnt")
echo "== exit $rc, wall $(echo "$end - $start" | bc) s, cgroup peak $(numfmt --to=iec "$peak") of $limit (limit hit $fails times)"
