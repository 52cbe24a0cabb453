#!/bin/sh
# quality_table.sh - quantize shared/models/tinymix to every output type and
# print a Markdown table: file size, perplexity (the reference protocol:
# -c 256 --chunks 16 on shared/ref/valid.txt) and KL divergence of the
# logits from the bf16 reference logits of shared/ref (moerun kld).
# Usage (from the build directory): bench/quality_table.sh [TYPE...]
set -u
BIN=${MOERUN_BIN:-./moerun}
SRC=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${MOERUN_TESTDATA:-$SRC/../shared}
TYPES=${*:-f32 f16 bf16 q8_0 q6_k q5_k_m q4_k_m q4_k q4_0 q3_k_m q2_k}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "| type | file MB | PPL | KLD mean | KLD median | KLD max | top-1 agree |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for t in $TYPES; do
    f="$T/tinymix-$t.gguf"
    "$BIN" quantize "$SHARED/models/tinymix" "$f" --type "$t" 2>"$T/q.log" || { cat "$T/q.log"; continue; }
    ppl=$("$BIN" perplexity -m "$f" -f "$SHARED/ref/valid.txt" -c 256 --chunks 16 2>/dev/null |
          sed -n 's/^PPL = //p')
    "$BIN" kld -m "$f" --ref "$SHARED/ref" >"$T/kld.txt" 2>/dev/null
    kld=$(sed -n 's/^KLD = //p' "$T/kld.txt")
    med=$(sed -n 's/^all .*KLD median \([0-9.e+-]*\).*/\1/p' "$T/kld.txt")
    max=$(sed -n 's/^all .* max \([0-9.e+-]*\)  top.*/\1/p' "$T/kld.txt")
    agree=$(sed -n 's/^all .*top-1 agree *\([0-9.]*\) %.*/\1/p' "$T/kld.txt")
    mb=$(awk "BEGIN { printf \"%.1f\", $(wc -c <"$f") / 1e6 }")
    echo "| $t | $mb | $ppl | $kld | $med | $max | $agree % |"
    rm -f "$f"
done
