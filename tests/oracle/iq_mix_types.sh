#!/bin/sh
# iq_mix_types.sh - record llama-quantize's tensor types for its i-quant
# mixes (IQ1_S ... IQ4_NL) on every family fixture llama.cpp wrote, as
# tests/data/quant_mix/<fixture>-<mix>.types (one "name TYPE" per tensor,
# sorted), which tests/test_quant_mix.c checks src/quant_mix.c against.
# llama-quantize makes IQ1/IQ2 only with an importance matrix, and the
# files people download of every i-quant are made with one: an imatrix is
# computed per fixture on tests/data/valid.txt first (llama-imatrix).  An
# oracle run by hand (it needs a llama.cpp build), not part of make check.
#
# The fixtures' rows are too short for most of the mixes' rules to show
# (they fall back to IQ4_NL), so a Qwen3-30B-A3B-shaped 8-layer synth is
# recorded too, through llama-quantize --dry-run (types only): its tensor
# list in file order as qwen3-30b-8l.tensors, its types per mix as
# qwen3-30b-8l-<mix>.types.
#
#   LLAMA_BIN=/path/to/llama.cpp/build/bin tests/oracle/iq_mix_types.sh OUT_DIR
set -eu
: "${LLAMA_BIN:?set LLAMA_BIN to a llama.cpp build's bin directory}"
out=${1:?usage: iq_mix_types.sh OUT_DIR}
moerun=${MOERUN_BIN:-./moerun}
shared=${MOERUN_TESTDATA:-../shared}
src=$(cd "$(dirname "$0")/../.." && pwd)
mixes="IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ1_S IQ1_M IQ3_XXS IQ3_XS IQ3_S IQ3_M IQ4_XS IQ4_NL"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"

run() { # fixture gguf
    fx=$1 in=$2
    "$LLAMA_BIN/llama-imatrix" -m "$in" -f "$src/tests/data/valid.txt" -o "$t/$fx.imatrix" -c 128 -t 2 \
        >"$t/imatrix.log" 2>&1 || { cat "$t/imatrix.log"; exit 1; }
    for T in $mixes; do
        m=$(echo "$T" | tr 'A-Z' 'a-z')
        # --allow-requantize: tinymix's llama.cpp file is Q8_0
        if ! "$LLAMA_BIN/llama-quantize" --allow-requantize --imatrix "$t/$fx.imatrix" "$in" "$t/q.gguf" "$T" \
            >"$t/q.log" 2>&1; then
            echo "$fx $T: llama-quantize refused: $(grep -m1 'failed to quantize' "$t/q.log")"
            continue
        fi
        "$moerun" info "$t/q.gguf" | awk '$1 ~ /\.weight$/ && NF >= 4 {print $1, $2}' | sort >"$out/$fx-$m.types"
        echo "$fx $T: $(wc -l <"$out/$fx-$m.types") tensors"
    done
}

run tinymix "$shared/models/tinymix-gguf/tinymix-Q8_0.gguf"
for fx in tinyqwen3moe tinyllama4 tinydeepseek3; do
    run "$fx" "$shared/models/$fx/gguf/$fx-bf16.gguf"
done

# the real-size shape: tensor list, imatrix, then the dry run's choices
q3=$t/q3.gguf
"$moerun" synth --shape qwen3-30b-a3b --layers 8 --type q4_0 -s 1 -o "$q3" >/dev/null
"$moerun" info "$q3" | awk '
    $1 == "qwen3moe.block_count" {nl = $2} $1 == "qwen3moe.expert_count" {ne = $2}
    $1 == "qwen3moe.attention.head_count" {nh = $2} $1 == "qwen3moe.attention.head_count_kv" {nkv = $2}
    $1 ~ /\.weight$/ && NF >= 4 {n++; name[n] = $1; row[n] = $3; sub(",", "", row[n]); dims[n] = NF - 4; if ($1 == "output.weight") out = 1}
    END {print "model", nl, ne, nh, nkv, out ? 0 : 1; for (i = 1; i <= n; i++) print name[i], dims[i], row[i]}' \
    >"$out/qwen3-30b-8l.tensors"
"$LLAMA_BIN/llama-imatrix" -m "$q3" -f "$src/tests/data/valid.txt" -o "$t/q3.imatrix" -c 128 --chunks 8 -t 2 \
    >"$t/imatrix.log" 2>&1 || { cat "$t/imatrix.log"; exit 1; }
for T in $mixes; do
    m=$(echo "$T" | tr 'A-Z' 'a-z')
    "$LLAMA_BIN/llama-quantize" --dry-run --allow-requantize --imatrix "$t/q3.imatrix" "$q3" "$T" >"$t/q.log" 2>&1
    # "[ i/ n] name - [dims], type = old, size = ... (new)": the new type, or the old kept
    sed -n 's/^\[ *[0-9]*\/ *[0-9]*\] \([^ ]*\) .* type = *\([a-zA-Z0-9_]*\),.*/\1 \2/p' "$t/q.log" >"$t/names"
    sed -n 's/^\[ *[0-9]*\/ *[0-9]*\] \([^ ]*\) .*(\([a-zA-Z0-9_]*\))$/\1 \2/p' "$t/q.log" >"$t/new"
    awk 'NR == FNR {nw[$1] = $2; next} {print $1, ($1 in nw ? nw[$1] : $2)}' "$t/new" "$t/names" |
        awk '$1 ~ /\.weight$/ {print $1, toupper($2)}' | sort >"$out/qwen3-30b-8l-$m.types"
    echo "qwen3-30b-8l $T: $(wc -l <"$out/qwen3-30b-8l-$m.types") tensors"
done
