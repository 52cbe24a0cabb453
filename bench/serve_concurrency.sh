#!/bin/sh
# serve_concurrency.sh - what several clients at once gain from moerun
# serve's batched slots: N concurrent /v1/completions requests (greedy,
# ignore_eos, the same number of tokens each) for N in the list, their
# aggregate generated tokens/s and the gain over one stream.  With
# LLAMA_BIN, llama-server answers the same requests on the same file in the
# same run, interleaved, and the ratio is printed.  Nothing asserts a speed.
#
#   [LLAMA_BIN=/path/to/llama.cpp/build/bin] bench/serve_concurrency.sh [-n TOKENS] [-s "1 2 4 8"]
#       [-r REPS] [-t THREADS] [-c CTX] MODEL.gguf
set -eu
bin=${MOERUN_BIN:-./moerun}
ntok=64 streams="1 2 4 8" reps=2 threads=$(nproc) ctx=512 model=
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "$1"; }
while [ $# -gt 0 ]; do
    case $1 in
    -n) ntok=$2; shift 2 ;; -s) streams=$2; shift 2 ;; -r) reps=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;; -c) ctx=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) echo "serve_concurrency.sh: unknown option $1" >&2; usage 1 >&2 ;;
    *) model=$1; shift ;;
    esac
done
[ -n "$model" ] && [ -r "$model" ] || { echo "serve_concurrency.sh: give MODEL.gguf" >&2; usage 1 >&2; }
[ -x "$bin" ] || { echo "serve_concurrency.sh: no moerun at $bin (set MOERUN_BIN)" >&2; exit 1; }
command -v curl >/dev/null || { echo "serve_concurrency.sh: needs curl" >&2; exit 1; }
if [ -n "${LLAMA_BIN:-}" ] && [ ! -x "$LLAMA_BIN/llama-server" ]; then
    echo "serve_concurrency.sh: LLAMA_BIN=$LLAMA_BIN has no llama-server" >&2; exit 1
fi
max=1
for n in $streams; do [ "$n" -gt "$max" ] && max=$n; done
tmp=$(mktemp -d)
MPID= LPID=
trap '[ -n "$MPID" ] && kill $MPID 2>/dev/null; [ -n "$LPID" ] && kill $LPID 2>/dev/null; rm -rf "$tmp"' EXIT
cat "$model" >/dev/null # both read it from the page cache

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { # URL SECONDS
    i=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/health")" = 200 ]; do
        i=$((i + 1)); [ $i -gt $(($2 * 10)) ] && return 1; sleep 0.1
    done
}
"$bin" serve -m "$model" --port 0 -np "$max" -c "$ctx" -t "$threads" 2>"$tmp/moerun.err" &
MPID=$!
i=0
while ! grep -q 'listening on' "$tmp/moerun.err" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && { cat "$tmp/moerun.err" >&2; exit 1; }; sleep 0.1
done
MURL=http://127.0.0.1:$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/moerun.err")
wait_up "$MURL" 600 || { cat "$tmp/moerun.err" >&2; exit 1; }
LURL=
if [ -n "${LLAMA_BIN:-}" ]; then
    lp=$(free_port)
    # llama-server's -c is shared by its slots
    "$LLAMA_BIN/llama-server" -m "$model" --port "$lp" -np "$max" -c $((ctx * max)) -t "$threads" \
        >"$tmp/llama.err" 2>&1 &
    LPID=$!
    LURL=http://127.0.0.1:$lp
    wait_up "$LURL" 600 || { tail -5 "$tmp/llama.err" >&2; exit 1; }
fi

# burst URL N -> "tokens seconds": N requests at once, each ntok tokens
burst() {
    rm -f "$tmp"/r.*
    t0=$(date +%s.%N)
    k=0 pids=
    while [ $k -lt "$2" ]; do
        curl -s -H 'Content-Type: application/json' --data-binary \
            "{\"prompt\":\"Story number $k: once upon a time\",\"max_tokens\":$ntok,\"temperature\":0,\"ignore_eos\":true}" \
            "$1/v1/completions" >"$tmp/r.$k" &
        pids="$pids $!"
        k=$((k + 1))
    done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    t1=$(date +%s.%N)
    toks=$(cat "$tmp"/r.* | python3 -c '
import json, sys
n = 0
for line in sys.stdin.read().replace("}{", "}\n{").splitlines():
    try: n += json.loads(line)["usage"]["completion_tokens"]
    except Exception: pass
print(n)')
    echo "$toks $(awk "BEGIN { print $t1 - $t0 }")"
}

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')"
echo "model $(basename "$model"); CPU: $cpu; $threads threads; $ntok tokens a request; best of $reps, interleaved"
echo
burst "$MURL" 1 >/dev/null # warm up both
[ -n "$LURL" ] && burst "$LURL" 1 >/dev/null
for r in $(seq 1 "$reps"); do
    for n in $streams; do
        echo "m $n $(burst "$MURL" "$n")" >>"$tmp/res"
        [ -n "$LURL" ] && echo "l $n $(burst "$LURL" "$n")" >>"$tmp/res"
    done
done
python3 - "$tmp/res" "$streams" "$([ -n "$LURL" ] && echo 1 || echo 0)" <<'EOF'
import sys
best = {}
for line in open(sys.argv[1]):
    who, n, toks, sec = line.split()
    v = int(toks) / float(sec) if float(sec) > 0 else 0
    k = (who, int(n))
    best[k] = max(best.get(k, 0), v)
ns = [int(x) for x in sys.argv[2].split()]
peer = sys.argv[3] == "1"
hdr = "| streams | moerun t/s (all streams) | gain vs 1 stream |"
sep = "| ---: | ---: | ---: |"
if peer:
    hdr += " llama-server t/s | gain vs 1 stream | moerun / llama |"
    sep += " ---: | ---: | ---: |"
print(hdr); print(sep)
for n in ns:
    m, m1 = best.get(("m", n), 0), best.get(("m", ns[0]), 0)
    row = "| %d | %.2f | %.2fx |" % (n, m, m / m1 if m1 else 0)
    if peer:
        l, l1 = best.get(("l", n), 0), best.get(("l", ns[0]), 0)
        row += " %.2f | %.2fx | %.2fx |" % (l, l / l1 if l1 else 0, m / l if l else 0)
    print(row)
EOF
