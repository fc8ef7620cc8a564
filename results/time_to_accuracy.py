"""The time-to-accuracy table in airbench's form (issue 26, item 8),
computed from the runs' own files under results/:

  python results/time_to_accuracy.py

prints the Markdown table that README.md and docs/results.md carry
(tests/test_docs.py checks that both carry it as printed, so the figures
cannot drift from the files). Each seed's figures are its run's
summary.json (`seed-K.summary.json` in the row's folders), for the test
accuracy of the final weights (their EMA), measured once on the whole
10,000-image test split, and its speedrun record (`seed-K.json`,
`speedrun-seedK.json`, or the speedrun's printed line in `speedrun.out`),
for the wall time from process start to that printed accuracy (data read,
compile with a warm cache unless the row says cold, training and the
evaluation) and the training images seen. A row's machine,
commit and command are stated below, as each folder's README and speedrun
records give them.
"""

import dataclasses
import glob
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from flaxdil.experiments import paper, speedrun, stats  # noqa: E402

TARGET = paper.TABLE1_ACCURACY['dilated_net'] / 100   # δ = 2, CIFAR-10.
MACHINE_D = 'D (2-core Zen 4)'
MACHINE_E = 'E (2-core Xeon)'
MACHINES = {MACHINE_D: 'machine D is an AMD EPYC family 25 model 17 (Zen 4) '
                       'with 2 cores and AVX-512',
            MACHINE_E: 'machine E is an Intel Xeon family 6 model 207 with 2 '
                       'cores, AVX-512 and AMX'}
SPEEDRUN = (f'python bin/speedrun.py --seeds=N --target={TARGET:g} --out=OUT '
            '-- CONFIG --config.data_dir=../shared/tensorflow_datasets')


@dataclasses.dataclass(frozen=True)
class Row:
  recipe: str
  dilation: int
  folders: tuple[str, ...]   # Under results/, each with seed-K.summary.json.
  commits: str
  flags: str = ''            # After the config file (CONFIG in SPEEDRUN).
  machine: str = MACHINE_D


ROWS = (
    # Each CONFIG reproduces its row at any commit since 7453909: it names
    # the epochs and the crop padding, which the config has changed.
    Row('`cifar10_fast.py`, the recipe (7 epochs, crops after 1-pixel padding)',
        0, ('fast_7ep/recipe_pad1',), '635e405 (seeds 0, 1), 352e458 (2–4)',
        '--config.num_epochs=7 --config.crop_padding=1'),
    Row('the same recipe on machine E (seed 0 with a cold compile cache)',
        0, ('fast_7ep/recipe_pad1_machine_e',), '8dfa850',
        '--config.num_epochs=7 --config.crop_padding=1', MACHINE_E),
    Row('the same at 9 epochs (the recipe from 635e405 until 1de9574)', 0,
        ('fast_crop_padding/pad1_9ep',), '913e005–ec3026d',
        '--config.num_epochs=9 --config.crop_padding=1'),
    Row('9 epochs with 2-pixel padding (the recipe until 635e405)', 0,
        ('fast_candidates/crop_padding_2', 'fast_recipe'),
        '5a1d6c7 (seeds 0, 1), 43a92c7–53626aa (2–4)',
        '--config.num_epochs=9 --config.crop_padding=2'),
    Row('the recipe cut to 5 epochs (what 15 min allows here)', 0,
        ('fast_crop_padding/pad1_5ep',), '913e005',
        '--config.num_epochs=5 --config.crop_padding=1'),
    Row('the recipe, δ = 2 (the paper\'s choice)', 2, ('fast_recipe_d2_7ep',),
        '43c24ae, 59e2388', ':dilation=2 --config.num_epochs=7 --config.crop_padding=1'),
    Row('9 epochs with 2-pixel padding, δ = 2 (the paper\'s choice)', 2,
        ('fast_recipe_d2',), '726e435–b83c8de',
        ':dilation=2 --config.num_epochs=9 --config.crop_padding=2'),
    Row('20 epochs with 1-pixel padding: the hour', 0,
        ('fast_hour_pad1',), '59e2388',
        '--config.num_epochs=20 --config.crop_padding=1'),
    Row('20 epochs, 2-pixel padding, weight decay 3.0: the hour', 0,
        ('fast_hour_wd3',), '015a0df',
        '--config.num_epochs=20 --config.crop_padding=2 --config.weight_decay=3.0'),
    Row('20 epochs, 2-pixel padding, cutout 8×8: the hour', 0,
        ('fast_hour_cutout',), 'e659775',
        '--config.num_epochs=20 --config.crop_padding=2 --config.cutout=8'),
    Row('20 epochs with 2-pixel padding: the hour', 0,
        ('fast_hour_recipe',), 'abc9a1e, b615d2b',
        '--config.num_epochs=20 --config.crop_padding=2'),
)


def _read(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def timed(folder: str, seed: int) -> tuple[float, int]:
  """The seed's minutes from process start to its printed test accuracy,
  and the training images it saw, as bin/speedrun.py recorded them."""
  record = os.path.join(folder, f'seed-{seed}.json')
  if os.path.exists(record):
    entry = _read(record)
  else:
    record = os.path.join(folder, f'speedrun-seed{seed}.json')
    if not os.path.exists(record):
      with open(os.path.join(folder, 'speedrun.out')) as f:
        printed = re.search(rf'^seed {seed}: .* in ([0-9.]+) min '
                            r'\(([0-9,]+) images seen', f.read(), re.M)
      return float(printed.group(1)), int(printed.group(2).replace(',', ''))
    (entry,) = _read(record)['seeds']
  return entry['wall_seconds'] / 60, entry['images_seen']


def seeds_in(folders: tuple[str, ...]) -> dict:
  """{seed: (its summary, (its wall minutes, images seen))} of every
  seed-K.summary.json in the folders."""
  found = {}
  for folder in folders:
    folder = os.path.join(HERE, folder)
    for path in glob.glob(os.path.join(folder, 'seed-*.summary.json')):
      seed = int(re.search(r'seed-(\d+)', os.path.basename(path)).group(1))
      found[seed] = (_read(path), timed(folder, seed))
  return found


def _config(row: Row) -> str:
  # A flag, or an argument of the config file (':dilation=2').
  gap = '' if row.flags.startswith(':') else ' '
  return f'--config=configs/cifar10_fast.py{gap}{row.flags}'.rstrip()


def _seeds(seeds: list[int]) -> str:
  if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
    return f'{seeds[0]}–{seeds[-1]}'
  return ', '.join(map(str, seeds))


def line(row: Row) -> str:
  runs = seeds_in(row.folders)
  seeds = sorted(runs)
  accuracies = [runs[s][0]['test_accuracy'] for s in seeds]
  minutes = [runs[s][1][0] for s in seeds]
  images = {runs[s][1][1] for s in seeds}
  steps = {runs[s][0]['final_step'] for s in seeds}
  per_epoch = {runs[s][0]['steps_per_epoch'] for s in seeds}
  assert len(images) == len(steps) == len(per_epoch) == 1, (
      row.recipe, images, steps, per_epoch)
  (seen,), (step,), (epoch,) = images, steps, per_epoch
  described = stats.describe(accuracies)
  accuracy = f'**{100 * described["mean"]:.2f}'
  if described['std'] is not None:
    low, high = described['ci95']
    accuracy += (f' ± {100 * described["std"]:.2f} %** '
                 f'[{100 * low:.2f}, {100 * high:.2f}]')
  else:
    accuracy += ' %** (one seed)'
  reached = speedrun.seeds_at(accuracies, TARGET)
  # One seed (or seeds alike to the tenth) gives one time, not a range.
  span = sorted({f'{m:.1f}' for m in (min(minutes), max(minutes))}, key=float)
  return (f'| {row.recipe} | {row.dilation} | {accuracy} | '
          f'{reached} of {len(seeds)} | {"–".join(span)} min | '
          f'{step / epoch:g} ({seen:,}) | '
          f'{_seeds(seeds)} | {row.machine} | {row.commits} | '
          f'`{_config(row)}` |')


def table() -> list[str]:
  machines = sorted({MACHINES[row.machine] for row in ROWS})
  return ['| recipe | δ | test accuracy, mean ± std [95 % interval] | '
          f'seeds at ≥ {100 * TARGET:.2f} % | time per run | '
          'epochs (images seen) | '
          'seeds | machine | commit | CONFIG |',
          '|---|---|---|---|---|---|---|---|---|---|',
          *map(line, ROWS), '',
          f'Each row reproduces as `{SPEEDRUN}`, its CONFIG in the last '
          'column (each names its epochs and crop padding, which the config '
          'has changed: 9 epochs and 2 pixels until 635e405, 9 and 1 until '
          '1de9574, 7 and 1 since); '
          f'{"; ".join(machines)}.']


if __name__ == '__main__':
  print('\n'.join(table()))
