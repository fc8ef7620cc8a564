"""The fast recipe's evaluation-side tricks taken out one at a time, on its
trained checkpoints (issue 26, item 4).

  python results/fast_ablation_eval/evaluate.py OUT CONFIG WORKDIR [CONFIG WORKDIR ...]

Three of the recipe's tricks change nothing in training: the EMA of the
weights (kept beside the weights, never fed back), the test-time flip and
the test-time shift. So each trained checkpoint is its own pair: the
recipe's reading (EMA, flip, 2-px shift: results/tta_shift/) against the
same checkpoint read without one trick. (The shift's variant came with
results/fast_9ep/; this folder's files predate it, and the shift's
earlier readings are in results/tta_shift/.) 'without_ema' reads the raw
weights and BatchNorm statistics of the checkpoint the EMA was saved with
(what a run with ema_decay=0 would have trained, bit for bit); the
command line refuses that (ema_decay names what a workdir holds), hence
this script, which restores with flaxdil.training.evaluation directly.
Each result is written to OUT/NAME-VARIANT.json, NAME being the workdir's
parent and base names.
"""

import os
import sys

from flaxdil.config import files, rules
from flaxdil.config.args import with_fields
from flaxdil.training import evaluation, inputs
from flaxdil.training.devices import Devices

VARIANTS = {'without_ema': {'ema_decay': 0.0},
            'without_test_time_flip': {'test_time_flip': False},
            'without_test_time_shift': {'test_time_shift': 0}}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for config_path, workdir in zip(sys.argv[2::2], sys.argv[3::2]):
  name = '_'.join(os.path.normpath(workdir).split(os.sep)[-2:])
  for variant, fields in VARIANTS.items():
    config = with_fields(files.load(config_path),
                         data_dir='../shared/tensorflow_datasets', **fields)
    devices = Devices.of()
    info = rules.check_run(config, devices.all)
    state, step = evaluation.restore_checkpoint(config, info, workdir)
    pipeline = inputs.choose(config, info, devices, 50000)
    directory = os.path.join(out, f'{name}-{variant}')
    os.makedirs(directory, exist_ok=True)
    result = evaluation.evaluate_state(
        pipeline, evaluation.pmapped_eval_step(config, info, devices), state,
        step, directory, config.test_split)
    os.replace(os.path.join(directory, 'eval_test.json'), directory + '.json')
    os.rmdir(directory)
    print(name, variant, result['accuracy'], flush=True)
