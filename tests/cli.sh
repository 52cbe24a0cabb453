#!/bin/sh
# cli.sh - the moerun command as a user meets it: help, exit codes, every
# command on the shipped demo model, clear errors for bad input.
# Prints "N passed, N failed" and exits non-zero on any failure.
set -u
BIN=${MOERUN_BIN:-./moerun}
# A command prefixed to moerun, e.g. "libtool --mode=execute qemu-aarch64 -L
# /usr/aarch64-linux-gnu" when the build is for another CPU (make check sets
# it from configure's MR_TEST_RUNNER); empty natively.  Word-split on
# purpose.
RUNNER=${MOERUN_RUNNER:-}
moerun() { $RUNNER "$BIN" "$@"; }
SRC=${MOERUN_SRCDIR:-.}
MODEL="$SRC/models/tinymix-Q8_0.gguf"
DATA="$SRC/tests/data"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# expect CODE NAME CMD...: run CMD, check its exit status
expect() {
    want=$1; name=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    if [ "$got" -eq "$want" ]; then ok "$name (exit $got)"; else
        bad "$name: exit $got, wanted $want"; sed 's/^/    /' "$T/err" | head -5; fi
}
# contains FILE TEXT NAME
contains() {
    if grep -qF -- "$2" "$1"; then ok "$3"; else bad "$3: '$2' not in output"; sed 's/^/    /' "$1" | head -5; fi
}

# --- help and usage
expect 0 "moerun --help" moerun --help
contains "$T/out" "perplexity" "top-level help lists the commands"
for c in run info tokenize logits perplexity quantize verify kld; do
    expect 0 "moerun $c --help" moerun "$c" --help
    contains "$T/out" "Usage: moerun $c" "$c --help shows usage"
done
expect 1 "no command" moerun
expect 1 "unknown command" moerun frobnicate
expect 1 "run without -m" moerun run -p hi
expect 1 "run with a bad -n" moerun run -m "$MODEL" -p hi -n lots
contains "$T/err" "-n wants a number" "bad -n is explained"
expect 1 "unknown option" moerun run -m "$MODEL" -p hi --frobnicate
expect 0 "--version" moerun --version
contains "$T/out" "kernels:" "--version names the kernels"

# --- bad files: 3 = cannot read, 2 = malformed
expect 3 "missing model" moerun run -m "$T/nope.gguf" -p hi
contains "$T/err" "nope.gguf" "missing file is named"
printf 'GGUF\003\000\000\000' >"$T/short.gguf"
expect 2 "truncated model" moerun info "$T/short.gguf"
contains "$T/err" "short.gguf" "truncated file is named"
head -c 4000000 "$MODEL" >"$T/cut.gguf"
expect 2 "model cut in its data" moerun run -m "$T/cut.gguf" -p hi
contains "$T/err" "lies outside the file" "cut model names the offending tensor"
printf 'not a model at all, just text.........' >"$T/text.gguf"
expect 2 "not a GGUF" moerun tokenize -m "$T/text.gguf" -p hi
contains "$T/err" "header.magic" "bad magic names the field"

# --- tokenize: ids equal the reference
for name in short digits_punct unicode_emoji leading_spaces empty_ish long_story; do
    text=$(sed -n 's/^ "text": "\(.*\)",$/\1/p' "$DATA/$name.ids.json")
    want=$(tr -d ' \n' <"$DATA/$name.ids.json" | sed 's/.*"ids":\[\([0-9,]*\)\].*/\1/' | tr ',' ' ')
    # JSON escapes in the text (\" and \u....) are decoded by printf-able python-free means:
    # only prompts without escapes are compared here; test_tokenizer covers all of them.
    case "$text" in *'\'*) continue ;; esac
    got=$(moerun tokenize -m "$MODEL" -p "$text" --ids 2>"$T/err")
    if [ "$got" = "$want" ]; then ok "tokenize $name"; else bad "tokenize $name: '$got' != '$want'"; fi
done
expect 0 "tokenize without BOS" moerun tokenize -m "$MODEL" -p "Once upon" --no-bos --ids
contains "$T/out" "5713 3714" "--no-bos ids"
expect 0 "tokenize pieces" moerun tokenize -m "$MODEL" -p "Lily"
contains "$T/out" "'▁L" "pieces are shown"

# --- logits: shape [n_tokens, n_vocab] float32
expect 0 "logits" moerun logits -m "$MODEL" -p "Once upon a time, there was a little girl named Lily." -o "$T/l.f32"
size=$(wc -c <"$T/l.f32")
if [ "$size" -eq $((14 * 32000 * 4)) ]; then ok "logits file is 14 x 32000 floats"; else bad "logits size $size"; fi
if cmp -s "$T/l.f32" /dev/null; then bad "logits empty"; fi

# --- run: greedy is deterministic and streams the reference continuation
expect 0 "run greedy" moerun run -m "$MODEL" -p "Once upon a time, there was a little girl named Lily." -n 16 --temp 0
contains "$T/out" "She loved to play with her mom." "greedy text is the reference continuation"
contains "$T/err" "tokens/s" "run reports speed"
contains "$T/err" "peak RSS" "run reports peak RSS"
expect 0 "run sampled, seed 7" moerun run -m "$MODEL" -p "Once upon a time" -n 24 --seed 7 --temp 0.9
cp "$T/out" "$T/a"
expect 0 "run sampled again, seed 7" moerun run -m "$MODEL" -p "Once upon a time" -n 24 --seed 7 --temp 0.9
if cmp -s "$T/a" "$T/out"; then ok "same seed, same text"; else bad "same seed gave different text"; fi
expect 0 "run --stats" moerun run -m "$MODEL" -p "Tom" -n 4 --temp 0 --stats
contains "$T/err" "acquires" "--stats prints store counters"
expect 1 "prompt longer than the context" moerun run -m "$MODEL" -p "Once upon a time there was" -c 4

# --- info
expect 0 "info" moerun info "$MODEL"
contains "$T/out" "blk.0.ffn_gate_exps.weight" "info lists tensors"
contains "$T/out" "active per token" "info gives active parameters"
contains "$T/out" "expert slice" "info gives expert slice sizes"

# --- perplexity (2 short windows keep this quick; test_forward runs the full protocol)
expect 0 "perplexity" moerun perplexity -m "$MODEL" -f "$DATA/valid.txt" --ctx 64 --chunks 2
if tail -n 1 "$T/out" | grep -q '^PPL = [0-9.]*$'; then ok "last line is PPL = value"; else bad "last line: $(tail -n 1 "$T/out")"; fi
expect 1 "perplexity on too little text" moerun perplexity -m "$MODEL" -f "$DATA/short.ids.json" --ctx 4096

# --- synth and bench
expect 0 "synth --help" moerun synth --help
expect 1 "synth unknown shape" moerun synth --shape nope -o "$T/s.gguf"
expect 0 "synth micro" moerun synth --shape micro --type q8_0 -o "$T/s.gguf"
expect 1 "synth refuses to overwrite" moerun synth --shape micro -o "$T/s.gguf"
expect 0 "run on a synthetic model" moerun run -m "$T/s.gguf" -p "hello there" -n 4 --temp 0
expect 0 "synth dense twin" moerun synth --shape micro --dense -o "$T/d.gguf"
expect 0 "info on the dense twin" moerun info "$T/d.gguf"
contains "$T/out" "(llama), dense," "the twin is dense"
contains "$T/out" "routing: dense (no router)" "the dense twin has no router"
expect 0 "bench" moerun bench -m "$MODEL" -p 16 -n 4 -r 1 -t 1,2
contains "$T/out" "| tg4 |" "bench prints a tg row"
contains "$T/out" "of BW" "bench reports the bandwidth share"
expect 0 "bench --json" moerun bench -m "$MODEL" -p 8 -n 2 -r 1 --json
contains "$T/out" '"tokens_per_s"' "bench --json"

# --- paging within a RAM budget
expect 1 "a budget too small is refused" moerun run -m "$MODEL" -p hi -n 2 --mem 20M
contains "$T/err" "at least" "the refusal says the minimum"
expect 0 "run --mem at the minimum" moerun run -m "$T/s.gguf" -p "hello there" -n 4 --temp 0 --mem 80M --stats
contains "$T/err" "hit rate" "--stats reports the pager"
moerun run -m "$T/s.gguf" -p "hello there" -n 4 --temp 0 >"$T/resident.txt" 2>/dev/null
if cmp -s "$T/resident.txt" "$T/out"; then ok "paged text == resident text"; else bad "paged and resident runs differ"; fi
MOERUN_FAULT="eio@1:0" moerun run -m "$T/s.gguf" -p "hello there" -n 4 --temp 0 --mem 80M --prefetch 0 >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -eq 3 ] && grep -q "layer 1 expert 0" "$T/err"; then ok "an injected EIO exits 3 naming layer and expert"; else bad "EIO: exit $rc"; cat "$T/err"; fi

# --- quantize / verify (tinymix from the shared data; skipped without it)
expect 1 "quantize without arguments" moerun quantize
expect 1 "quantize without --type" moerun quantize "$T" "$T/x.gguf"
expect 1 "quantize to an unknown type" moerun quantize "$T" "$T/x.gguf" --type q5_0
contains "$T/err" "unknown type 'q5_0'" "unknown type is named"
expect 3 "quantize a missing directory" moerun quantize "$T/nodir" "$T/x.gguf" --type q8_0
contains "$T/err" "config.json: cannot open" "missing config.json is named"
mkdir "$T/empty"
printf '{"architectures": ["LlamaForCausalLM"], "vocab_size": 8, "hidden_size": 32,
 "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}' >"$T/empty/config.json"
expect 2 "quantize a checkpoint without weights" moerun quantize "$T/empty" "$T/x.gguf" --type q8_0
contains "$T/err" "neither model.safetensors.index.json nor model.safetensors" "missing weights are explained"
printf '\020\000\000\000\000\000\000\000{"a": {"dtype"  ' >"$T/empty/model.safetensors"
expect 2 "quantize a malformed safetensors" moerun quantize "$T/empty" "$T/x.gguf" --type q8_0
contains "$T/err" "model.safetensors: header at offset" "malformed header names file and field"
if [ -e "$T/x.gguf" ]; then bad "a failed quantize left $T/x.gguf"; else ok "failed quantize leaves no file"; fi
expect 1 "verify without a file" moerun verify
expect 0 "verify the demo model (written by moerun quantize)" moerun verify "$MODEL"
SHARED=${MOERUN_TESTDATA:-$SRC/../shared}
if [ -d "$SHARED/models/tinymix" ]; then
    expect 2 "verify a llama.cpp file (no checksums)" moerun verify "$SHARED/models/tinymix-gguf/tinymix-Q8_0.gguf"
    contains "$T/err" "moerun.checksum.algorithm" "missing checksums are named"
    expect 0 "quantize tinymix q4_0" moerun quantize "$SHARED/models/tinymix" "$T/t.gguf" --type q4_0 -t 2
    contains "$T/err" "wrote $T/t.gguf" "quantize sums up"
    expect 1 "quantize over an existing file" moerun quantize "$SHARED/models/tinymix" "$T/t.gguf" --type q8_0
    contains "$T/err" "already exists (use --force" "existing output is protected"
    expect 0 "quantize --force" moerun quantize "$SHARED/models/tinymix" "$T/t.gguf" --type q8_0 --force
    expect 0 "verify" moerun verify "$T/t.gguf" --source "$SHARED/models/tinymix"
    contains "$T/out" "96 expert slices" "verify counts the expert slices"
    # flip one byte inside layer 3, expert 6 of ffn_gate_exps
    off=$(moerun info "$T/t.gguf" | awk '$1 == "blk.3.ffn_gate_exps.weight" { print $NF + 6 * 139264 + 77 }')
    printf '\377' | dd of="$T/t.gguf" bs=1 seek="$off" conv=notrunc 2>/dev/null
    expect 2 "verify a corrupted file" moerun verify "$T/t.gguf"
    contains "$T/err" "layer 3 expert 6 gate" "verify names the bad slice"
    expect 0 "kld of the demo model" moerun kld -m "$MODEL" --ref "$SHARED/ref" --prompts short
    if tail -n 1 "$T/out" | grep -q '^KLD = [0-9.e+-]*$'; then ok "last line is KLD = value"; else bad "kld: $(tail -n 1 "$T/out")"; fi
else
    echo "skip quantize/verify/kld on tinymix: no shared data at $SHARED"
fi

# --- byte-level BPE (ids from the fixture's README, made by llama.cpp)
QW="$SHARED/models/tinyqwen3moe/gguf/tinyqwen3moe-q8_0.gguf"
if [ -f "$QW" ]; then
    got=$(moerun tokenize -m "$QW" -p "Hello world<|endoftext|>" --ids --parse-special 2>"$T/err")
    if [ "$got" = "15496 995 50256" ]; then ok "tokenize bpe --parse-special"; else bad "tokenize bpe: '$got'"; fi
    expect 0 "info of a bpe vocabulary" moerun info "$SHARED/vocab/ggml-vocab-chain-qwen2.gguf"
    contains "$T/out" "tokenizer: bpe, pre qwen2" "info names the tokenizer kind and pre"
else
    echo "skip bpe tokenize: no $QW"
fi

echo "$pass passed, $fail failed${RUNNER:+ (moerun run through: $RUNNER)}"
[ "$fail" -eq 0 ]
