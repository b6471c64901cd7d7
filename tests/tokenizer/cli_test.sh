#!/usr/bin/env bash
# CLI test of `worker-orcd tokenize` / `detokenize` on a synth GGUF with a real tokenizer.
# usage: cli_test.sh WORKER_ORCD GGUF qwen2|gpt-oss
# Expected ids are the HF reference's (@lenml/tokenizers) for these strings.
set -u
worker=$1 model=$2 family=$3
failures=0
check() {  # check NAME GOT WANT
  if [ "$2" == "$3" ]; then echo "ok   $1"; else echo "FAIL $1: got [$2] want [$3]"; failures=$((failures + 1)); fi
}

case $family in
  qwen2) hello="9707 1879"; marker='<|im_end|>'; marker_id=151645 ;;
  gpt-oss) hello="13225 2375"; marker='<|end|>'; marker_id=200007 ;;
  *) echo "unknown family $family"; exit 2 ;;
esac

check "tokenize" "$(printf 'Hello world' | "$worker" tokenize --model "$model")" "$hello"
check "tokenize --json" "$(printf 'Hello world' | "$worker" tokenize --model "$model" --json)" "[${hello/ /,}]"
plain=$(printf '%s' "$marker" | "$worker" tokenize --model "$model")
check "marker text stays plain text by default" "$([[ " $plain " == *" $marker_id "* ]] && echo matched || echo plain)" "plain"
check "tokenize --special" "$(printf '%s' "$marker" | "$worker" tokenize --model "$model" --special)" "$marker_id"

text=$'h\xc3\xa9llo w\xc3\xb6rld \xf0\x9f\x9a\x80\n\ttabs  and  spaces\r\n\xe4\xb8\xad\xe6\x96\x87'
ids=$(printf '%s' "$text" | "$worker" tokenize --model "$model")
check "detokenize(tokenize(x)) == x" "$(printf '%s' "$ids" | "$worker" detokenize --model "$model")" "$text"
check "detokenize --special renders control tokens" \
  "$(printf '%s' "$marker_id" | "$worker" detokenize --model "$model" --special)" "$marker"
check "detokenize skips control tokens by default" "$(printf '%s' "$marker_id" | "$worker" detokenize --model "$model")" ""
check "detokenize --json" "$(printf '[%s]' "${hello/ /,}" | "$worker" detokenize --model "$model" --json)" '"Hello world"'

err=$(printf 'ab\300\200' | "$worker" tokenize --model "$model" 2>&1 >/dev/null); rc=$?
check "invalid UTF-8 exits 1" "$rc" "1"
check "invalid UTF-8 names the byte" "$([[ $err == *"byte 2"* ]] && echo yes || echo "no: $err")" "yes"

batch=$(printf '"Hello world"\n{"text":"%s","special":true}\n{"text":"x"\n' "$marker" | "$worker" tokenize --model "$model" --batch)
check "batch line 1" "$(sed -n 1p <<<"$batch")" "[${hello/ /,}]"
check "batch line 2" "$(sed -n 2p <<<"$batch")" "[$marker_id]"
check "batch bad line is an error reply" "$(sed -n 3p <<<"$batch" | cut -c1-10)" '{"error":"'

bad_id=$(printf '999999999' | "$worker" detokenize --model "$model" 2>&1 >/dev/null); rc=$?
check "detokenize rejects an id outside the vocabulary" "$rc:$([[ $bad_id == *"bad token id"* ]] && echo named)" "1:named"

echo "$((14 - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
