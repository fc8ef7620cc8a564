#!/usr/bin/env bash
# On one NVIDIA H200 through the device tool (issue 26, item 7), in
# back-to-back calls to one warm machine (ignored paths stay between them):
#   call k = 0..3:  carry ["gpu_parts/pk"]          bash results/gpu_speedrun/run.sh part k
#   last call:      carry [".whl"]                  bash results/gpu_speedrun/run.sh go
# (.whl: the wheels of requirements.txt the machine's image lacks, as
# results/gpu_h200 carried them.) `part` moves the carried part into
# gpu_store/; `go` joins the parts, checks every file's sha256 against
# ../shared's, and then measures:
#   1. time to 84.25 % with configs/cifar10_fast.py (δ = 0), batch 1024 and
#      the learning rate scaled by the square root of 1024 / 128, 3 seeds,
#      the first with a cold compile cache, the others warm;
#   2. the loop ÷ step ratio at K = 1 and K = 8 (bin/bench_loop.py);
#   3. bfloat16 against float32 (bin/bench.py).
set -o pipefail
cd "$(dirname "$0")/../.."
if [ "$1" = part ]; then
  mkdir -p gpu_store && mv gpu_parts/p$2/* gpu_store/ && ls -la gpu_store; exit
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
D=gpu_store/tensorflow_datasets/cifar10/3.0.2
mkdir -p $D && cat gpu_store/train.part0* > $D/cifar10-train.array_record-00000-of-00001
mv gpu_store/cifar10-test.* gpu_store/*.json gpu_store/label.labels.txt $D/ 2>/dev/null
(cd $D && sha256sum -c ../../../SHA256SUMS) | tee "$OUT/data.txt" || exit
{ date -u; nvidia-smi -L; python3 -c "import jax; print(jax.__version__, jax.devices())"; } 2>&1 | tee "$OUT/env.txt"
DATA=--config.data_dir=gpu_store/tensorflow_datasets
export JAX_COMPILATION_CACHE_DIR=/tmp/jax-cache
timeout 330 python3 bin/speedrun.py --seeds=3 --target=0.8425 --out=/tmp/speed -- \
  --config=configs/cifar10_fast.py $DATA --config.batch_size=1024 \
  --config.learning_rate=0.00566 2>&1 | tee "$OUT/speedrun.log"
cp /tmp/speed/speedrun.md /tmp/speed/speedrun.json "$OUT/" 2>/dev/null
for K in 1 8; do
  timeout 60 python3 bin/bench_loop.py --steps=400 --log_every=100 --repeats=1 \
    --runs=1 --step_steps=50 -- --config=configs/cifar10_fast.py $DATA \
    --config.batch_size=1024 --config.steps_per_dispatch=$K 2>&1 | tee "$OUT/loop_k$K.log"
done
for T in float32 bfloat16; do
  timeout 45 python3 bin/bench.py --config=configs/cifar10_fast.py $DATA \
    --config.batch_size=1024 --config.dtype=$T --runs=5 --steps=20 2>&1 | tee "$OUT/bench_$T.log"
done
