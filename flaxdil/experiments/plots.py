"""A report's PNG plots: training curves, accuracy against δ (over seeds,
with 95 % intervals, beside the paper's Table 2), against parameters and
against training time."""

from __future__ import annotations

import os

from flaxdil.experiments import paper, settings, stats


def _differing_fields(configs: list[dict]) -> list[str]:
  """The fields whose values are not the same in all configs."""
  keys = sorted({k for c in configs for k in c})
  return [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]


def write_plots(runs: list, groups: list, out_dir: str) -> list[str]:
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
  curves = [run for run in runs if run.validation]
  if curves:
    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    sizes = 'image_size' in _differing_fields([r.config for r in curves])
    for run in curves:
      accuracy = [100 * r['accuracy'] for r in run.validation]
      label = run.name + (f' ({settings.input_label(run.config)})' if sizes else '')
      by_epoch.plot([r['epoch'] for r in run.validation], accuracy,
                    marker='.', label=label)
      by_time.plot(run.elapsed_minutes(), accuracy, marker='.', label=label)
    by_epoch.set(xlabel='epoch', ylabel='validation accuracy (%)',
                 title='Training curves')
    by_time.set(xlabel='wall-clock minutes', ylabel='validation accuracy (%)',
                title='Against training time')
    for axes in (by_epoch, by_time):
      axes.grid(alpha=0.3)
      axes.legend(fontsize=8)
    save(fig, 'curves.png')

  finished = [r for r in runs if r.finished]
  rows = sorted(
      (g for g in groups if g.test_accuracy()
       and g.config.get('model', 'dilated_net') == 'dilated_net'
       and isinstance(g.config.get('dilation'), int)),
      key=lambda g: g.config['dilation'])
  # One line per setting (input size, epochs, ...): δ varies along it.
  series = {}
  for group in rows:
    series.setdefault(settings.setting(group.config, ['dilation']), []).append(group)
  if any(len({g.config['dilation'] for g in line}) > 1
         for line in series.values()):
    fig, axes = plt.subplots(figsize=(5.5, 4))
    differing = _differing_fields([line[0].config for line in series.values()])
    for color, line in zip(('C0', 'C2', 'C3', 'C4', 'C5'), series.values()):
      deltas, means, errors = [], [], []
      for group in line:
        accuracy = group.test_accuracy()
        described = stats.describe([accuracy[s] for s in sorted(accuracy)])
        deltas.append(group.config['dilation'])
        means.append(100 * described['mean'])
        # The 95 % interval of the mean over seeds (none for one seed).
        errors.append(0.0 if described['ci95'] is None else
                      100 * (described['ci95'][1] - described['mean']))
        axes.scatter([group.config['dilation']] * len(accuracy),
                     [100 * a for a in accuracy.values()], s=12, color=color,
                     alpha=0.5)
      seeds = max(len(g.test_accuracy()) for g in line)
      label = ('flaxdil, mean and 95 % interval over '
               f'{seeds} seeds' if seeds > 1 else 'flaxdil (measured)')
      if differing:
        label += ', ' + ', '.join(
            f'input {settings.input_label(line[0].config)}' if k == 'image_size'
            else f'{k}={line[0].config.get(k)}' for k in differing)
      axes.errorbar(deltas, means, yerr=errors if any(errors) else None,
                    fmt='o-', capsize=4, color=color, label=label)
    axes.plot(list(paper.TABLE2_ACCURACY), list(paper.TABLE2_ACCURACY.values()),
              's--', color='C1', label='paper, Table 2')
    axes.set(xlabel='δ (paper\'s dilation rate)',
             ylabel='CIFAR-10 test accuracy (%)',
             title='Accuracy against δ', xticks=list(paper.TABLE2_ACCURACY))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
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


