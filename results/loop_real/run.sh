#!/usr/bin/env bash
# Issue 25's loop targets, measured in real trainings on the shared CIFAR-10
# (JPEG-q75 copy): bin/bench_loop.py runs `python -m flaxdil` and reads its
# metrics.jsonl, in turns with the bare step. Then, for "before", the same
# trainings at 12f905f (a worktree at $OLD), read the same way.
# Run from the checkout's root, nothing else running.
set -euo pipefail
OUT=results/loop_real
DATA=../shared/tensorflow_datasets
OLD=${OLD:-/work/wt-old}
TINY=(--config=configs/tiny.py --config.batch_size=64 --config.data_dir=$DATA)
PAPER=(--config=configs/cifar10.py --config.data_dir=$DATA)
python bin/bench_loop.py --steps=2000 --log_every=250 --repeats=3 --runs=3 \
  --step_steps=50 -- "${TINY[@]}" > $OUT/tiny_b64.txt 2>&1
python bin/bench_loop.py --steps=300 --log_every=50 --repeats=3 --runs=3 \
  --step_steps=20 -- "${PAPER[@]}" > $OUT/paper_b128.txt 2>&1
# Before: the old code's own trainings (its bench.py times the same step).
python - "$OLD" "${TINY[*]}" "${PAPER[*]}" > $OUT/before_12f905f.txt 2>&1 <<'PY'
import json, os, statistics, subprocess, sys, tempfile
old, tiny, paper = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
for name, args, steps, every in (('tiny_b64', tiny, 2000, 250),
                                 ('paper_b128', paper, 300, 50)):
  with tempfile.TemporaryDirectory() as workdir:
    subprocess.run([sys.executable, os.path.join(old, 'bin', 'main.py'), *args,
                    f'--config.num_train_steps={steps}',
                    f'--config.log_every_steps={every}',
                    f'--config.eval_every_steps={steps}',
                    '--config.checkpoint_every_minutes=0',
                    f'--workdir={workdir}'], check=True, cwd=os.getcwd(),
                   env=dict(os.environ, PYTHONPATH=old),
                   stdout=subprocess.DEVNULL)
    rates = [r['images_per_sec'] for r in map(json.loads,
             open(os.path.join(workdir, 'metrics.jsonl'))) if r['split'] == 'train']
  print(json.dumps({'run': name, 'commit': '12f905f', 'steps': steps,
                    'logged_images_per_sec': rates,
                    'median_after_first': statistics.median(rates[1:])}),
        flush=True)
PY
