#!/usr/bin/env bash
# Fine-tuning on the reduced Tiny ImageNet from the released CIFAR-10
# weights against the same runs from scratch, 3 seeds each (issue 27).
# Run from the checkout's root with nothing else running; TFDS prepares
# Tiny ImageNet into $DATA on first use.
set -euo pipefail
DATA=${DATA:-/work/tfds}
OUT=${OUT:-/work/ft}
python bin/speedrun.py --seeds=3 --out="$OUT/pretrained" -- \
    --config=configs/tiny_imagenet_finetune.py --config.data_dir="$DATA"
python bin/speedrun.py --seeds=3 --out="$OUT/scratch" -- \
    --config=configs/tiny_imagenet_finetune.py --config.init_from= \
    --config.data_dir="$DATA"
python bin/speedrun.py --seeds=3 --out="$OUT/probe" -- \
    --config=configs/tiny_imagenet_finetune.py --config.freeze_backbone=True \
    --config.data_dir="$DATA"
python - "$OUT" <<'PY'
import json, sys
from flaxdil.experiments import stats
root = sys.argv[1]
def seeds(arm):
  run = json.load(open(f'{root}/{arm}/speedrun.json'))
  return {s['seed']: s['test_accuracy'] for s in run['seeds']}, run
scratch, _ = seeds('scratch')
result = {}
for arm in ('pretrained', 'scratch', 'probe'):
  accuracies, run = seeds(arm)
  result[arm] = {'accuracy': run['accuracy'], 'wall_seconds': run['wall_seconds'],
                 'by_seed': accuracies,
                 'minus_scratch': stats.paired_differences(accuracies, scratch)}
json.dump(result, open('results/finetune_tiny/compare.json', 'w'), indent=1)
print(json.dumps(result, indent=1))
PY
cp "$OUT"/pretrained/speedrun.md results/finetune_tiny/pretrained.md
cp "$OUT"/scratch/speedrun.md results/finetune_tiny/scratch.md
cp "$OUT"/probe/speedrun.md results/finetune_tiny/probe.md
