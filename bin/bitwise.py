"""The project's invariant, checked: fixed-seed tiny runs on the real data
give bitwise the same checkpoints at two commits.

  python bin/bitwise.py record --out=/tmp/new.npz
  python bin/bitwise.py record --repo=/path/to/old/checkout --out=/tmp/old.npz
  python bin/bitwise.py compare /tmp/old.npz /tmp/new.npz
  python bin/bitwise.py workdirs WORKDIR_A WORKDIR_B


`record` trains a fixed set of short runs with REPO's bin/main.py (its
command line is the interface that stays the same across commits), then
reads every array of every run's checkpoints with Orbax alone (no flaxdil
import, so a checkout of any commit can be recorded) and saves them in one
.npz. `compare` lists every array that differs, or says that all are equal;
it exits 1 on any difference. Uses the CIFAR-10 copy in ../shared (or
--data_dir). `workdirs` compares two existing runs (a rerun of a sweep's run,
say) at every checkpoint step both hold, in the same way.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: bin/main.py arguments. The runs cover both kernels, the EMA, a δ per
# module, test-time flips, AdamW and label smoothing, a validation that
# selects a checkpoint, all five networks, both input pipelines at one and
# at four steps per dispatch, and a resume in the middle of a run.
_TINY = ['--config.train_split=train[:2000]', '--config.test_split=test[:500]']
RUNS = {
    'dilated_fast': ['--config=configs/tiny.py', *_TINY,
                     '--config.num_train_steps=20', '--config.eval_every_steps=10',
                     '--config.checkpoint_every_steps=10'],
    'lax_ema_mixed_flip': ['--config=configs/tiny.py:dilation=0:1:2', *_TINY,
                           '--config.conv_impl=lax', '--config.ema_decay=0.9',
                           '--config.test_time_flip=True',
                           '--config.weight_decay=0.05',
                           '--config.label_smoothing=0.1',
                           '--config.num_train_steps=12',
                           '--config.eval_every_steps=6'],
    **{model: ['--config=configs/baselines.py', f'--config.model={model}',
               *_TINY, '--config.validation_size=200', '--config.batch_size=16',
               '--config.eval_batch_size=100', '--config.num_train_steps=2',
               '--config.eval_every_steps=2']
       for model in ('mobilenet_v1', 'squeezenet', 'googlenet', 'vgg16')},
    'dilated_stream': ['--config=configs/tiny.py', *_TINY,
                       '--config.input_pipeline=stream',
                       '--config.num_train_steps=20',
                       '--config.eval_every_steps=10',
                       '--config.checkpoint_every_steps=10'],
    **{f'dilated_{pipeline}_k4': [
        '--config=configs/tiny.py', *_TINY,
        f'--config.input_pipeline={pipeline}',
        '--config.steps_per_dispatch=4', '--config.num_train_steps=20',
        '--config.eval_every_steps=10', '--config.checkpoint_every_steps=10']
       for pipeline in ('device', 'stream')},
    'paper_net': ['--config=configs/cifar10.py', *_TINY,
                  '--config.validation_size=200', '--config.batch_size=16',
                  '--config.eval_batch_size=100', '--config.num_train_steps=2',
                  '--config.eval_every_steps=2'],
}


# Runs trained twice: to the end, then again from their checkpoint of this
# step after the later ones are deleted (a resume in the middle); what is
# recorded is the resumed run's.
RESUMED = {'dilated_resumed': (RUNS['dilated_fast'], 10)}


def _checkpoint_steps(workdir: str) -> list:
  directory = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(directory):
    sys.exit(f'{workdir} holds no checkpoints/ directory: pass a run\'s workdir.')
  return sorted(int(s) for s in os.listdir(directory) if s.isdigit())


def _checkpoint_arrays(workdir: str, steps=None) -> dict:
  import jax
  import orbax.checkpoint as ocp
  arrays = {}
  directory = os.path.join(os.path.abspath(workdir), 'checkpoints')  # Orbax wants absolute paths
  for step in _checkpoint_steps(workdir) if steps is None else steps:
    with ocp.PyTreeCheckpointer() as checkpointer:
      tree = checkpointer.restore(os.path.join(directory, str(step), 'default'))
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      arrays[f'{step}{jax.tree_util.keystr(path)}'] = np.asarray(leaf)
  return arrays


def record(repo: str, out: str, data_dir: str, only=None) -> None:
  arrays = {}
  # REPO's own flaxdil, whatever flaxdil this environment has installed.
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=repo)

  def train(name, args, workdir):
    result = subprocess.run(
        [sys.executable, os.path.join(repo, 'bin', 'main.py'), *args,
         f'--config.data_dir={data_dir}', f'--workdir={workdir}'],
        cwd=repo, env=env, capture_output=True, text=True)
    if result.returncode:
      sys.exit(f'{name} failed (exit {result.returncode}):\n'
               f'{result.stderr[-3000:]}')

  runs = {name: (args, None) for name, args in RUNS.items()}
  runs.update(RESUMED)
  with tempfile.TemporaryDirectory() as root:
    for name, (args, resume_at) in runs.items():
      if only and name not in only:
        continue
      workdir = os.path.join(root, name)
      train(name, args, workdir)
      if resume_at is not None:
        directory = os.path.join(workdir, 'checkpoints')
        for step in _checkpoint_steps(workdir):
          if step > resume_at:
            shutil.rmtree(os.path.join(directory, str(step)))
        train(name, args, workdir)
      run_arrays = _checkpoint_arrays(workdir)
      arrays.update({f'{name}/{k}': v for k, v in run_arrays.items()})
      print(f'{name}: {len(run_arrays)} arrays', flush=True)
  np.savez(out, **arrays)
  print(f'{len(arrays)} arrays written to {out}')


def compare(a: str, b: str) -> int:
  return _report(np.load(a), np.load(b))


def compare_workdirs(a: str, b: str) -> int:
  common = sorted(set(_checkpoint_steps(a)) & set(_checkpoint_steps(b)))
  if not common:
    sys.exit(f'{a} and {b} hold no checkpoint step in common.')
  print(f'steps both hold: {", ".join(map(str, common))}')
  return _report(_checkpoint_arrays(a, common), _checkpoint_arrays(b, common))


def _report(want, got) -> int:
  """Every name in either mapping, equal only with the same dtype and bits."""
  names = sorted(set(want) | set(got))
  differ = [n for n in names if n not in want or n not in got
            or want[n].dtype != got[n].dtype or want[n].shape != got[n].shape
            # Bytes, not ==: NaN is equal to its own bits, -0.0 is not 0.0.
            or np.ascontiguousarray(want[n]).tobytes()
            != np.ascontiguousarray(got[n]).tobytes()]
  for name in differ[:20]:
    print(f'differs: {name}')
  print(f'{len(names) - len(differ)} of {len(names)} arrays bitwise equal'
        + ('' if not differ else f'; {len(differ)} differ'))
  return 1 if differ else 0


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  commands = parser.add_subparsers(dest='command', required=True)
  rec = commands.add_parser('record')
  rec.add_argument('--repo', default=_HERE)
  rec.add_argument('--out', required=True)
  rec.add_argument('--data_dir', default=os.path.join(
      os.path.dirname(_HERE), 'shared', 'tensorflow_datasets'))
  rec.add_argument('--only', nargs='*')
  cmp = commands.add_parser('compare')
  cmp.add_argument('a')
  cmp.add_argument('b')
  dirs = commands.add_parser('workdirs')
  dirs.add_argument('a')
  dirs.add_argument('b')
  args = parser.parse_args()
  if args.command == 'record':
    record(os.path.abspath(args.repo), args.out,
           os.path.abspath(args.data_dir), args.only)
  elif args.command == 'compare':
    sys.exit(compare(args.a, args.b))
  else:
    sys.exit(compare_workdirs(args.a, args.b))


if __name__ == '__main__':
  main()
