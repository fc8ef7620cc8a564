#!/bin/bash
# The GPU check of issue 12, run once through the device tool on one
# NVIDIA H200 (its image has JAX, Flax, Optax and Orbax; the rest of
# requirements.txt travels as wheels in .whl/). The data is a slice of the
# JAX-free TFDS copy in ../shared (JPEG-q75): the first 12,000 train and
# 4,000 test records, rewritten into gpu_data/ (the tree that travels is
# limited to 64 MiB).
#   carry: .whl gpu_data
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
{ date -u; git log -1 --format='commit %H' 2>/dev/null; nvidia-smi -L;
  python3 -c "import jax, flax, optax, orbax.checkpoint as o; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"; } 2>&1 | tee $OUT/env.txt
D=--config.data_dir=gpu_data/tensorflow_datasets
# 1. Speed of the paper's network (δ=2, conv_impl=auto → lax on GPU).
for B in 128 1024; do
  timeout 150 python3 bin/bench.py --config=configs/cifar10.py $D \
    --config.batch_size=$B --runs=5 --steps=20 2>&1 | tee $OUT/bench_b$B.log
done
# 2. A short training of the paper's network on the 12k/4k slice.
time timeout 240 python3 bin/main.py --config=configs/cifar10.py $D \
  --config.validation_size=1000 --config.num_epochs=30 --workdir=/tmp/w \
  2>&1 | tee $OUT/train.log
cp /tmp/w/summary.json /tmp/w/metrics.jsonl $OUT/ 2>/dev/null
