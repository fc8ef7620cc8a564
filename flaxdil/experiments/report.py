"""Finished (or running) workdirs → a markdown table and PNG plots.

Reads what training leaves in each workdir: config.json, metrics.jsonl,
summary.json (once finished) and budget.json (for time-budgeted sweeps).
Nothing is recomputed, so a report can be made while a sweep still runs.
"""

from __future__ import annotations

import dataclasses
import json
import os

from flaxdil.errors import FlaxdilError
from flaxdil.experiments import paper
from flaxdil.workdir import files


@dataclasses.dataclass
class RunRecord:
  name: str
  workdir: str
  config: dict
  train: list       # metrics.jsonl records of split 'train'
  validation: list  # ... of split 'validation'
  summary: dict | None
  budget: dict | None

  @property
  def finished(self) -> bool:
    return self.summary is not None

  @property
  def best_validation(self) -> float | None:
    return max((r['accuracy'] for r in self.validation), default=None)

  def elapsed_minutes(self) -> list[float]:
    """Minutes since the first record, for each validation record."""
    start = (self.train or self.validation)[0]['time']
    return [(r['time'] - start) / 60 for r in self.validation]

  def minutes_to(self, accuracy: float) -> float | None:
    """Minutes until validation accuracy first reached `accuracy` (a
    fraction), counted like `elapsed_minutes`; None if it never did."""
    for record, minutes in zip(self.validation, self.elapsed_minutes()):
      if record['accuracy'] >= accuracy:
        return minutes
    return None


def _record(line: str) -> dict | None:
  """A metrics.jsonl line; None for a blank one or one cut short by a kill."""
  try:
    return json.loads(line)
  except ValueError:
    return None


def load_run(workdir: str) -> RunRecord:
  config = files.read_json(os.path.join(workdir, 'config.json'),
                           'the config that created this workdir')
  if config is None:
    raise FlaxdilError(f'{workdir!r} has no config.json: not a training '
                       'workdir. Fix: pass workdirs that bin/main.py or '
                       'bin/sweep.py trained in.')
  records = []
  path = os.path.join(workdir, 'metrics.jsonl')
  if os.path.exists(path):
    with open(path) as f:
      records = [r for r in map(_record, f) if r is not None]
  return RunRecord(
      name=os.path.basename(os.path.normpath(workdir)), workdir=workdir,
      config=config,
      train=[r for r in records if r['split'] == 'train'],
      validation=[r for r in records if r['split'] == 'validation'],
      summary=files.read_json(os.path.join(workdir, 'summary.json'),
                              'the run\'s final summary'),
      budget=files.read_json(os.path.join(workdir, 'budget.json'),
                             'the run\'s time budget'))


def find_workdirs(paths: list[str]) -> list[str]:
  """Each path, or its subdirectories, that hold a config.json."""
  found = []
  for path in paths:
    if os.path.exists(os.path.join(path, 'config.json')):
      found.append(path)
    elif os.path.isdir(path):
      found += sorted(os.path.join(path, d) for d in os.listdir(path)
                      if os.path.exists(os.path.join(path, d, 'config.json')))
  if not found:
    raise FlaxdilError(f'no training workdirs (with a config.json) in '
                       f'{paths}. Fix: pass a sweep root or workdirs.')
  return found


def _dilation_label(dilation) -> str:
  return ('/'.join(map(str, dilation)) if isinstance(dilation, list)
          else str(dilation))


def _percent(x) -> str:
  return '—' if x is None else f'{100 * x:.2f}'


def table(runs: list[RunRecord]) -> str:
  header = ('| run | model | δ | params | MACs/image | test acc. % | best val. % '
            '| paper % | val. ≥ paper after | steps | train + validation time '
            '| train img/s | status |')
  lines = [header, '|' + '---|' * (header.count('|') - 1)]
  for run in runs:
    config, summary = run.config, run.summary or {}
    model = config.get('model', 'dilated_net')
    dilation = config.get('dilation')
    expected = paper.expected_accuracy(model, dilation)
    rates = [r['images_per_sec'] for r in run.train if 'images_per_sec' in r]
    rate = sorted(rates)[len(rates) // 2] if rates else None
    minutes = summary.get('train_wall_time_sec')
    to_paper = None if expected is None else run.minutes_to(expected / 100)
    lines.append('| ' + ' | '.join([
        run.name, model,
        _dilation_label(dilation) if model == 'dilated_net' else '—',
        f'{summary["num_params"]:,}' if 'num_params' in summary else '—',
        f'{summary["total_macs"] / 1e6:.1f} M' if summary.get('total_macs') else '—',
        _percent(summary.get('test_accuracy')),
        _percent(run.best_validation),
        '—' if expected is None else f'{expected:.2f}',
        '—' if to_paper is None else f'{to_paper:.1f} min',
        str(summary.get('final_step', run.train[-1]['step'] if run.train else 0)),
        '—' if minutes is None else f'{minutes / 60:.1f} min',
        '—' if rate is None else f'{rate:.0f}',
        'finished' if run.finished else 'running or stopped',
    ]) + ' |')
  return '\n'.join(lines) + '\n'


def plots(runs: list[RunRecord], out_dir: str) -> list[str]:
  """Writes the PNGs that the runs support; returns their paths."""
  import matplotlib  # Only reports need it.
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt

  written = []

  def save(fig, name):
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)

  # Training curves: validation accuracy against epoch and against minutes.
  fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(11, 4))
  for run in runs:
    if not run.validation:
      continue
    accuracy = [100 * r['accuracy'] for r in run.validation]
    by_epoch.plot([r['epoch'] for r in run.validation], accuracy,
                  marker='.', label=run.name)
    by_time.plot(run.elapsed_minutes(), accuracy, marker='.', label=run.name)
  by_epoch.set(xlabel='epoch', ylabel='validation accuracy (%)',
               title='Training curves')
  by_time.set(xlabel='wall-clock minutes', ylabel='validation accuracy (%)',
              title='Against training time')
  for axes in (by_epoch, by_time):
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
  save(fig, 'curves.png')

  finished = [r for r in runs if r.finished]
  dilated = [r for r in finished if r.config.get('model', 'dilated_net') == 'dilated_net'
             and isinstance(r.config.get('dilation'), int)]
  if len({r.config['dilation'] for r in dilated}) > 1:
    dilated.sort(key=lambda r: r.config['dilation'])
    fig, axes = plt.subplots(figsize=(5.5, 4))
    axes.plot([r.config['dilation'] for r in dilated],
              [100 * r.summary['test_accuracy'] for r in dilated], 'o-',
              label='flaxdil (measured)')
    axes.plot(list(paper.TABLE2_ACCURACY), list(paper.TABLE2_ACCURACY.values()),
              's--', label='paper, Table 2')
    axes.set(xlabel='δ (paper\'s dilation rate)', ylabel='CIFAR-10 test accuracy (%)',
             title='Accuracy against δ', xticks=list(paper.TABLE2_ACCURACY))
    axes.grid(alpha=0.3)
    axes.legend()
    save(fig, 'accuracy_vs_dilation.png')

  models = {r.config.get('model', 'dilated_net') for r in finished}
  if len(models) > 1:
    for key, label, name in (
        (lambda r: r.summary['num_params'], 'parameters', 'accuracy_vs_params.png'),
        (lambda r: r.summary['train_wall_time_sec'] / 60,
         'training + validation minutes',
         'accuracy_vs_time.png')):
      fig, axes = plt.subplots(figsize=(6, 4.5))
      for run in finished:
        axes.scatter(key(run), 100 * run.summary['test_accuracy'])
        axes.annotate(run.name, (key(run), 100 * run.summary['test_accuracy']),
                      fontsize=8, xytext=(4, 4), textcoords='offset points')
      if name == 'accuracy_vs_params.png':
        axes.set_xscale('log')
      axes.set(xlabel=label, ylabel='CIFAR-10 test accuracy (%)',
               title=f'Accuracy against {label}')
      axes.grid(alpha=0.3)
      save(fig, name)
  return written


def write_report(paths: list[str], out_dir: str) -> dict:
  runs = [load_run(w) for w in find_workdirs(paths)]
  os.makedirs(out_dir, exist_ok=True)
  text = table(runs)
  with open(os.path.join(out_dir, 'table.md'), 'w') as f:
    f.write(text)
  images = plots(runs, out_dir)
  return {'table': text, 'plots': images, 'runs': [r.workdir for r in runs]}
