#!/bin/sh
# pager_rss.sh - `moerun run --mem X` keeps its peak RSS within X plus a
# stated margin, and runs inside a memory cgroup limited to X + margin.
#
# Model: a tinymix-shaped F32 synth (119 MB, experts 1.5 MiB each, so the
# pool is a real share of the budget), written in the build tree (tmpfs has
# no O_DIRECT).  Budgets: the minimum at -c 256, one in between, and one
# where every expert fits.  For each: the peak RSS that run reports
# (getrusage) must be <= budget + MARGIN, and the text must equal the
# resident run's (--temp 0).  When this process may create a child of its
# own memory cgroup (root, cgroup v1 memory or v2 with the memory
# controller, writable), each budget also runs inside a cgroup limited to
# budget + MARGIN and must finish (no OOM kill).  --mem auto inside such a
# cgroup must choose less than its limit.  Skips (77) only when moerun
# synth is unavailable.
#
# MARGIN: the budget already holds a 64 MiB allowance for code, stacks,
# tables and metadata (MR_PAGED_OVERHEAD); 16 MiB more covers page-cache
# pages of the file the cgroup is charged for while the non-expert weights
# are copied.
set -u
BIN=${MOERUN_BIN:-./moerun}
RUNNER=${MOERUN_RUNNER:-}
moerun() { $RUNNER "$BIN" "$@"; }
MARGIN_MIB=16
T=$(mktemp -d "${TMPDIR_BUILD:-.}/pager-rss-XXXXXX") || exit 99
CG=
cleanup() {
    if [ -n "$CG" ] && [ -d "$CG" ]; then
        rmdir "$CG" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

M="$T/tm.gguf"
if ! moerun synth --shape tinymix --type f32 -s 3 -o "$M" >"$T/synth.log" 2>&1; then
    echo "pager_rss.sh: cannot write the synthetic model: $(cat "$T/synth.log")" >&2
    exit 77
fi
P="Once upon a time"
moerun run -m "$M" -p "$P" -n 24 -c 256 --temp 0 >"$T/resident.txt" 2>/dev/null

# the minimum this model needs at -c 256, from the refusal
moerun run -m "$M" -p "$P" -n 2 -c 256 --mem 1M >/dev/null 2>"$T/err"
min=$(sed -n 's/.*is below the \([0-9]*\) MiB this model needs at -c 256.*/\1/p' "$T/err")
if [ -z "$min" ]; then
    bad "the refusal names the minimum: $(cat "$T/err")"
    min=150
else
    ok "the refusal of --mem 1M names the minimum at -c 256 ($min MiB)"
fi

# A memory cgroup of our own, as a child of the one we are in.
cg_dir=
cg_limit_file=
# Under an emulator (MOERUN_RUNNER, e.g. qemu-user for the arm64 build) the
# emulator's own memory would be charged to the cgroup: peak RSS only.
if [ "$(id -u)" -eq 0 ] && [ -z "$RUNNER" ]; then
    v1=$(sed -n 's/^[0-9]*:\([^:]*,\)\{0,1\}memory\(,[^:]*\)\{0,1\}:\(.*\)$/\3/p' /proc/self/cgroup | head -1)
    v2=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup | head -1)
    if [ -n "$v1" ] && [ -w "/sys/fs/cgroup/memory$v1" ]; then
        cg_dir="/sys/fs/cgroup/memory${v1%/}/moerun-rss-$$"
        cg_limit_file=memory.limit_in_bytes
    elif [ -n "$v2" ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null &&
         [ -w "/sys/fs/cgroup$v2" ]; then
        cg_dir="/sys/fs/cgroup${v2%/}/moerun-rss-$$"
        cg_limit_file=memory.max
    fi
    if [ -n "$cg_dir" ] && mkdir "$cg_dir" 2>/dev/null && [ -e "$cg_dir/$cg_limit_file" ]; then
        CG=$cg_dir
    fi
fi
if [ -n "$CG" ]; then echo "#    cgroup: $CG ($cg_limit_file)"; else
    echo "#    no memory cgroup of our own here (not root, none writable, or emulated): peak RSS only"; fi

# in_cg LIMIT_BYTES CMD...: run CMD inside the cgroup limited to LIMIT
in_cg() {
    lim=$1; shift
    echo "$lim" >"$CG/$cg_limit_file" || return 99
    sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG" "$@"
}

mid=$((min + 12))
all=$((min + 60))
for b in "$min" "$mid" "$all"; do
    moerun run -m "$M" -p "$P" -n 24 -c 256 --temp 0 --mem "${b}M" >"$T/out" 2>"$T/err"
    rc=$?
    rss=$(sed -n 's/^peak RSS: *\([0-9.]*\) MiB.*/\1/p' "$T/err")
    if [ "$rc" -ne 0 ] || [ -z "$rss" ]; then
        bad "--mem ${b}M: exit $rc: $(head -3 "$T/err")"
        continue
    fi
    if awk -v r="$rss" -v b="$b" -v m="$MARGIN_MIB" 'BEGIN { exit !(r <= b + m) }'; then
        ok "--mem ${b}M: peak RSS $rss MiB <= budget + $MARGIN_MIB MiB"
    else
        bad "--mem ${b}M: peak RSS $rss MiB > budget + $MARGIN_MIB MiB"
    fi
    if cmp -s "$T/out" "$T/resident.txt"; then ok "--mem ${b}M: text == resident"; else
        bad "--mem ${b}M: text differs from the resident run"; fi
    if [ -n "$CG" ]; then
        lim=$(((b + MARGIN_MIB) * 1048576))
        in_cg "$lim" "$BIN" run -m "$M" -p "$P" -n 24 -c 256 --temp 0 --mem "${b}M" >"$T/out" 2>"$T/err"
        rc=$?
        peak=$(cat "$CG/memory.max_usage_in_bytes" 2>/dev/null || cat "$CG/memory.peak" 2>/dev/null || echo "?")
        if [ "$rc" -eq 0 ] && cmp -s "$T/out" "$T/resident.txt"; then
            ok "--mem ${b}M inside a cgroup of $((b + MARGIN_MIB)) MiB: finished, text == resident (cgroup peak $peak bytes)"
        else
            bad "--mem ${b}M inside a cgroup of $((b + MARGIN_MIB)) MiB: exit $rc: $(head -3 "$T/err")"
        fi
    fi
done

if [ -n "$CG" ]; then
    lim=$(((min + 200) * 1048576))
    in_cg "$lim" "$BIN" run -m "$M" -p "$P" -n 24 -c 256 --temp 0 --mem auto --stats >"$T/out" 2>"$T/err"
    rc=$?
    chose=$(sed -n 's/.*--mem auto: \([0-9]*\) MiB.*/\1/p' "$T/err")
    rss=$(sed -n 's/^peak RSS: *\([0-9.]*\) MiB.*/\1/p' "$T/err")
    if [ "$rc" -eq 0 ] && [ -n "$chose" ] && [ "$chose" -lt $((min + 200)) ] &&
       grep -q "cgroup" "$T/err" && cmp -s "$T/out" "$T/resident.txt"; then
        ok "--mem auto in a cgroup of $((min + 200)) MiB chose $chose MiB from it (peak RSS $rss MiB)"
    else
        bad "--mem auto in a cgroup: exit $rc, chose '${chose}': $(grep auto "$T/err")"
    fi
    # the process has left the cgroup (it exited): it can go
    rmdir "$CG" 2>/dev/null && CG=
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
