#!/usr/bin/env bash
# Here (no GPU needed): the full CIFAR-10 copy of ../shared cut into parts
# that fit beside the working tree in one device call (64 MiB in all; the
# tracked tree is about 21 MB), with their sha256, into gpu_parts/ (ignored
# by git: .git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .git/info
for d in /gpu_parts/ /gpu_store/ /.whl/; do
  grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude
done
SRC=../shared/tensorflow_datasets/cifar10/3.0.2
rm -rf gpu_parts && mkdir -p gpu_parts
(cd $SRC && sha256sum cifar10-* > "$OLDPWD/gpu_parts/SHA256SUMS")
split -b 38M -d $SRC/cifar10-train.array_record-00000-of-00001 gpu_parts/train.part
mkdir -p gpu_parts/p3 && cp $SRC/cifar10-test.array_record-00000-of-00001 \
    $SRC/dataset_info.json $SRC/features.json $SRC/label.labels.txt gpu_parts/p3/
for i in 0 1 2 3; do
  if [ -f gpu_parts/train.part0$i ]; then
    mkdir -p gpu_parts/p$i && mv gpu_parts/train.part0$i gpu_parts/p$i/
  fi
done
cp gpu_parts/SHA256SUMS gpu_parts/p3/
# The commit the device runs (its copy of .git may be stale).
git rev-parse --short HEAD > .whl/COMMIT
du -sh gpu_parts/p*
