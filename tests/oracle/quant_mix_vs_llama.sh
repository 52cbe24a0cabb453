#!/bin/sh
# quant_mix_vs_llama.sh - for every llama-quantize mix moerun has, quantize
# each fixture's checkpoint with `moerun quantize` and the same fixture's
# F32/BF16 GGUF with llama-quantize, and compare the two files tensor by
# tensor: type and bytes.  An oracle run by hand (it needs a llama.cpp
# build), not part of make check; make check tests the type choices against
# tests/data/quant_mix/*.types, which this script writes with --write-types.
#
#   LLAMA_BIN=/path/to/llama.cpp/build/bin tests/oracle/quant_mix_vs_llama.sh [--write-types DIR]
set -eu
: "${LLAMA_BIN:?set LLAMA_BIN to a llama.cpp build's bin directory}"
moerun=${MOERUN_BIN:-./moerun}
shared=${MOERUN_TESTDATA:-../shared}
types_dir=
[ "${1:-}" = --write-types ] && types_dir=$2
mixes="q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

# name type nbytes offset, one line per tensor
tensors() { "$moerun" info "$1" | awk '$2 ~ /^(F32|F16|BF16|Q[0-9]_[01K]|Q[0-9]_K|IQ4_NL|IQ4_XS|MXFP4)$/ && $1 ~ /weight|bias/ {print $1, $2, $(NF-1), $NF}'; }

compare() { # ours theirs label
    c_ours=$1 c_theirs=$2 c_label=$3
    tensors "$c_ours" | sort >"$t/a"
    tensors "$c_theirs" | sort >"$t/b"
    n=0 same=0 typed=0
    while read -r name ty nb off; do
        n=$((n + 1))
        other=$(grep "^$name " "$t/b" || echo "- - - -")
        oty=$(echo "$other" | cut -d' ' -f2) ooff=$(echo "$other" | cut -d' ' -f4)
        [ "$oty" = "$ty" ] || { echo "  $name: moerun $ty, llama.cpp $oty"; continue; }
        typed=$((typed + 1))
        if cmp -s -i "$off:$ooff" -n "$nb" "$c_ours" "$c_theirs"; then same=$((same + 1)); else echo "  $name ($ty): bytes differ"; fi
    done <"$t/a"
    echo "$c_label: $typed/$n tensor types equal, $same/$n tensors byte-identical"
}

run() { # fixture hf_dir llama_input
    fx=$1 hf=$2 src=$3
    for mx in $mixes; do
        up=$(echo "$mx" | tr a-z A-Z)
        ours=$t/$fx-ours-$mx.gguf theirs=$t/$fx-llama-$mx.gguf
        "$moerun" quantize "$hf" "$ours" "$mx" -t 2 --force >/dev/null 2>"$t/err" || { echo "$fx $mx: moerun failed: $(cat "$t/err")"; continue; }
        "$LLAMA_BIN/llama-quantize" "$src" "$theirs" "$up" 2 >/dev/null 2>"$t/err" || { echo "$fx $mx: llama-quantize failed: $(tail -2 "$t/err")"; continue; }
        compare "$ours" "$theirs" "$fx $mx"
        if [ -n "$types_dir" ]; then
            tensors "$theirs" | awk '{print $1, $2}' | sort >"$types_dir/$fx-$mx.types"
        fi
        rm -f "$ours" "$theirs"
    done
}

# llama-quantize cannot requantize a file of another alignment than 32
"$moerun" quantize "$shared/models/tinymix" "$t/tinymix-f32.gguf" f32 -t 2 --alignment 32 >/dev/null 2>&1
run tinymix "$shared/models/tinymix" "$t/tinymix-f32.gguf"
for fx in tinyqwen3moe tinyllama4 tinydeepseek3; do
    run "$fx" "$shared/models/$fx/hf" "$shared/models/$fx/gguf/$fx-bf16.gguf"
done
