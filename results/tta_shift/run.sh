#!/usr/bin/env bash
# Test-time translation (config.test_time_shift), measured on trained
# checkpoints: each workdir's checkpoint is evaluated on the whole test split
# with the flip alone (as it was trained and reported) and with the flip
# plus translations of 1 and 2 pixels. Evaluation changes nothing in
# training, so the comparison is paired: the same weights, three ways of
# reading them. Each evaluation runs on a copy of the workdir (--mode=eval
# writes eval_test.json into it).
#   bash results/tta_shift/run.sh OUT CONFIG WORKDIR [CONFIG WORKDIR ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=$1; shift
mkdir -p "$OUT"
while [ $# -gt 0 ]; do
  CONFIG=$1 WORKDIR=$2; shift 2
  NAME=$(basename "$(dirname "$WORKDIR")")_$(basename "$WORKDIR")
  for S in 0 1 2; do
    COPY=$(mktemp -d)/$NAME
    cp -r "$WORKDIR" "$COPY"
    rm -f "$COPY/eval_test.json"
    python bin/main.py --mode=eval --workdir="$COPY" --config="$CONFIG" \
      --config.data_dir=../shared/tensorflow_datasets \
      --config.test_time_shift=$S > "$OUT/$NAME-shift$S.log" 2>&1
    cp "$COPY/eval_test.json" "$OUT/$NAME-shift$S.json"
    rm -rf "$(dirname "$COPY")"
    echo "$NAME shift=$S $(python -c "import json,sys; print(json.load(open(sys.argv[1]))['accuracy'])" "$OUT/$NAME-shift$S.json")"
  done
done
