#!/bin/sh
# serve.sh - moerun serve on a free loopback port with the demo model,
# driven with curl (every endpoint, streaming, stop sequences, usage
# counts, errors and limits, the API key, a client leaving mid-stream, a
# bounded concurrency test) and then with the official `openai` npm client
# (streamed and unstreamed chat, completions, models, 8 clients x 2
# requests each equal to the same request alone at temperature 0).
# The node part needs the npm registry (or tests/openai-node installed by
# .ci/run); without it the test ends with exit 77 (SKIP) after the curl part
# has passed, saying so.
set -u
BIN=${MOERUN_BIN:-./moerun}
RUNNER=${MOERUN_RUNNER:-}
SRC=${MOERUN_SRCDIR:-.}
MODEL="$SRC/models/tinymix-Q8_0.gguf"
KEY=test-key-123
T=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# the system python starts in 50 ms; a pyenv shim takes 300
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
command -v $PY >/dev/null || { echo "SKIP: $PY not installed (JSON checks)"; exit 77; }

$RUNNER "$BIN" serve -m "$MODEL" --port 0 -np 4 -c 512 -t 1 --api-key $KEY --max-body 65536 \
    --max-tokens 400 2>"$T/server.err" &
PID=$!
i=0
while ! grep -q 'listening on' "$T/server.err" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/server.err")
[ -n "$PORT" ] && ok "listens on a free loopback port ($PORT)" || { bad "no port"; cat "$T/server.err"; exit 1; }
URL=http://127.0.0.1:$PORT
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' $URL/health)" = 200 ] || [ $i -gt 100 ]; do sleep 0.1; i=$((i + 1)); done
ok "/health turns 200 once loaded"

# req METHOD PATH [BODY] -> $T/body, prints the status
req() {
    if [ $# -ge 3 ]; then
        curl -s -o "$T/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $KEY" \
            -H 'Content-Type: application/json' --data-binary "$3" "$URL$2"
    else
        curl -s -o "$T/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $KEY" "$URL$2"
    fi
}
# check NAME PYTHON-EXPR: the expression over j (the JSON body) is true
check() {
    if $PY -c "import json,sys; j=json.load(open('$T/body')); sys.exit(0 if ($2) else 1)" 2>/dev/null; then
        ok "$1"; else bad "$1: $(head -c 400 "$T/body")"; fi
}
status() { if [ "$2" = "$3" ]; then ok "$1 ($2)"; else bad "$1: status $2, wanted $3: $(head -c 300 "$T/body")"; fi; }
field() { $PY -c "import json; j=json.load(open('$T/body')); print($1)"; }

# --- /health is 503 while the model loads: a FIFO as the model holds the
# load in open() until a writer comes, while the server already listens
mkfifo "$T/slow.gguf"
$RUNNER "$BIN" serve -m "$T/slow.gguf" --port 0 2>"$T/slow.err" &
SLOW=$!
i=0
while ! grep -q 'listening on' "$T/slow.err" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
SPORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/slow.err")
s=$(curl -s -o "$T/body" -w '%{http_code}' "http://127.0.0.1:$SPORT/health")
status "/health while loading" "$s" 503
s=$(curl -s -o "$T/body" -w '%{http_code}' --data-binary '{"prompt":"x"}' "http://127.0.0.1:$SPORT/v1/completions")
status "a completion while loading" "$s" 503
: >"$T/slow.gguf" # a writer opens and closes: the load fails (not a regular file)
wait $SLOW
rc=$?
[ $rc -eq 2 ] || [ $rc -eq 3 ] && ok "a model that fails to load ends serve with exit $rc" || bad "bad model: exit $rc: $(tail -1 "$T/slow.err")"

s=$(req GET /health); status "GET /health" "$s" 200
check "/health says ok" "j['status'] == 'ok'"
s=$(curl -s -o "$T/body" -w '%{http_code}' $URL/health); status "/health needs no key" "$s" 200
s=$(req GET /v1/models); status "GET /v1/models" "$s" 200
check "models lists the model" "j['object'] == 'list' and j['data'][0]['id'] == 'tinymix-Q8_0.gguf'"

# --- chat, not streamed
CHAT='{"model":"x","messages":[{"role":"system","content":"You tell stories."},{"role":"user","content":"Tell me about a dog."}],"max_tokens":12,"temperature":0}'
s=$(req POST /v1/chat/completions "$CHAT"); status "chat completion" "$s" 200
check "chat: object, role, finish_reason" "j['object'] == 'chat.completion' and j['choices'][0]['message']['role'] == 'assistant' and j['choices'][0]['finish_reason'] in ('stop', 'length') and j['id'].startswith('chatcmpl-') and isinstance(j['created'], int)"
check "chat: 12 tokens at most, counted" "j['usage']['completion_tokens'] <= 12 and j['usage']['total_tokens'] == j['usage']['prompt_tokens'] + j['usage']['completion_tokens']"
CONTENT=$(field "j['choices'][0]['message']['content']")
PROMPT_TOKENS=$(field "j['usage']['prompt_tokens']")
FINISH=$(field "j['choices'][0]['finish_reason']")
# usage.prompt_tokens is the token count of the rendered template
s=$(req POST /apply-template "$CHAT"); status "POST /apply-template" "$s" 200
check "apply-template renders ChatML" "j['prompt'] == '<|im_start|>system\nYou tell stories.<|im_end|>\n<|im_start|>user\nTell me about a dog.<|im_end|>\n<|im_start|>assistant\n'"
RENDERED=$($PY -c "import json; print(json.dumps({'content': json.load(open('$T/body'))['prompt'], 'add_special': True}))")
s=$(req POST /tokenize "$RENDERED"); status "POST /tokenize" "$s" 200
check "usage.prompt_tokens = tokens of the rendered prompt + BOS" "len(j['tokens']) == $PROMPT_TOKENS"
# the same request gives the same answer (greedy)
s=$(req POST /v1/chat/completions "$CHAT")
check "greedy chat repeats" "j['choices'][0]['message']['content'] == $($PY -c "import json,sys; print(json.dumps(sys.argv[1]))" "$CONTENT")"

# --- chat, streamed
STREAM=$(echo "$CHAT" | sed 's/"temperature":0}/"temperature":0,"stream":true,"stream_options":{"include_usage":true}}/')
curl -sN -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data-binary "$STREAM" \
    -D "$T/headers" "$URL/v1/chat/completions" >"$T/sse"
grep -qi '^content-type: text/event-stream' "$T/headers" && ok "stream: text/event-stream" || bad "stream: content type"
$PY - "$T/sse" "$CONTENT" "$FINISH" >"$T/sse.check" 2>&1 <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l]
assert all(l.startswith("data: ") for l in lines), "only data: lines"
assert lines[-1] == "data: [DONE]", "ends with [DONE]"
chunks = [json.loads(l[6:]) for l in lines[:-1]]
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant", "first delta has the role"
assert all(c["object"] == "chat.completion.chunk" for c in chunks)
assert len({c["id"] for c in chunks}) == 1, "one id"
usage = chunks[-1]
assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0, "usage chunk last"
fin = chunks[-2]
assert fin["choices"][0]["finish_reason"] == sys.argv[3], "finish_reason on the last choice chunk"
assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
assert text == sys.argv[2], "streamed text %r != %r" % (text, sys.argv[2])
print("ok")
EOF
grep -q '^ok$' "$T/sse.check" && ok "stream: role first, deltas = the unstreamed answer, finish, usage, [DONE]" ||
    bad "stream: $(cat "$T/sse.check")"

# --- completions, stop sequences
s=$(req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":30,"temperature":0}')
status "completion" "$s" 200
check "completion: text_completion with usage" "j['object'] == 'text_completion' and j['usage']['prompt_tokens'] == 5 and j['usage']['completion_tokens'] == 30 and j['choices'][0]['finish_reason'] == 'length'"
FULL=$(field "j['choices'][0]['text']")
# the same greedy continuation as moerun run (same forward, sampler, tokenizer)
RUNOUT=$($RUNNER "$BIN" run -m "$MODEL" -p "Once upon a time" -n 30 --temp 0 -t 1 2>/dev/null)
[ "$RUNOUT" = "Once upon a time$FULL" ] && ok "a greedy completion equals moerun run's continuation" ||
    bad "completion '$FULL' differs from run: '$RUNOUT'"
STOPW=$(echo "$FULL" | awk '{print $4}')
BODY=$($PY -c "import json,sys; print(json.dumps({'prompt':'Once upon a time','max_tokens':30,'temperature':0,'stop':['zzz', sys.argv[1]]}))" "$STOPW")
s=$(req POST /v1/completions "$BODY"); status "completion with stop" "$s" 200
check "stop: the text ends before '$STOPW'" "j['choices'][0]['text'] == $($PY -c "import json,sys; f=sys.argv[1]; print(json.dumps(f[:f.index(sys.argv[2])]))" "$FULL" "$STOPW") and j['choices'][0]['finish_reason'] == 'stop'"
BODY=$($PY -c "import json,sys; print(json.dumps({'prompt':'Once upon a time','max_tokens':30,'temperature':0,'stop':sys.argv[1],'stream':True}))" "$STOPW")
curl -sN -H "Authorization: Bearer $KEY" --data-binary "$BODY" "$URL/v1/completions" >"$T/sse"
$PY -c "
import json,sys
ls=[l[6:] for l in open('$T/sse').read().split('\n') if l.startswith('data: ')]
assert ls[-1]=='[DONE]'
cs=[json.loads(l) for l in ls[:-1]]
t=''.join(c['choices'][0]['text'] for c in cs)
f=sys.argv[1]; assert t==f[:f.index(sys.argv[2])], t
assert cs[-1]['choices'][0]['finish_reason']=='stop'
" "$FULL" "$STOPW" && ok "stop (string) in a streamed completion" || bad "streamed stop"
s=$(req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":5,"temperature":0.9,"top_k":5,"top_p":0.9,"min_p":0.1,"seed":42,"presence_penalty":0.5,"frequency_penalty":0.5}')
A=$(field "j['choices'][0]['text']")
s=$(req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":5,"temperature":0.9,"top_k":5,"top_p":0.9,"min_p":0.1,"seed":42,"presence_penalty":0.5,"frequency_penalty":0.5}')
B=$(field "j['choices'][0]['text']")
[ "$A" = "$B" ] && ok "sampled with a seed repeats" || bad "seeded sampling differs: '$A' / '$B'"

# --- tokenize / detokenize
s=$(req POST /tokenize '{"content":"Hello world","with_pieces":true}'); status "tokenize with pieces" "$s" 200
check "pieces" "[p['piece'] for p in j['tokens']] == ['Hello', ' world'] or ''.join(p['piece'] for p in j['tokens']).strip() == 'Hello world'"
s=$(req POST /tokenize '{"content":"Hello world"}')
IDS=$(field "j['tokens']")
s=$(req POST /detokenize "{\"tokens\":$IDS}"); status "detokenize" "$s" 200
check "detokenize(tokenize(x)) = x" "j['content'] == 'Hello world'"

# --- errors: the OpenAI error object with a 4xx
errcase() { # NAME METHOD PATH BODY STATUS
    s=$(req "$2" "$3" "$4")
    if [ "$s" = "$5" ] && $PY -c "import json; e=json.load(open('$T/body'))['error']; assert e['message'] and e['type'] and e['code'] == $5" 2>/dev/null
    then ok "$1 -> $5 with an error object"; else bad "$1: $s $(head -c 200 "$T/body")"; fi
}
errcase "malformed JSON" POST /v1/chat/completions '{"messages": [' 400
errcase "not an object" POST /v1/chat/completions '[1,2]' 400
errcase "no messages" POST /v1/chat/completions '{"model":"x"}' 400
errcase "empty messages" POST /v1/chat/completions '{"messages":[]}' 400
errcase "message not an object" POST /v1/chat/completions '{"messages":["hi"]}' 400
errcase "bad role" POST /v1/chat/completions '{"messages":[{"role":"wizard","content":"x"}]}' 400
errcase "content of a wrong type" POST /v1/chat/completions '{"messages":[{"role":"user","content":5}]}' 400
errcase "temperature a string" POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}' 400
errcase "temperature out of range" POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"temperature":7}' 400
errcase "max_tokens a float" POST /v1/completions '{"prompt":"x","max_tokens":1.5}' 400
errcase "max_tokens over the limit" POST /v1/completions '{"prompt":"x","max_tokens":401}' 400
errcase "n = 2" POST /v1/completions '{"prompt":"x","n":2}' 400
errcase "stop of a wrong type" POST /v1/completions '{"prompt":"x","stop":7}' 400
errcase "prompt of a wrong type" POST /v1/completions '{"prompt":{"a":1}}' 400
errcase "trailing garbage" POST /v1/completions '{"prompt":"x"} x' 400
errcase "invalid UTF-8" POST /v1/completions "$(printf '{"prompt":"\377\376"}')" 400
LONG=$($PY -c "import json; print(json.dumps({'prompt': 'word ' * 600}))")
errcase "a prompt longer than the context" POST /v1/completions "$LONG" 400
errcase "unknown endpoint" GET /v1/nothing "" 404
errcase "wrong method" GET /v1/chat/completions "" 405
BIG=$($PY -c "print('{\"prompt\":\"' + 'x' * 70000 + '\"}')")
errcase "body over --max-body" POST /v1/completions "$BIG" 413
s=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$CHAT" $URL/v1/chat/completions)
status "no API key" "$s" 401
check "401 is an authentication_error" "j['error']['type'] == 'authentication_error'"
s=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Authorization: Bearer wrong' $URL/v1/models)
status "a wrong API key" "$s" 401
# the fuzz corpus of the request parser, sent as requests: each gets an
# answer (a 200 or an error object) and the server stays up
nrep=0
for f in "$SRC"/tests/corpus/openai/*; do
    for ep in /v1/chat/completions /v1/completions; do
        s=$(curl -s -o "$T/body" -w '%{http_code}' -m 20 -H "Authorization: Bearer $KEY" \
            -H 'Content-Type: application/json' --data-binary "@$f" "$URL$ep")
        case "$s" in
        200) ;;
        4??) $PY -c "import json; assert json.load(open('$T/body'))['error']['message']" 2>/dev/null ||
                 bad "corpus $(basename "$f") $ep: $s without an error object" ;;
        *) bad "corpus $(basename "$f") $ep: status $s" ;;
        esac
        nrep=$((nrep + 1))
    done
done
ok "replayed $nrep fuzz-corpus requests"
# nothing a client sent took the server down
s=$(req GET /health); status "still healthy after the errors" "$s" 200

# --- a client that leaves mid-stream frees its slot at once: read the
# first chunk, then close the socket
$PY - "$PORT" "$KEY" <<'EOF' || bad "the leaving client could not start a stream"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
body = b'{"prompt":"Once upon a time","max_tokens":400,"ignore_eos":true,"temperature":0,"stream":true}'
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + sys.argv[2].encode() +
          b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
got = b""
while b"data: " not in got:
    got += s.recv(4096)
s.close()
EOF
sleep 0.3
s=$(req GET /metrics); status "GET /metrics" "$s" 200
grep -q '^moerun_requests_cancelled_total 1$' "$T/body" && ok "the left stream was cancelled" || bad "not cancelled: $(grep cancelled "$T/body")"
grep -q '^moerun_requests_processing 0$' "$T/body" && ok "its slot is free" || bad "slot still busy"
grep -q '^moerun_tokens_predicted_total [1-9]' "$T/body" && ok "metrics count tokens" || bad "metrics tokens"
grep -q '^moerun_expert_cache_hit_ratio 1.0' "$T/body" && ok "metrics: expert cache hit ratio" || bad "metrics hit ratio"
grep -q '^moerun_requests_deferred 0$' "$T/body" && ok "metrics: queue" || bad "metrics queue"

# --- prompt cache: a follow-up that extends a cached sequence reuses it
P1='{"prompt":"The cat sat on the mat and","max_tokens":4,"temperature":0}'
s=$(req POST /v1/completions "$P1")
T1=$(field "j['choices'][0]['text']")
P2=$($PY -c "import json,sys; print(json.dumps({'prompt':'The cat sat on the mat and'+sys.argv[1]+' then it slept','max_tokens':3,'temperature':0}))" "$T1")
s=$(req POST /v1/completions "$P2")
check "prompt cache: the follow-up reuses the cached tokens" "j['usage']['prompt_tokens_details']['cached_tokens'] >= 8"

# a chat follow-up (the history holds the answer just given) reuses the cache
s=$(req POST /v1/chat/completions '{"messages":[{"role":"user","content":"Hello there"}],"max_tokens":10,"temperature":0}')
A1=$($PY -c "import json; print(json.dumps(json.load(open('$T/body'))['choices'][0]['message']['content']))")
P1T=$(field "j['usage']['prompt_tokens']")
s=$(req POST /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"},{\"role\":\"assistant\",\"content\":$A1},{\"role\":\"user\",\"content\":\"And then?\"}],\"max_tokens\":4,\"temperature\":0}")
check "prompt cache: a chat follow-up reuses the first prompt and answer" "j['usage']['prompt_tokens_details']['cached_tokens'] > $P1T"

# --- bounded concurrency with curl: 16 clients x 3 requests, each equal to the same request alone
for k in 0 1 2 3 4 5 6 7; do
    req POST /v1/completions "{\"prompt\":\"Story number $k: once\",\"max_tokens\":16,\"temperature\":0}" >/dev/null
    field "j['choices'][0]['text']" >"$T/alone.$k"
done
for c in $(seq 0 15); do
    (for r in 0 1 2; do
        k=$(((c + r) % 8))
        curl -s -H "Authorization: Bearer $KEY" --data-binary \
            "{\"prompt\":\"Story number $k: once\",\"max_tokens\":16,\"temperature\":0}" \
            "$URL/v1/completions" >"$T/conc.$c.$r.json"
        echo $k >"$T/conc.$c.$r.k"
    done) &
done
while [ "$(ls "$T"/conc.*.k 2>/dev/null | wc -l)" -lt 48 ]; do sleep 0.1; done
sleep 0.2
bad_conc=0
for c in $(seq 0 15); do for r in 0 1 2; do
    k=$(cat "$T/conc.$c.$r.k")
    got=$($PY -c "import json; print(json.load(open('$T/conc.$c.$r.json'))['choices'][0]['text'])" 2>/dev/null)
    [ "$got" = "$(cat "$T/alone.$k")" ] || bad_conc=$((bad_conc + 1))
done; done
[ $bad_conc -eq 0 ] && ok "16 clients x 3 requests at once: every answer equals the request alone" ||
    bad "$bad_conc of 48 concurrent answers differ from the request alone"
s=$(req GET /metrics)
nb=$(sed -n 's/^moerun_decode_batches_total //p' "$T/body")
ns=$(sed -n 's/^moerun_decode_batch_sequences_total //p' "$T/body")
[ -n "$nb" ] && [ -n "$ns" ] && [ "$ns" -gt $((nb + nb / 4)) ] &&
    ok "the slots' tokens shared forwards ($ns sequences in $nb batches)" ||
    bad "no shared batches: '$ns' sequences in '$nb' batches"

# --- the official openai npm client
# installed by .ci/run into the source tree; else fetched here (into the
# source tree when it is writable, else a temporary directory, as under
# make distcheck); the script runs from $T with node_modules linked in
NODE_DIR=${MOERUN_OPENAI_NODE:-$SRC/tests/openai-node}
node_ok=0
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    if [ ! -d "$NODE_DIR/node_modules/openai" ]; then
        mkdir -p "$NODE_DIR" 2>/dev/null && [ -w "$NODE_DIR" ] || NODE_DIR=$T/openai-node
        mkdir -p "$NODE_DIR"
        timeout 120 npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent openai@4 >"$T/npm.log" 2>&1 || true
    fi
    [ -d "$NODE_DIR/node_modules/openai" ] && node_ok=1
fi
if [ $node_ok -eq 1 ]; then
    ln -s "$(cd "$NODE_DIR" && pwd)/node_modules" "$T/node_modules"
    cat >"$T/check.mjs" <<'EOF'
import OpenAI from "openai";
const [url, key] = process.argv.slice(2);
const client = new OpenAI({ baseURL: url + "/v1", apiKey: key });
const fails = [];
const expect = (c, msg) => { if (!c) fails.push(msg); };
const models = await client.models.list();
expect(models.data.length === 1 && models.data[0].id === "tinymix-Q8_0.gguf", "models.list");
const msgs = [{ role: "user", content: "Tell me about a bird." }];
const r = await client.chat.completions.create({ model: "m", messages: msgs, max_tokens: 10, temperature: 0 });
expect(r.choices[0].message.role === "assistant" && r.usage.completion_tokens <= 10, "chat create");
let text = "", finish = null, usage = null, first = true;
const stream = await client.chat.completions.create({ model: "m", messages: msgs, max_tokens: 10,
    temperature: 0, stream: true, stream_options: { include_usage: true } });
for await (const ch of stream) {
    if (first) { expect(ch.choices[0].delta.role === "assistant", "first delta role"); first = false; }
    if (ch.choices.length) { text += ch.choices[0].delta.content || ""; finish = ch.choices[0].finish_reason || finish; }
    if (ch.usage) usage = ch.usage;
}
expect(text === r.choices[0].message.content, "streamed text equals the unstreamed one");
expect(finish === r.choices[0].finish_reason, "streamed finish_reason");
expect(usage && usage.completion_tokens === r.usage.completion_tokens && usage.prompt_tokens === r.usage.prompt_tokens, "stream usage");
const c = await client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 8, temperature: 0, stop: ["\n"] });
expect(typeof c.choices[0].text === "string" && c.usage.prompt_tokens === 5, "completions.create");
try { await client.chat.completions.create({ model: "m", messages: [], max_tokens: 3 }); fails.push("empty messages accepted"); }
catch (e) { expect(e.status === 400 && e.error && e.error.message, "400 as an APIError"); }
const bad = new OpenAI({ baseURL: url + "/v1", apiKey: "nope", maxRetries: 0 });
try { await bad.models.list(); fails.push("wrong key accepted"); } catch (e) { expect(e.status === 401, "401 as an APIError"); }
// 8 clients x 2 requests at once, each equal to the same request alone (temperature 0)
const ask = (k) => client.chat.completions.create({ model: "m", max_tokens: 12, temperature: 0,
    messages: [{ role: "user", content: "Question " + k + ": what next?" }] }).then(x => x.choices[0].message.content);
const alone = [];
for (let k = 0; k < 8; k++) alone.push(await ask(k));
const jobs = [];
for (let cl = 0; cl < 8; cl++) jobs.push((async () => { const out = []; for (let r = 0; r < 2; r++) out.push([(cl + r) % 8, await ask((cl + r) % 8)]); return out; })());
const all = (await Promise.all(jobs)).flat();
const diff = all.filter(([k, t]) => t !== alone[k]).length;
expect(diff === 0, diff + " of 16 concurrent answers differ from the request alone");
if (fails.length) { console.log("FAIL " + fails.join("; ")); process.exit(1); }
console.log("openai client: models, chat, stream with usage, completions, errors, 8x2 concurrent");
EOF
    if node "$T/check.mjs" "$URL" "$KEY" >"$T/node.out" 2>&1; then ok "$(cat "$T/node.out")"; else
        bad "openai client: $(head -c 600 "$T/node.out")"; fi
fi

kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=
grep -q "stopping" "$T/server.err" && ok "SIGTERM stops the server" || bad "no clean stop: $(tail -2 "$T/server.err")"
grep -q "KV cache F16/F16" "$T/server.err" && ok "the KV cache is f16 by default, as llama-server" ||
    bad "KV cache type not f16: $(grep ready "$T/server.err")"
$RUNNER "$BIN" serve -m "$MODEL" --port 0 -ctk q4_0 >/dev/null 2>"$T/ctk.err"
[ $? -eq 1 ] && grep -q -- "-ctk wants f16, q8_0 or f32" "$T/ctk.err" && ok "serve -ctk q4_0 is a usage error" ||
    bad "serve -ctk q4_0: $(tail -1 "$T/ctk.err")"

# --- gpt-oss (harmony): reasoning_effort reaches the template, earlier
# turns' reasoning and tool calls go back in as the template expects, and
# answers carry reasoning_content.  Random weights write no harmony, so the
# split itself is tested on real token streams in tests/test_reasoning.
OSS="${MOERUN_TESTDATA:-$SRC/../shared}/models/tinygptoss/gguf/tinygptoss-mxfp4.gguf"
: >"$T/oss.err"
if [ -f "$OSS" ]; then
    $RUNNER "$BIN" serve -m "$OSS" --port 0 -c 512 -t 1 --api-key $KEY 2>"$T/oss.err" &
    PID=$!
    i=0
    while ! grep -q 'listening on' "$T/oss.err" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/oss.err")
    URL=http://127.0.0.1:$PORT
    i=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' $URL/health)" = 200 ] || [ $i -gt 100 ]; do sleep 0.1; i=$((i + 1)); done
    s=$(req POST /apply-template '{"messages":[{"role":"user","content":"hi"}],"reasoning_effort":"high"}')
    status "gpt-oss apply-template" "$s" 200
    check "gpt-oss: reasoning_effort is in the system message" "'\nReasoning: high\n' in j['prompt'] and j['prompt'].endswith('<|start|>user<|message|>hi<|end|><|start|>assistant')"
    s=$(req POST /apply-template '{"messages":[{"role":"user","content":"hi"}]}')
    check "gpt-oss: the template's default effort is medium" "'\nReasoning: medium\n' in j['prompt']"
    TURNS='{"messages":[{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":null,"reasoning_content":"Need weather.","tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"reasoning_effort":"low"'
    s=$(req POST /apply-template "$TURNS}"); status "gpt-oss apply-template with a tool turn" "$s" 200
    # the expected text is python3-jinja2's render of the fixture's template
    check "gpt-oss: tools, the turn's reasoning, its call and the tool's answer rendered as harmony" "j['prompt'].endswith('# Tools\n\n## functions\n\nnamespace functions {\n\n// Weather of a city\ntype get_weather = (_: {\ncity: string,\n}) => any;\n\n} // namespace functions<|end|><|start|>user<|message|>Weather in Paris?<|end|><|start|>assistant<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\"}<|call|><|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>\"sunny\"<|end|><|start|>assistant') and '\nReasoning: low\n' in j['prompt']"
    s=$(req POST /v1/chat/completions "$TURNS,\"max_tokens\":16,\"temperature\":0}"); status "gpt-oss chat" "$s" 200
    check "gpt-oss chat: content and reasoning_content strings, finish_reason" "isinstance(j['choices'][0]['message']['reasoning_content'], str) and (isinstance(j['choices'][0]['message']['content'], str) or j['choices'][0]['message'].get('tool_calls')) and j['choices'][0]['finish_reason'] in ('stop', 'length', 'tool_calls')"
    $PY -c "import json; m=json.load(open('$T/body'))['choices'][0]['message']; print(json.dumps([m.get('content') or '', m['reasoning_content']]))" >"$T/oss.whole"
    curl -sN -H "Authorization: Bearer $KEY" --data-binary "$TURNS,\"max_tokens\":16,\"temperature\":0,\"stream\":true}" "$URL/v1/chat/completions" >"$T/body"
    if $PY - "$T/body" "$T/oss.whole" <<'PYEOF'
import json, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l]
assert lines[-1] == "data: [DONE]"
content = reasoning = ""
for l in lines[:-1]:
    d = json.loads(l[6:])["choices"][0]["delta"]
    assert set(d) <= {"role", "content", "reasoning_content", "tool_calls"}, d
    content += d.get("content") or ""
    reasoning += d.get("reasoning_content") or ""
assert [content, reasoning] == json.load(open(sys.argv[2])), ([content, reasoning], open(sys.argv[2]).read())
PYEOF
    then ok "gpt-oss stream: content and reasoning_content deltas add up to the unstreamed answer"
    else bad "gpt-oss stream: $(head -c 600 "$T/body")"; fi
    s=$(req POST /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}],"reasoning_effort":"huge"}')
    status "gpt-oss: an unknown reasoning_effort is refused" "$s" 400
    kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=
else
    echo "note: $OSS is absent; the gpt-oss cases were not run"
fi
if grep -qE "Sanitizer|runtime error" "$T/server.err" "$T/slow.err" "$T/oss.err"; then
    bad "the server reported memory errors: $(grep -hE -A5 "Sanitizer|runtime error" "$T/server.err" | head -20)"
else ok "no sanitizer reports (when built with them)"; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] || exit 1
if [ $node_ok -eq 0 ]; then
    echo "SKIP: the openai npm client is not installed and npm could not fetch it (registry unreachable?)"
    exit 77
fi
exit 0
