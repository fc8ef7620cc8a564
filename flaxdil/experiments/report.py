"""Finished (or running) workdirs → markdown tables and PNG plots.

Reads what training leaves in each workdir: config.json, metrics.jsonl,
summary.json (once finished) and budget.json (for time-budgeted sweeps).
Nothing is recomputed, so a report can be made while a sweep still runs.

Runs whose configs differ only in their seed form a group: the report gives
each group's test accuracy over its seeds (n, mean, standard deviation, 95 %
interval) and, against a reference group (δ = 0 in Table 2), the paired
difference at each seed (flaxdil.experiments.stats).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from flaxdil.errors import FlaxdilError
from flaxdil.experiments import paper, plots, stats
from flaxdil.experiments.settings import input_label, setting
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
    if not self.validation:
      return []
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
  header = ('| run | model | δ | input | params | MACs/image | test acc. % '
            '| best val. % '
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
        input_label(config),
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


@dataclasses.dataclass
class Group:
  """Runs of one experiment at different seeds."""
  name: str
  runs: list  # RunRecord, finished or not.

  @property
  def config(self) -> dict:
    return self.runs[0].config

  def test_accuracy(self) -> dict:
    """{seed: test accuracy} of the finished runs."""
    return {r.config.get('seed', 0): r.summary['test_accuracy']
            for r in self.runs if r.finished}


def group_by_seed(runs: list[RunRecord]) -> list[Group]:
  """Runs that differ only in seed (and bookkeeping), in first-seen order;
  a group is named as its runs are, without their -seedK."""
  groups = {}
  for run in runs:
    key = setting(run.config)
    groups.setdefault(key, []).append(run)
  return [Group(re.sub(r'-seed\d+$', '', members[0].name), members)
          for members in groups.values()]


def _references(groups: list[Group], name: str | None) -> list:
  """Each group's reference for paired differences: the group named `name`;
  by default the paper's network with δ = 0 in every module at the group's
  own settings (input size, epochs, ...), so that a report over several
  resolutions pairs each δ with δ = 0 at its resolution."""
  if name:
    found = [g for g in groups if g.name == name]
    if not found:
      raise FlaxdilError(f'--reference={name!r} names no group; groups: '
                         f'{", ".join(g.name for g in groups)}.')
    return [found[0]] * len(groups)
  base = {setting(g.config, ['dilation']): g for g in reversed(groups)
          if g.config.get('dilation') == 0
          and g.config.get('model', 'dilated_net') == 'dilated_net'}
  return [base.get(setting(g.config, ['dilation'])) for g in groups]


def _interval(described: dict) -> str:
  if described['ci95'] is None:
    return '—'
  low, high = described['ci95']
  return f'[{100 * low:.2f}, {100 * high:.2f}]'


def seed_table(groups: list[Group], references: list) -> tuple[str, list]:
  """Test accuracy over seeds per group, in percent, with the paired
  difference to its reference (references[i] for groups[i]); and the same
  as JSON-able records."""
  header = ('| group | δ | input | n | mean % | std | 95 % interval | paper % '
            '| paired diff. (95 % interval) | to | seeds |')
  lines = [header, '|' + '---|' * (header.count('|') - 1)]
  records = []
  for group, reference in zip(groups, references):
    accuracy = group.test_accuracy()
    if not accuracy:
      continue
    described = stats.describe([accuracy[s] for s in sorted(accuracy)])
    paired = (stats.paired_differences(accuracy, reference.test_accuracy())
              if reference and group is not reference else None)
    model = group.config.get('model', 'dilated_net')
    expected = paper.expected_accuracy(model, group.config.get('dilation'))
    if paired:
      diff = (f'{100 * paired["mean"]:+.2f} {_interval(paired)}'
              + (' excludes 0' if paired['excludes_zero'] else ''))
    else:
      diff = '—'
    lines.append('| ' + ' | '.join([
        group.name,
        _dilation_label(group.config.get('dilation')) if model == 'dilated_net' else '—',
        input_label(group.config),
        str(described['n']), f'{100 * described["mean"]:.2f}',
        '—' if described['std'] is None else f'{100 * described["std"]:.2f}',
        _interval(described), '—' if expected is None else f'{expected:.2f}',
        diff, reference.name if paired else '—',
        ', '.join(str(s) for s in sorted(accuracy))]) + ' |')
    records.append({'group': group.name, 'config': group.config,
                    'test_accuracy_by_seed': accuracy, **described,
                    'paper': expected,
                    'reference': reference.name if paired else None,
                    'paired_to_reference': paired})
  return '\n'.join(lines) + '\n', records


def write_report(paths: list[str], out_dir: str,
                 reference: str | None = None) -> dict:
  """OUT/table.md (per run; over seeds where runs share a config), OUT/
  seeds.json and the plots the runs support."""
  runs = [load_run(w) for w in find_workdirs(paths)]
  groups = group_by_seed(runs)
  references = _references(groups, reference)
  os.makedirs(out_dir, exist_ok=True)
  text = table(runs)
  over_seeds, records = seed_table(groups, references)
  if any(len(g.runs) > 1 for g in groups):
    text = ('## Over seeds\n\n' + over_seeds + '\n## Per run\n\n' + text)
    files.write_json_atomic(os.path.join(out_dir, 'seeds.json'),
                            {'groups': records})
  with open(os.path.join(out_dir, 'table.md'), 'w') as f:
    f.write(text)
  images = plots.write_plots(runs, groups, out_dir)
  return {'table': text, 'plots': images, 'runs': [r.workdir for r in runs],
          'groups': records}
