"""Each kernel's norm in the final weights (raw, not the EMA) of two runs of
the fast recipe that differ only in weight decay.

  python results/fast_weight_decay/norms.py WORKDIR_A WD_A WORKDIR_B WD_B

Every kernel but the classifier's feeds a BatchNorm, so what the network
computes depends on its direction only; Adam's step per element is about
the learning rate whatever the norm, so the angle a step turns a kernel
by falls as its norm grows. This shows how far each decay let them grow.
"""

import sys

import jax
import numpy as np

from flaxdil.config import files, rules
from flaxdil.config.args import with_fields
from flaxdil.training import evaluation
from flaxdil.training.devices import Devices


def kernel_norms(workdir: str, weight_decay: float) -> dict:
  config = with_fields(files.load('configs/cifar10_fast.py'),
                       data_dir='../shared/tensorflow_datasets',
                       ema_decay=0.0, weight_decay=weight_decay)
  devices = Devices.of()
  info = rules.check_run(config, devices.all)
  state, _ = evaluation.restore_checkpoint(config, info, workdir)
  return {jax.tree_util.keystr(path): float(np.linalg.norm(np.asarray(v)))
          for path, v in jax.tree_util.tree_flatten_with_path(state.params)[0]
          if 'kernel' in jax.tree_util.keystr(path)}


a_dir, a_wd, b_dir, b_wd = sys.argv[1:5]
a, b = kernel_norms(a_dir, float(a_wd)), kernel_norms(b_dir, float(b_wd))
print(f'| kernel | norm, weight decay {a_wd} | norm, weight decay {b_wd} | ratio |')
print('|---|---|---|---|')
for name in a:
  print(f'| {name} | {a[name]:.2f} | {b[name]:.2f} | {a[name] / b[name]:.2f} |')
