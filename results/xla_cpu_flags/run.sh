#!/bin/bash
# XLA:CPU's optional flags against the default, each variant in its own
# process (XLA reads XLA_FLAGS once, as its backend starts). Run from the
# repository root with nothing else on the cores:
#   bash results/xla_cpu_flags/run.sh sweep    # every variant once: sweep.jsonl
#   bash results/xla_cpu_flags/run.sh rounds   # the closest, interleaved: rounds.jsonl
set -u
HERE=results/xla_cpu_flags
ARGS="--config=configs/cifar10_fast.py --config.data_dir=../shared/tensorflow_datasets"
probe() {  # $1: XLA_FLAGS, $2: output file, then probe.py's flags
  local flags_=$1 out=$2; shift 2
  XLA_FLAGS="$flags_" timeout 600 python $HERE/probe.py $ARGS "$@" >> "$out" \
    || echo "{\"xla_flags\": \"$flags_\", \"failed\": $?}" >> "$out"
}
GREEDY=--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY
case "${1:-}" in
  sweep)  # The default first and last: the host's drift over the sweep.
    for v in "" --xla_cpu_prefer_vector_width=512 \
        --xla_cpu_experimental_xnn_fusion_type=dot \
        --xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce \
        --xla_cpu_experimental_onednn_fusion_type=dot \
        --xla_cpu_use_onednn=true "$GREEDY" \
        --xla_cpu_experimental_ynn_fusion_type=dot \
        --xla_cpu_use_xnnpack=true \
        --xla_cpu_enable_concurrency_optimized_scheduler=true ""; do
      probe "$v" $HERE/sweep.jsonl
    done ;;
  rounds)  # Two rounds, each variant beside the default.
    for r in 1 2; do
      for v in "" --xla_cpu_prefer_vector_width=512 "$GREEDY" \
          --xla_cpu_use_xnnpack=true \
          --xla_cpu_enable_concurrency_optimized_scheduler=true \
          "--xla_cpu_prefer_vector_width=512 $GREEDY"; do
        probe "$v" $HERE/rounds.jsonl --runs=5 --steps=8
      done
    done ;;
  *) echo "usage: bash $0 sweep|rounds" >&2; exit 2 ;;
esac
