#!/bin/sh
# chat.sh - moerun chat as a user meets it, on the shipped demo model: turns
# read from a pipe, the KV cache kept across turns (a turn decodes only its
# own tokens), the template fallback warning, /save, /load, /clear, -sys,
# context overflow, errors; then the terminal (tmux): line editing, Ctrl-C
# stopping an answer without ending the program, Ctrl-D ending it.
set -u
BIN=${MOERUN_BIN:-./moerun}
RUNNER=${MOERUN_RUNNER:-}
moerun() { $RUNNER "$BIN" "$@"; }
SRC=${MOERUN_SRCDIR:-.}
MODEL="$SRC/models/tinymix-Q8_0.gguf"
T=$(mktemp -d)
SESSION=mrchat$$
trap 'tmux kill-session -t $SESSION 2>/dev/null; rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
contains() {
    if grep -qF -- "$2" "$1"; then ok "$3"; else bad "$3: '$2' not in $1"; sed 's/^/    /' "$1" | head -8; fi
}
PY_CHAT=python3
[ -x /usr/bin/python3 ] && PY_CHAT=/usr/bin/python3
chat() { moerun chat -m "$MODEL" --temp 0 -c 512 -t 1 "$@"; }

# --- two turns from a pipe
printf 'Hello there\nTell me a story\\\nabout a cat\n/save %s\n' "$T/conv.json" |
    chat -n 16 >"$T/out" 2>"$T/err"
[ $? -eq 0 ] && ok "chat from a pipe exits 0" || bad "chat from a pipe failed"
contains "$T/err" "has no chat template" "a model without a template is warned about"
contains "$T/err" "using the default, chatml" "the fallback is named"
[ "$(grep -c '^\[prompt:' "$T/err")" -eq 2 ] && ok "two turns answered" || bad "not two turns"
first=$(grep '^\[prompt:' "$T/err" | sed -n 1p)
second=$(grep '^\[prompt:' "$T/err" | sed -n 2p)
echo "$first" | grep -q ' 0 cached' && ok "turn 1 starts from an empty cache" || bad "turn 1: $first"
c2=$(echo "$second" | sed 's/.*new tokens, \([0-9]*\) cached.*/\1/')
n2=$(echo "$second" | sed 's/.*prompt: \([0-9]*\) new tokens.*/\1/')
n1=$(echo "$first" | sed 's/.*prompt: \([0-9]*\) new tokens.*/\1/')
# turn 2 reuses turn 1's prompt, answer and closing; decodes only its own text
if [ "$c2" -gt "$n1" ] && [ "$n2" -lt "$c2" ]; then ok "turn 2 keeps the cache ($c2 cached, $n2 new)"; else
    bad "turn 2 did not keep the cache: $second"; fi
# the new tokens of turn 2 are exactly the tokens of its own text (turn 1's
# closing "<|im_end|>\n" went into the cache when its answer ended)
printf '%s' '<|im_start|>user
Tell me a story
about a cat<|im_end|>
<|im_start|>assistant
' >"$T/delta.txt"
nd=$(moerun tokenize -m "$MODEL" -f "$T/delta.txt" --ids --no-bos 2>/dev/null | wc -w)
[ "$nd" -eq "$n2" ] && ok "turn 2 decodes only its $n2 tokens" || bad "turn 2 decoded $n2 tokens, its text has $nd"
contains "$T/conv.json" '"role":"assistant"' "/save writes the conversation"
[ "$(grep -c '"role"' "$T/conv.json")" -eq 4 ] && ok "/save: 4 messages" || bad "/save: wrong message count"
contains "$T/conv.json" 'about a cat' "a '\\' line continues the message"

# greedy answers repeat
printf 'Hello there\nTell me a story\\\nabout a cat\n' | chat -n 16 >"$T/out2" 2>/dev/null
cmp -s "$T/out" "$T/out2" && ok "greedy chat is deterministic" || bad "greedy chat differs between runs"

# --- /load, /clear, -sys
printf '/load %s\nAnd then?\n/clear\nHi\n/save %s\n' "$T/conv.json" "$T/conv2.json" |
    chat -n 8 -sys "You tell stories." >"$T/out" 2>"$T/err"
contains "$T/err" "loaded 4 messages" "/load reads a saved conversation"
contains "$T/err" "conversation cleared" "/clear"
[ "$(grep -c '"role"' "$T/conv2.json")" -eq 3 ] && ok "/clear keeps only -sys" || bad "/clear: $(cat "$T/conv2.json")"
contains "$T/conv2.json" "You tell stories." "-sys is the system message"

# --- overflow: a small context drops the oldest turns and goes on
printf 'one two three four five\nsix seven eight nine\nten eleven twelve\nthirteen fourteen\n' |
    moerun chat -m "$MODEL" --temp 0 -c 96 -n 20 -t 1 >"$T/out" 2>"$T/err"
[ $? -eq 0 ] && ok "overflowing chat exits 0" || bad "overflowing chat failed"
contains "$T/err" "dropped the" "context overflow drops the oldest messages"
[ "$(grep -c '^\[prompt:' "$T/err")" -eq 4 ] && ok "every turn answered after overflow" || bad "turns lost"

# --- templates
printf 'Hi\n' | chat -n 4 --chat-template mistral --verbose >"$T/out" 2>"$T/err"
contains "$T/err" "[INST] Hi [/INST]" "--chat-template NAME picks a built-in"
printf '{{ bos_token }}Q: {{ messages[-1].content }}\nA:' >"$T/t.jinja"
printf 'Hi\n' | chat -n 4 --chat-template "$T/t.jinja" --verbose >"$T/out" 2>"$T/err"
contains "$T/err" "Q: Hi" "--chat-template FILE"
printf 'Hi\n' | chat --chat-template "$T/none.jinja" >"$T/out" 2>"$T/err"
[ $? -ne 0 ] && ok "a missing template file is an error" || bad "missing template accepted"
printf '{%% if %%}' >"$T/bad.jinja"
printf 'Hi\n' | chat --chat-template "$T/bad.jinja" >"$T/out" 2>"$T/err"
[ $? -eq 2 ] && ok "a malformed template is exit 2" || bad "malformed template: exit $?"
contains "$T/err" "line 1" "the template error names the line"
printf 'Hi\n' | chat --chat-template qwen3 --chat-template-kwargs '{"enable_thinking": false}' -n 2 --verbose >"$T/out" 2>"$T/err"
contains "$T/err" "<think>" "--chat-template-kwargs reaches the template"
moerun chat -m "$MODEL" --chat-template-kwargs '[1]' </dev/null >"$T/out" 2>"$T/err"
[ $? -eq 1 ] && ok "bad --chat-template-kwargs is a usage error" || bad "bad kwargs accepted"

# --- the KV cache types, as llama.cpp names them
printf 'Hello there\n' | chat -n 6 -ctk q8_0 -ctv q8_0 >"$T/out" 2>"$T/err"
[ $? -eq 0 ] && [ -s "$T/out" ] && ok "chat -ctk q8_0 -ctv q8_0 answers" || bad "chat -ctk q8_0: $(tail -2 "$T/err")"
printf 'Hello there\n' | chat -n 6 -ctk q4_0 >"$T/out" 2>"$T/err"
[ $? -eq 1 ] && ok "chat -ctk q4_0 is a usage error" || bad "chat -ctk q4_0 accepted"
contains "$T/err" "-ctk wants f16, q8_0 or f32" "chat names the KV cache types it takes"

# --- a byte-level BPE model with the Qwen3 template (shared fixture): the
# template drops the thinking block of answered turns, yet the cache is kept
QWEN=${MOERUN_TESTDATA:-$SRC/../shared}/models/tinyqwen3moe/gguf/tinyqwen3moe-q8_0.gguf
if [ -f "$QWEN" ]; then
    printf 'Hello\nAgain\nThird\n' | moerun chat -m "$QWEN" --chat-template qwen3 --temp 0 -n 6 -c 512 -t 1 \
        --chat-template-kwargs '{"enable_thinking": false}' >"$T/out" 2>"$T/err"
    [ $? -eq 0 ] && ok "qwen3 template on a BPE model" || bad "qwen3 chat failed: $(tail -2 "$T/err")"
    n3=$(grep -c '^\[prompt:' "$T/err")
    kept=$(grep '^\[prompt:' "$T/err" | sed -n '2,3p' | grep -vc ' 0 cached')
    [ "$n3" -eq 3 ] && [ "$kept" -eq 2 ] && ok "qwen3: turns 2 and 3 keep the cache" ||
        bad "qwen3: $(grep '^\[prompt:' "$T/err")"
    grep -q "whole conversation again" "$T/err" && bad "qwen3: the conversation was processed again" ||
        ok "qwen3: never processed again"
else
    echo "SKIP qwen3 template test: no shared test data"
fi

# --- the terminal: tmux drives a real tty
if command -v tmux >/dev/null 2>&1; then
    cmd="$RUNNER $BIN chat -m $MODEL -c 4096 -n 100000 -t 1 --temp 0 --ignore-eos 2>$T/tty.err"
    tmux new-session -d -s $SESSION -x 200 -y 50 "$cmd; echo EXITED \$? > $T/tty.done; sleep 30"
    wait_for() { # wait_for TEXT SECONDS
        i=0
        while [ $i -lt $(($2 * 10)) ]; do
            tmux capture-pane -p -t $SESSION >"$T/pane" 2>/dev/null
            grep -q -- "$1" "$T/pane" && return 0
            sleep 0.1; i=$((i + 1))
        done
        return 1
    }
    wait_for '^>' 20 && ok "tty: a prompt is shown" || bad "tty: no prompt"
    tmux send-keys -t $SESSION "Once upon a time" Left Left Left Left Left " long" End "x" BSpace Enter
    sleep 1.5
    tmux send-keys -t $SESSION C-c
    wait_for '\[interrupted\]' 20 && ok "tty: Ctrl-C stops the answer" || bad "tty: Ctrl-C did not stop it"
    wait_for '^> *$' 10 && ok "tty: the program goes on after Ctrl-C" || bad "tty: no prompt after Ctrl-C"
    tmux send-keys -t $SESSION "never sent" C-c
    sleep 0.3
    tmux send-keys -t $SESSION "/save $T/tty.json" Enter
    sleep 0.5
    tmux send-keys -t $SESSION C-d
    i=0; while [ ! -f "$T/tty.done" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    contains "$T/tty.done" "EXITED 0" "tty: Ctrl-D ends with exit 0"
    contains "$T/tty.json" "Once upon a long time" "tty: line editing (cursor keys, backspace) edits the line"
    if grep -q "never sent" "$T/tty.json"; then bad "tty: Ctrl-C at the prompt sent the line"; else
        ok "tty: Ctrl-C at the prompt drops the line"; fi
    tmux kill-session -t $SESSION 2>/dev/null
else
    echo "SKIP tty tests: tmux not installed"
fi

# --- reasoning: a template whose generation prompt opens <think> (as
# DeepSeek-R1's does) makes the whole answer reasoning: shown between
# [reasoning] and [/reasoning] off a terminal, kept apart in the history;
# --reasoning-format none prints the raw text
cat >"$T/think.jinja" <<'EOF'
{% for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
<think>
{% endif %}
EOF
printf 'Hello\n/save %s\n' "$T/think.json" | chat -n 8 --chat-template "$T/think.jinja" >"$T/out" 2>"$T/err"
contains "$T/out" "[reasoning]" "chat: reasoning is marked off a terminal"
contains "$T/out" "[/reasoning]" "chat: the end of the reasoning is marked"
if $PY_CHAT -c "import json,sys; m=json.load(open('$T/think.json'))[-1]; sys.exit(0 if m['role']=='assistant' and m['content']=='' and len(m['reasoning_content'])>0 else 1)" 2>/dev/null; then
    ok "chat: the saved turn keeps reasoning_content apart from content"; else bad "chat: saved turn: $(tail -c 300 "$T/think.json")"; fi
printf 'Hello\n' | chat -n 8 --chat-template "$T/think.jinja" --reasoning-format none >"$T/out2" 2>"$T/err"
if grep -qF "[reasoning]" "$T/out2"; then bad "chat: --reasoning-format none still splits"; else
    ok "chat: --reasoning-format none prints the raw text"; fi
chat --reasoning-effort huge </dev/null >/dev/null 2>"$T/err"
[ $? -eq 1 ] && ok "chat: a bad --reasoning-effort is a usage error" || bad "chat: --reasoning-effort huge accepted"
OSS="${MOERUN_TESTDATA:-$SRC/../shared}/models/tinygptoss/gguf/tinygptoss-mxfp4.gguf"
if [ -f "$OSS" ]; then
    printf 'hi\n' | moerun chat -m "$OSS" -n 4 --temp 0 -t 1 --reasoning-effort high --verbose >"$T/out" 2>"$T/err"
    contains "$T/err" "Reasoning: high" "chat: --reasoning-effort reaches gpt-oss's template"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
