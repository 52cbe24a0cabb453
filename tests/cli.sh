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
SHARED=${MOERUN_TESTDATA:-$SRC/../shared}
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

# --- the kernel choice, measured once per CPU and build and kept
if MOERUN_CACHE_DIR= moerun info --cpu 2>/dev/null | grep -q "GB/s"; then
    kc="$T/kcache"
    expect 0 "info --cpu with an empty cache" env MOERUN_CACHE_DIR="$kc" $RUNNER "$BIN" info --cpu
    contains "$T/out" "autotune: measured now" "the first start measures the kernels"
    contains "$T/out" "kept in $kc/autotune-" "and keeps the choice in the cache directory"
    expect 0 "info --cpu again" env MOERUN_CACHE_DIR="$kc" $RUNNER "$BIN" info --cpu
    contains "$T/out" "autotune: read from $kc/autotune-" "a later start reads the choice back"
    kf=$(ls "$kc"/autotune-*.txt | head -1)
    sed 's/^type Q4_K .*/type Q4_K frobnicate avx2=1/' "$kf" >"$T/kf" && cp "$T/kf" "$kf"
    expect 0 "info --cpu with a damaged cache" env MOERUN_CACHE_DIR="$kc" $RUNNER "$BIN" info --cpu
    contains "$T/out" ": unknown kernel set" "a damaged cache is named, with its line, and measured again"
    expect 0 "info --cpu after the rewrite" env MOERUN_CACHE_DIR="$kc" $RUNNER "$BIN" info --cpu
    contains "$T/out" "autotune: read from" "the damaged cache was rewritten"
    expect 0 "MOERUN_AUTOTUNE=fresh" env MOERUN_CACHE_DIR="$kc" MOERUN_AUTOTUNE=fresh $RUNNER "$BIN" info --cpu
    contains "$T/out" "measured now (MOERUN_AUTOTUNE=fresh)" "MOERUN_AUTOTUNE=fresh measures again"
    : >"$T/plain"
    expect 0 "a cache directory that cannot be made" env MOERUN_CACHE_DIR="$T/plain/sub" $RUNNER "$BIN" info --cpu
    contains "$T/out" "not kept: cannot make $T/plain/sub" "an unwritable cache is reported, the run goes on"
else
    echo "note: one kernel set on this CPU: nothing to choose, the kernel cache is not checked"
fi

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
expect 0 "perplexity" moerun perplexity -m "$MODEL" -f "$DATA/valid.txt" -c 64 --chunks 2
if tail -n 1 "$T/out" | grep -q '^PPL = [0-9.]*$'; then ok "last line is PPL = value"; else bad "last line: $(tail -n 1 "$T/out")"; fi
expect 1 "perplexity on too little text" moerun perplexity -m "$MODEL" -f "$DATA/short.ids.json" -c 4096

# --- synth and bench
expect 0 "synth --help" moerun synth --help
expect 1 "synth unknown shape" moerun synth --shape nope -o "$T/s.gguf"
expect 0 "synth micro" moerun synth --shape micro --type q8_0 -o "$T/s.gguf"
expect 1 "synth refuses to overwrite" moerun synth --shape micro -o "$T/s.gguf"
expect 0 "run on a synthetic model" moerun run -m "$T/s.gguf" -p "hello there" -n 4 --temp 0
expect 0 "synth a Qwen3-MoE in a llama-quantize mix" moerun synth --shape qwen3-micro --type Q4_K_M -o "$T/q3.gguf"
expect 0 "run the synthetic Qwen3-MoE" moerun run -m "$T/q3.gguf" -p "hello there" -n 4 --temp 0
# repacking at load (AVX-512: Q4_K, Q5_K, Q6_K) gives the file layout's text, and -nr keeps it off
expect 0 "synth a tinymix-shaped Q4_K_M" moerun synth --shape tinymix --type Q4_K_M -o "$T/tm.gguf"
moerun run -m "$T/tm.gguf" -p "hello there" -n 12 --temp 0 >"$T/pk.out" 2>"$T/pk.err"
moerun run -m "$T/tm.gguf" -p "hello there" -n 12 --temp 0 -nr >"$T/nr.out" 2>"$T/nr.err"
if cmp -s "$T/pk.out" "$T/nr.out"; then ok "repacked and file-layout runs write the same text"; else bad "repacked text differs from -nr"; fi
if grep -q "^repack:" "$T/nr.err"; then bad "-nr still repacked"; else ok "-nr keeps the file's layout"; fi
if moerun info --cpu 2>/dev/null | grep -q "repacked at load"; then
    contains "$T/pk.err" "repack:" "the run says what it repacked and how long it took"
else
    echo "note: these kernels repack nothing (no AVX-512 VNNI): the repack line is not checked"
fi
# the i-quants moerun reads but does not write: random codebook blocks, in
# llama-quantize's mixes of them
expect 0 "synth a tinymix-shaped IQ2_XXS" moerun synth --shape tinymix --type iq2_xxs -o "$T/iq.gguf"
expect 0 "verify the IQ2_XXS synth" moerun verify "$T/iq.gguf"
expect 0 "info on the IQ2_XXS synth" moerun info "$T/iq.gguf"
contains "$T/out" "general.file_type                            19" "an iq2_xxs synth says IQ2_XXS (llama.cpp's 19)"
expect 0 "run the IQ2_XXS synth" moerun run -m "$T/iq.gguf" -p "hello there" -n 4 --temp 0
expect 0 "synth an IQ1_M (d in the scales' nibbles)" moerun synth --shape tinymix --type IQ1_M -o "$T/iq1m.gguf"
expect 0 "run the IQ1_M synth" moerun run -m "$T/iq1m.gguf" -p "hello there" -n 4 --temp 0
# an i-quant mix on rows of 64: llama-quantize's fallback, IQ4_NL, where the
# 256-weight blocks do not divide (the mixes' rules: tests/test_quant_mix.c)
expect 0 "synth an IQ3_S mix of a shape with rows of 64" moerun synth --shape qwen3-micro --type iq3_s -o "$T/iqx.gguf"
expect 0 "info on it" moerun info "$T/iqx.gguf"
contains "$T/out" "IQ4_NL" "rows of 64 fall back to IQ4_NL"
expect 0 "run it" moerun run -m "$T/iqx.gguf" -p "hello there" -n 4 --temp 0
expect 0 "info on the synthetic Qwen3-MoE" moerun info "$T/q3.gguf"
contains "$T/out" "Qwen3-MoE (qwen3moe)" "synth qwen3-micro is a qwen3moe"
contains "$T/out" "general.file_type                            15" "a q4_k_m synth says Q4_K_M"
# the mix of a synth tinymix: every tensor's type as llama-quantize chose it
# for the real tinymix (tests/data/quant_mix, recorded from llama.cpp's files)
for mx in q2_k q3_k_m q4_k_m q5_k_m q6_k; do
    moerun synth --shape tinymix --type "$mx" -o "$T/tm.gguf" --force >/dev/null 2>&1
    moerun info "$T/tm.gguf" 2>/dev/null | awk '$1 ~ /\.weight$/ && NF >= 4 {print $1, $2}' | sort >"$T/tm.types"
    if [ -s "$T/tm.types" ] && cmp -s "$T/tm.types" "$SRC/tests/data/quant_mix/tinymix-$mx.types"; then
        ok "synth tinymix --type $mx has llama-quantize's tensor types"
    else
        bad "synth tinymix --type $mx: types differ from tests/data/quant_mix/tinymix-$mx.types"
    fi
done
# --routing zipf:S concentrates routing: against the same model with uniform
# routing, the entropy falls and the busiest expert takes at least twice the
# uniform share of slots (Zipf(2) over 8 experts, top-2, asks for ~47%)
expect 1 "synth --routing of a bad skew" moerun synth --shape micro --routing zipf:x -o "$T/z0.gguf"
for r in uniform zipf:2; do
    moerun synth --shape tinymix --routing "$r" -s 3 -o "$T/z.gguf" --force >/dev/null 2>&1
    moerun run -m "$T/z.gguf" -p "Once upon a time there was a little" -n 48 --temp 0 --stats \
        2>&1 | sed -n 's/^routing: entropy \([0-9.]*\) of .*takes \([0-9.]*\)% .*/\1 \2/p' >"$T/z-$r"
done
if read -r eu bu <"$T/z-uniform" && read -r ez bz <"$T/z-zipf:2" &&
    awk -v eu="$eu" -v ez="$ez" -v bz="$bz" 'BEGIN { exit !(ez < eu - 0.2 && bz >= 25.0) }'; then
    ok "--routing zipf:2 skews routing (entropy $eu -> $ez bits, busiest expert $bu% -> $bz%)"
else
    bad "--routing zipf:2 did not skew routing: $(cat "$T/z-uniform") vs $(cat "$T/z-zipf:2")"
fi
expect 0 "synth dense twin" moerun synth --shape micro --dense -o "$T/d.gguf"
expect 0 "info on the dense twin" moerun info "$T/d.gguf"
contains "$T/out" "(llama), dense," "the twin is dense"
contains "$T/out" "routing: dense (no router)" "the dense twin has no router"
expect 0 "run with a Q8_0 KV cache" moerun run -m "$MODEL" -p "Once upon a time" -n 8 --temp 0 -ctk q8_0 -ctv q8_0
contains "$T/out" "Once upon a time" "run -ctk q8_0 -ctv q8_0 prints text"
expect 1 "-ctk of a type a cache cannot hold" moerun run -m "$MODEL" -p x -n 1 -ctk q4_0
contains "$T/err" "-ctk wants f16, q8_0 or f32" "-ctk q4_0 is refused by name"
expect 0 "bench" moerun bench -m "$MODEL" -p 16 -n 4 -r 1 -t 1,2
contains "$T/out" "| tg4 |" "bench prints a tg row"
contains "$T/out" "of BW" "bench reports the bandwidth share"
expect 0 "bench --json" moerun bench -m "$MODEL" -p 8 -n 2 -r 1 --json
contains "$T/out" '"tokens_per_s"' "bench --json"
# compare runs `moerun bench` in child processes: under qemu-user a child
# aarch64 process cannot be started without binfmt, so it is checked natively
if [ "${MOERUN_SLOW_EMULATION:-0}" = 1 ]; then
    echo "skip compare under emulation (its bench children need binfmt)"
else
    expect 0 "compare a MoE shape with its dense twins" moerun compare --shape micro -pp 8 -tg 4 -r 1 \
        -tl 1 --dir "$T" --json "$T/cmp.json" --svg "$T/cmp.svg"
    contains "$T/out" "| dense, same active size |" "compare measures the same-active dense twin"
    contains "$T/out" "| dense, same total size |" "compare measures the same-total dense twin"
    contains "$T/out" "MoE decode" "compare prints the ratios"
    contains "$T/cmp.json" '"kind": "dense, same total size"' "compare --json has every model"
    if [ "$(grep -c '<polyline' "$T/cmp.svg")" -eq 6 ]; then ok "compare --svg draws 3 speeds and 3 ceilings"; else bad "compare --svg: $(grep -c '<polyline' "$T/cmp.svg") lines"; fi
    if ls "$T"/moe.gguf "$T"/dense-*.gguf >/dev/null 2>&1; then bad "compare left its twins behind"; else ok "compare removes its twins"; fi
fi
expect 1 "compare without a MoE" moerun compare -tl 1
expect 1 "compare of a dense file" moerun compare -m "$T/d.gguf" -tl 1

# --- paging within a RAM budget
expect 1 "a budget too small is refused" moerun run -m "$MODEL" -p hi -n 2 --mem 20M
if grep -qE "is below the [0-9]+ MiB this model needs at -c 2048" "$T/err"; then ok "the refusal says the minimum for the context"; else bad "refusal: $(cat "$T/err")"; fi
expect 1 "a budget too small for -c 8192" moerun run -m "$MODEL" -p hi -n 2 -c 8192 --mem 80M
contains "$T/err" "needs at -c 8192" "the refusal names the larger context"
expect 0 "run --mem auto" moerun run -m "$MODEL" -p hi -n 2 --mem auto
if grep -qE -- "--mem auto: [0-9]+ MiB \((cgroup|no memory cgroup).*MemAvailable" "$T/err"; then ok "--mem auto says what it chose and why"; else bad "--mem auto: $(cat "$T/err")"; fi
expect 0 "run --mem at the minimum" moerun run -m "$T/s.gguf" -p "hello there" -n 4 --temp 0 --mem 80M --stats
contains "$T/err" "hit rate" "--stats reports the pager"
moerun run -m "$T/s.gguf" -p "hello there" -n 4 --temp 0 >"$T/resident.txt" 2>/dev/null
if cmp -s "$T/resident.txt" "$T/out"; then ok "paged text == resident text"; else bad "paged and resident runs differ"; fi
MOERUN_FAULT="eio@1:0" moerun run -m "$T/s.gguf" -p "hello there" -n 4 --temp 0 --mem 80M --prefetch 0 >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -eq 3 ] && grep -q "layer 1 expert 0" "$T/err"; then ok "an injected EIO exits 3 naming layer and expert"; else bad "EIO: exit $rc"; cat "$T/err"; fi

# --- one option table, llama.cpp's names (src/cli/options.c)
expect 1 "an unknown single-dash word" moerun run -m "$MODEL" -p hi -xyz
contains "$T/err" "unknown option '-xyz'" "the unknown option is named as typed"
expect 1 "-cnv is not -c nv" moerun run -m "$MODEL" -p hi -cnv
contains "$T/err" "unknown option '-cnv'" "-cnv is named whole"
expect 1 "-c with a bad value" moerun perplexity -m "$MODEL" -f "$DATA/valid.txt" -c nv
contains "$T/err" "-c wants a context length" "-c is the context in perplexity too"
expect 0 "-ngl and -fa are noted and ignored" moerun run -m "$MODEL" -p hi -n 2 --temp 0 -ngl 99 -fa on
contains "$T/err" "-ngl 99 is ignored" "-ngl gets a note"
contains "$T/err" "-fa on is ignored" "-fa gets a note"
expect 0 "--ctx-size=N and -t in perplexity" moerun perplexity -m "$MODEL" -f "$DATA/valid.txt" --ctx-size=64 --chunks 1 -t 1
expect 0 "-s -1 is a random seed" moerun run -m "$MODEL" -p hi -n 2 -s -1
expect 1 "-s must be a seed" moerun run -m "$MODEL" -p hi -n 2 -s x
expect 0 "-t above the CPUs is lowered" moerun run -m "$MODEL" -p hi -n 2 --temp 0 -t 1000
contains "$T/err" "is more than the" "-t 1000 gets a note"
contains "$T/err" "threads, seed" "run still runs"
if grep -q " 1000 threads" "$T/err"; then bad "-t 1000 was not capped"; else ok "-t 1000 is capped"; fi
expect 1 "--mem 8i is refused" moerun run -m "$MODEL" -p hi --mem 8i
expect 1 "--mem 1.5Gx is refused" moerun run -m "$MODEL" -p hi --mem 1.5Gx
printf 'Once upon a time' >"$T/prompt.txt"
moerun run -m "$MODEL" -f "$T/prompt.txt" -n 8 --temp 0 >"$T/a" 2>/dev/null
moerun run -m "$MODEL" -f - -n 8 --temp 0 <"$T/prompt.txt" >"$T/out" 2>"$T/err"
if [ -s "$T/a" ] && cmp -s "$T/a" "$T/out"; then ok "-f - reads the prompt from stdin"; else bad "-f - differs from -f FILE"; fi
expect 0 "-n beyond the context" moerun run -m "$MODEL" -p "Once upon a time" -n 100 -c 16 --temp 0
contains "$T/err" "-n 100 does not fit the context" "-n beyond the context says so"
expect 0 "-c beyond the trained context" moerun run -m "$MODEL" -p "Once" -n 2 -c 4096 --temp 0
contains "$T/err" "beyond the 2048 tokens the model was trained on" "-c beyond n_ctx_train says so"
MOERUN_ISA=bogus moerun run -m "$MODEL" -p hi -n 2 >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "MOERUN_ISA=bogus" "$T/err"; then ok "MOERUN_ISA=bogus is an error"; else bad "MOERUN_ISA=bogus: exit $rc"; fi
expect 1 "kld --prompts ,," moerun kld -m "$MODEL" --prompts ,,
expect 1 "kld --prompts a,,b" moerun kld -m "$MODEL" --prompts short,,long_story
expect 1 "quantize has no -f" moerun quantize "$T" "$T/x.gguf" q8_0 -f
expect 1 "quantize a GGUF" moerun quantize "$MODEL" "$T/x.gguf" Q4_K_M
contains "$T/err" "re-quantizing a GGUF is not supported yet" "a GGUF input is explained"
expect 1 "quantize to an unknown upper-case type" moerun quantize "$T" "$T/x.gguf" IQ2_XXS
contains "$T/err" "unknown type 'IQ2_XXS'" "the type is named as typed"
# help: every option line has its text at column 31 (or on the next line)
for c in run info tokenize logits perplexity quantize verify kld synth bench; do
    moerun "$c" --help >"$T/h" 2>&1
    badcols=$(awk '/^  (-|    --)/ { r = substr($0, 3); if (match(r, /[^ ]  +[^ ]/) && RSTART + RLENGTH + 1 != 31) print }' "$T/h")
    if [ -z "$badcols" ]; then ok "$c --help columns line up"; else bad "$c --help: misaligned: $badcols"; fi
done
moerun perplexity --help >"$T/h"
for o in -m -f -c --chunks -t --exact --mem; do contains "$T/h" "$o" "perplexity --help lists $o"; done
moerun kld --help >"$T/h"
for o in --ref --prompts -t --exact; do contains "$T/h" "$o" "kld --help lists $o"; done

# --- Ctrl-C in run stops generating but still prints the timings (exit 130);
# natively only: through an emulator the signal would reach the wrapper
if [ -z "$RUNNER" ]; then
    $RUNNER "$BIN" run -m "$MODEL" -p "Once upon a time" -n 5000 -c 4096 --temp 0.8 --ignore-eos >"$T/out" 2>"$T/err" &
    pid=$!
    sleep 0.5
    kill -INT $pid 2>/dev/null
    wait $pid
    rc=$?
    if [ "$rc" -eq 130 ] && grep -q "generation:" "$T/err" && grep -q "interrupted" "$T/err"; then
        ok "Ctrl-C prints the timings (exit 130)"; else bad "Ctrl-C: exit $rc"; sed 's/^/    /' "$T/err" | tail -3; fi
else
    echo "skip Ctrl-C: moerun runs through $RUNNER"
fi

# --- info prints uint64 arrays (checksums) exactly, in hex
moerun info "$MODEL" >"$T/out"
if grep "moerun.checksum.tensors" "$T/out" | grep -q "0x[0-9a-f]\{16\}" &&
   ! grep "moerun.checksum.*uint64" "$T/out" | grep -q -- "-[0-9]"; then ok "info shows checksums as hex"; else
    bad "info checksums: $(grep moerun.checksum.tensors "$T/out")"; fi
contains "$T/out" "kernels:" "info names the kernels"

# --- logits: atomic, refuses an existing file without --force
expect 1 "logits over an existing file" moerun logits -m "$MODEL" -p "Once" -o "$T/l.f32"
contains "$T/err" "use --force" "logits says how to replace"
expect 0 "logits --force" moerun logits -m "$MODEL" -p "Once" -o "$T/l.f32" --force
size=$(wc -c <"$T/l.f32")
if [ "$size" -eq $((2 * 32000 * 4)) ]; then ok "logits --force replaced the file"; else bad "logits --force: size $size"; fi
# a full disk: the file-size limit makes the write fail (SIGXFSZ ignored)
(trap '' XFSZ; ulimit -f 64; moerun logits -m "$MODEL" -p "Once upon a time" -o "$T/full.f32") >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -eq 3 ] && [ ! -e "$T/full.f32" ] && [ -z "$(ls -A "$T" | grep full)" ]; then
    ok "logits on a full disk exits 3 and leaves no file"; else bad "logits full disk: exit $rc"; ls "$T"; fi

# --- non-finite weights: run, perplexity and logits fail instead of printing nothing
moerun synth --shape micro --type f16 -o "$T/nan.gguf" >/dev/null 2>&1
off=$(moerun info "$T/nan.gguf" | awk '$1 == "output.weight" { print $NF + 2 * 70 }')
printf '\000\176' | dd of="$T/nan.gguf" bs=1 seek="$off" conv=notrunc 2>/dev/null
expect 2 "run on NaN weights" moerun run -m "$T/nan.gguf" -p "hello there" -n 4 --temp 0
contains "$T/err" "NaN" "run names the NaN"
expect 2 "perplexity on NaN weights" moerun perplexity -m "$T/nan.gguf" -f "$DATA/valid.txt" -c 16 --chunks 1
if grep -q "^PPL" "$T/out"; then bad "perplexity printed a PPL for NaN logits"; else ok "no PPL = nan"; fi
expect 2 "logits on NaN weights" moerun logits -m "$T/nan.gguf" -p "hello" -o "$T/nan.f32"
if [ -e "$T/nan.f32" ]; then bad "logits wrote NaN logits"; else ok "no NaN logits file"; fi

# --- verify checks the metadata of the files moerun writes
# flip_value FILE KEY: change the 3rd byte of the (scalar) value of KEY
flip_value() {
    koff=$(grep -obaF "$2" "$1" | head -n 1 | cut -d: -f1)
    voff=$((koff + ${#2} + 4 + 2))
    printf '\101' | dd of="$1" bs=1 seek="$voff" conv=notrunc 2>/dev/null
}
moerun synth --shape micro --type q8_0 -o "$T/meta.gguf" >/dev/null 2>&1
expect 0 "verify a synth file" moerun verify "$T/meta.gguf"
contains "$T/out" "the metadata matches" "verify checks the metadata"
flip_value "$T/meta.gguf" llama.rope.freq_base
expect 2 "verify after rope.freq_base changed" moerun verify "$T/meta.gguf"
contains "$T/err" "moerun.checksum.metadata" "the metadata mismatch is named"
expect 0 "verify an older file says metadata is unchecked" moerun verify "$MODEL"
contains "$T/out" "metadata NOT checked" "an older file is not silently OK"

# --- quantize / verify (tinymix from the shared data; skipped without it)
expect 1 "quantize without arguments" moerun quantize
expect 1 "quantize without --type" moerun quantize "$T" "$T/x.gguf"
expect 1 "quantize to an unknown type" moerun quantize "$T" "$T/x.gguf" --type q7_0
contains "$T/err" "unknown type 'q7_0'" "unknown type is named"
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
    expect 0 "quantize with llama.cpp's upper-case type name" moerun quantize "$SHARED/models/tinymix" "$T/k.gguf" Q4_K_M -t 2
    contains "$T/err" "(q4_k_m)" "Q4_K_M is q4_k_m"
    expect 0 "verify checks the quantized metadata" moerun verify "$T/k.gguf"
    contains "$T/out" "the metadata matches" "quantize seals the metadata"
    flip_value "$T/k.gguf" llama.rope.freq_base
    expect 2 "verify a quantized file after a metadata byte flipped" moerun verify "$T/k.gguf"
    rm -f "$T/k.gguf"
    moerun quantize "$SHARED/models/tinymix" "$T/k.gguf" --type q4_k -t 2 2>/dev/null
    # Q4_K has SIMD kernels now: the slow-path note shows when the scalar set is forced
    export MOERUN_ISA=scalar
    expect 0 "info on a q4_k file, scalar kernels" moerun info "$T/k.gguf" --no-tensors
    contains "$T/out" "on the SCALAR path" "info says q4_k runs on the scalar path"
    expect 0 "run --stats on a q4_k file, scalar kernels" moerun run -m "$T/k.gguf" -p "Once" -n 2 --temp 0 --stats
    contains "$T/err" "scalar for every type (slow)" "run --stats says the scalar kernels are slow"
    unset MOERUN_ISA
    if [ "$(moerun --version 2>&1 | grep -c scalar)" -eq 0 ]; then
        expect 0 "run --stats on a q4_k file" moerun run -m "$T/k.gguf" -p "Once" -n 2 --temp 0 --stats
        if grep -q "SCALAR path" "$T/err"; then bad "q4_k still on the scalar path with SIMD kernels"; else ok "q4_k runs on SIMD kernels"; fi
    fi
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
# --- every PPL/KLD figure in the docs is what the command shown above it prints:
# lines "$ ./moerun ..." followed by "PPL = X" or "KLD = X" in README.md and
# models/README.md are run (../shared -> the test data) and compared: PPL to
# 1e-4 relative, KLD to 3 % (a drift such as 33.9887 -> 33.9688 fails)
if [ "${MOERUN_SLOW_EMULATION:-0}" = 1 ]; then
    echo "skip the docs' figures under emulation (MOERUN_SLOW_EMULATION=1)"
else
    for doc in "$SRC/README.md" "$SRC/models/README.md"; do
        awk '/^\$ \.\/moerun / { cmd = substr($0, 3); next }
             cmd != "" && /^(PPL|KLD) = / { print $1 "\t" $3 "\t" cmd } { cmd = "" }' "$doc" >"$T/figs"
        nfig=0
        while IFS="	" read -r what want cmd; do
            nfig=$((nfig + 1))
            case "$cmd" in *../shared*) [ -d "$SHARED/ref" ] || { echo "skip (no shared data): $cmd"; continue; } ;; esac
            args=$(printf '%s' "$cmd" | sed "s|^\./moerun ||; s|\.\./shared|$SHARED|g; s|models/|$SRC/models/|g; s|tests/data/|$SRC/tests/data/|g")
            # shellcheck disable=SC2086
            got=$(moerun $args 2>/dev/null | sed -n "s/^$what = //p")
            if awk -v g="$got" -v w="$want" -v k="$what" 'BEGIN { if (g == "") exit 1;
                    d = (g - w) / w; if (d < 0) d = -d; exit !(d <= (k == "PPL" ? 1e-4 : 0.03)) }'; then
                ok "${doc#"$SRC"/}: '$cmd' prints $what = $got (doc: $want)"
            else
                bad "${doc#"$SRC"/}: '$cmd' prints $what = '$got', the doc says $want"
            fi
        done <"$T/figs"
        if [ "$nfig" -gt 0 ]; then ok "${doc#"$SRC"/} has $nfig checked figures"; else bad "no checked figures in $doc"; fi
    done
fi

echo "$pass passed, $fail failed${RUNNER:+ (moerun run through: $RUNNER)}"
[ "$fail" -eq 0 ]
