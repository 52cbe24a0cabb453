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
command -v curl >/dev/null && command -v python3 >/dev/null ||
    { echo "serve_concurrency.sh: needs curl and python3" >&2; exit 1; }
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

# burst URL N -> "tokens seconds": N requests at once (one thread each),
# each ntok tokens; the time from the first sent to the last answered
cat >"$tmp/burst.py" <<'EOF_PY'
import json, sys, threading, time, urllib.request
url, n, ntok, peer = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "l"
got = [0] * n
def one(k):
    b = {"prompt": "Story number %d: once upon a time" % k, "temperature": 0, "ignore_eos": True}
    if peer:
        # llama-server's /completion: its OpenAI endpoint fails ("does not
        # match the expected Content-only format") on a random model's
        # byte tokens, so those (SentencePiece <0x00>..<0xFF>) are banned
        b.update(n_predict=ntok, logit_bias=[[i, False] for i in range(3, 259)] if sys.argv[5] == "1" else [])
    else:
        b["max_tokens"] = ntok
    req = urllib.request.Request(url + ("/completion" if peer else "/v1/completions"),
                                 json.dumps(b).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        j = json.load(r)
        got[k] = j["tokens_predicted"] if peer else j["usage"]["completion_tokens"]
ts = [threading.Thread(target=one, args=(k,)) for k in range(n)]
t0 = time.monotonic()
for t in ts: t.start()
for t in ts: t.join()
print(sum(got), time.monotonic() - t0)
EOF_PY
spm=0
"$bin" info "$model" 2>/dev/null | grep -q 'tokenizer.ggml.model *"llama"' && spm=1
burst() { python3 "$tmp/burst.py" "$1" "$2" "$ntok" "$3" $spm; }

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')"
echo "model $(basename "$model"); CPU: $cpu; $threads threads; $ntok tokens a request; best of $reps, interleaved"
echo
burst "$MURL" 1 m >/dev/null # warm up both
[ -n "$LURL" ] && burst "$LURL" 1 l >/dev/null
for r in $(seq 1 "$reps"); do
    for n in $streams; do
        echo "m $n $(burst "$MURL" "$n" m)" >>"$tmp/res"
        [ -n "$LURL" ] && echo "l $n $(burst "$LURL" "$n" l)" >>"$tmp/res"
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
