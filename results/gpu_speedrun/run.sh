#!/usr/bin/env bash
# On one NVIDIA H200 through the device tool (issue 26 item 7, issue 27's
# hour-long weights), in back-to-back calls to one warm machine (ignored
# paths stay between them):
#   call k = 0..3:  carry ["gpu_parts/pk"]   bash results/gpu_speedrun/run.sh part k
#   then:           carry [".whl"]           bash results/gpu_speedrun/run.sh speed
#   then:           carry [".whl"]           bash results/gpu_speedrun/run.sh weights
#   then:           carry [".whl"]           bash results/gpu_speedrun/run.sh ablation
# (.whl: the wheels of requirements.txt the machine's image lacks, and
# COMMIT, the commit that runs: split.sh writes it.) `part` moves the
# carried part into gpu_store/; the first later call joins the parts and
# checks every file's sha256 against ../shared's.
#   speed:   1. time to 84.25 % of configs/cifar10_fast.py (δ = 0) scaled
#               for the GPU: batch 256, the learning rate by the square
#               root of 256 / 128, 20 epochs, 8 steps a dispatch; 3 seeds,
#               the first with a cold compile cache, the others warm;
#            2. the loop ÷ step ratio at K = 1 and K = 8 (bin/bench_loop.py);
#            3. bfloat16 against float32 (bin/bench.py).
#   weights: the hour-long recipe (configs/cifar10_recipe.py, batch 128 as
#            on the CPU) for δ = 0 and δ = 2, seeds 0 and 1, four runs at
#            once on the one GPU (each its own process and memory share);
#            seed 0 of each δ comes back as a float32 snapshot for
#            bin/release.py (the ONNX export and the card are made here).
#   ablation: bin/sweep.py --sweep=fast_ablation over 3 seeds (the fast
#            recipe, each trick out and each candidate in, one at a time),
#            four runs at once, and bin/report.py's paired table.
# The environment: TEST=1 runs the same steps here on the CPU, shortened,
# to check the script before device time is spent on it.
set -o pipefail
cd "$(dirname "$0")/../.."
if [ "$1" = part ]; then
  mkdir -p gpu_store && mv gpu_parts/p$2/* gpu_store/ && ls -la gpu_store; exit
fi
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 FLAXDIL_COMMIT=$(cat .whl/COMMIT)
if [ -z "$TEST" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit
  D=gpu_store/tensorflow_datasets/cifar10/3.0.2
  if [ ! -f $D/cifar10-train.array_record-00000-of-00001 ]; then
    mkdir -p $D && cat gpu_store/train.part0* > $D/cifar10-train.array_record-00000-of-00001
    mv gpu_store/cifar10-test.* gpu_store/*.json gpu_store/label.labels.txt $D/
  fi
  (cd $D && sha256sum -c ../../../SHA256SUMS) | tee "$OUT/data.txt" || exit
  DATA=--config.data_dir=gpu_store/tensorflow_datasets
  PY=python3 LENGTH=--config.num_epochs=20 HOUR=() LOOP=(400 100 50) BENCH=(5 20)
  ABLATION=() PARALLEL=4
else  # A dry run here: the same commands, a few steps each.
  DATA=--config.data_dir=../shared/tensorflow_datasets
  PY=python LENGTH=--config.num_train_steps=8
  HOUR=(--config.num_train_steps=8 --config.validation_size=500)
  LOOP=(16 8 4) BENCH=(1 2) PARALLEL=2
  ABLATION=(--seeds=1 --only=fast,with_alternating_flip --set=data_dir=../shared/tensorflow_datasets,num_train_steps=4,steps_per_dispatch=8)
fi
{ date -u; echo "commit $FLAXDIL_COMMIT"; nvidia-smi -L
  $PY -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"; } 2>&1 | tee "$OUT/env_$1.txt"
export JAX_COMPILATION_CACHE_DIR=/tmp/jax-cache
if [ "$1" = speed ]; then
  rm -rf /tmp/speed
  time timeout 250 $PY bin/speedrun.py --seeds=3 --target=0.8425 --out=/tmp/speed -- \
    --config=configs/cifar10_fast.py $DATA $LENGTH \
    --config.batch_size=256 --config.learning_rate=0.002828 \
    --config.steps_per_dispatch=8 2>&1 | tee "$OUT/speedrun.log"
  for K in 1 8; do
    timeout 70 $PY bin/bench_loop.py --steps=${LOOP[0]} --log_every=${LOOP[1]} --repeats=1 \
      --runs=1 --step_steps=${LOOP[2]} -- --config=configs/cifar10_fast.py $DATA \
      --config.batch_size=256 --config.steps_per_dispatch=$K 2>&1 | tee "$OUT/loop_k$K.log"
  done
  for T in float32 bfloat16; do
    timeout 60 $PY bin/bench.py --config=configs/cifar10_fast.py $DATA \
      --config.batch_size=256 --config.dtype=$T --runs=${BENCH[0]} --steps=${BENCH[1]} 2>&1 | tee "$OUT/bench_$T.log"
  done
  tar czf "$OUT/speed.tgz" --exclude=checkpoints --exclude=export \
    --exclude=tensorboard -C /tmp speed
  ls -la "$OUT"
elif [ "$1" = weights ]; then
  # Four processes share the GPU: at batch 128 one leaves it mostly idle.
  export XLA_PYTHON_CLIENT_MEM_FRACTION=0.2
  rm -rf /tmp/hour_*
  for d in 0 2; do for s in 0 1; do
    timeout 420 $PY bin/speedrun.py --seeds=1 --first_seed=$s --target=0.8425 \
      --out=/tmp/hour_d${d}_s$s -- --config=configs/cifar10_recipe.py:dilation=$d \
      $DATA --config.steps_per_dispatch=8 "${HOUR[@]}" > "/tmp/hour_d${d}_s$s.log" 2>&1 &
  done; done
  time wait
  tail -n 4 /tmp/hour_*.log | tee "$OUT/weights.log"
  for d in 0 2; do
    $PY bin/release.py --snapshot --workdir=/tmp/hour_d${d}_s0/seed-0 \
      --name=dilated_net_d${d}_36ep --out="$OUT" --data_dir=${DATA#*=} 2>&1 | tee -a "$OUT/weights.log" &
  done
  wait
  tar czf "$OUT/hour.tgz" --exclude=checkpoints --exclude=export \
    --exclude=tensorboard -C /tmp $(cd /tmp && ls -d hour_*)
  ls -la "$OUT"
elif [ "$1" = ablation ]; then
  export XLA_PYTHON_CLIENT_MEM_FRACTION=0.2
  rm -rf /tmp/ablation
  time timeout 540 $PY bin/sweep.py --sweep=fast_ablation --seeds=3 \
    --parallel=$PARALLEL --root=/tmp/ablation \
    --set=${DATA#--config.},steps_per_dispatch=8 "${ABLATION[@]}" \
    2>&1 | tee "$OUT/ablation.log"
  $PY bin/report.py /tmp/ablation/*-seed* --reference=fast --out=/tmp/ablation/report \
    2>&1 | tee -a "$OUT/ablation.log"
  tar czf "$OUT/ablation.tgz" --exclude=checkpoints --exclude=export \
    --exclude=tensorboard -C /tmp ablation
  ls -la "$OUT"
fi
