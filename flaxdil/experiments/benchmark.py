"""Speed of a config's model on this machine: the train step, the training
loop around it, the eval step and batch-1 inference (bin/bench.py)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flaxdil import models, timing
from flaxdil.config import rules
from flaxdil.config.args import with_fields
from flaxdil.data import augment, batches
from flaxdil.data.source import DatasetInfo, Split
from flaxdil.errors import FlaxdilError
from flaxdil.inspection import summary as model_summary
from flaxdil.training import evaluation, inputs, loop, setup
from flaxdil.training.devices import Devices, unreplicate
# By name: run()'s `steps` argument (steps per timed run) would hide the module.
from flaxdil.training.steps import (create_model, create_train_state,
                                    eval_variables)


def train_flops(macs: int) -> int:
  """A training step's FLOPs for `macs` forward multiply-adds: about 3 ×
  the forward pass (forward, input and weight gradients), 2 FLOPs each."""
  return 3 * 2 * macs


def matmul_flops_per_sec(size: int = 2048, runs: int = 5) -> float:
  """The machine's float32 FLOP/s on a large square matmul: its usable peak."""
  a = jax.random.normal(jax.random.key(0), (size, size))
  matmul = jax.jit(lambda a: a @ a)
  jax.block_until_ready(matmul(a))
  return 2 * size ** 3 / timing.median_seconds(
      lambda: jax.block_until_ready(matmul(a)), runs)


class TrainTiming:
  """Compiles the config's pmapped train step (one step a dispatch, the
  device pipeline's), then times it on random data of the dataset's shape
  (needs the dataset's metadata only). The step gathers its rows from the
  split it holds, whose size does not change a step's cost: the batch
  order, which grows with the split, is the host's, once per epoch."""

  def __init__(self, config: ml_collections.ConfigDict, info: DatasetInfo,
               devices: Devices):
    self.config = config
    rng = np.random.default_rng(0)
    num_examples = config.batch_size * 4
    self.images = rng.integers(0, 256, (num_examples,) + info.image_shape,
                               np.uint8)
    self.labels = rng.integers(0, info.num_classes, (num_examples,), np.int32)
    schedule = lambda step: config.learning_rate
    model = create_model(config, info)
    self.state = devices.replicate(create_train_state(
        config, model, jax.random.key(0), info.image_shape, schedule))
    self._data = devices.replicate({'image': self.images,
                                    'label': self.labels})
    order = batches.BatchOrder(jax.random.key(0), num_examples,
                               config.batch_size)
    positions = devices.local_positions(config.batch_size)
    self._inputs = devices.place_steps([{'index': order.indices(0)[positions]}])
    self._key = devices.replicate(jax.random.key(0))
    self._train_steps = setup.pmapped_train_steps(config, info, devices)
    start = time.perf_counter()
    self.run_steps(1)
    self.compile_seconds = time.perf_counter() - start

  def compiled_text(self) -> str:
    """The compiled train step's program, as text (its ops' names and
    op_name metadata: what op_profile attributes a trace's time by)."""
    return self._train_steps.lower(self.state, self._inputs, self._key,
                                   self._data).compile().as_text()

  def run_steps(self, steps: int) -> None:
    for _ in range(steps):
      self.state, metrics = self._train_steps(self.state, self._inputs,
                                              self._key, self._data)
      jax.block_until_ready(metrics)

  def images_per_sec(self, runs: int, steps: int) -> float:
    """Median over `runs` timed runs of `steps` steps, after one untimed run
    (the first run pays page faults)."""
    self.run_steps(steps)
    seconds = timing.median_seconds(lambda: self.run_steps(steps), runs)
    return steps * self.config.batch_size / seconds


def _training_examples(config: ml_collections.ConfigDict) -> int | None:
  """The training examples of a real run of config (its split less the
  hold-out), or None where the data is not prepared here."""
  try:
    sizes = rules.check_splits(config, {'config.train_split':
                                        config.train_split})
  except FlaxdilError:
    return None
  return sizes['config.train_split'] - config.validation_size


def loop_images_per_sec(config: ml_collections.ConfigDict, steps: int,
                        log_every: int) -> float:
  """The training loop itself (flaxdil.training.loop.train, with the
  config's steps_per_dispatch) on random data of the real training split's
  size (so a per-step cost that grows with the split shows, as it would in
  a real training): `steps` steps logged every `log_every`, validation and
  a checkpoint at the end only, no time-based saves. The median of the
  logged rates after the first (which holds the compile); validation and
  saving are not counted, as in a training's log."""
  config = with_fields(config, num_train_steps=steps,
                       log_every_steps=log_every, eval_every_steps=steps,
                       checkpoint_every_steps=steps,
                       checkpoint_every_minutes=0.0)
  devices = Devices.of()
  info, rng = rules.check_run(config, devices.all), np.random.default_rng(1)
  num_train = _training_examples(config)
  if num_train is None:
    num_train = 10 * config.batch_size
    print(f'{config.dataset} is not prepared here: the loop trains on '
          f'{num_train} random images, not the real split\'s number.')

  def split(n):
    return Split(rng.integers(0, 256, (n,) + info.image_shape, np.uint8),
                 rng.integers(0, info.num_classes, (n,), np.int32))

  with tempfile.TemporaryDirectory() as workdir:
    pipeline = inputs.DevicePipeline(config, info, devices, 'random data')
    pipeline.load_training(splits=(split(num_train),
                                   split(config.eval_batch_size)))
    run = setup.start(config, info, devices, pipeline, workdir, {})
    loop.train(run)
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
      rates = [r['images_per_sec'] for r in map(json.loads, f)
               if r['split'] == 'train']
  return statistics.median(rates[1:])


def run(config: ml_collections.ConfigDict, runs: int = 5, steps: int = 5,
        latency_calls: int = 50, loop_steps: int = 0,
        loop_log_every: int = 100, loop_repeats: int = 3) -> dict:
  devices = Devices.of()
  info = rules.check_run(config, devices.all)
  placed, model = devices.local, create_model(config, info)
  summary = model_summary.summarize(model, info.image_shape)
  macs = summary['total_macs']
  print(f'{timing.cpu_description()}')
  print(f'{config.model} δ={config.dilation} conv_impl={config.conv_impl} '
        f'({models.config_conv_impl(config)}), '
        f'{summary["total_params"]:,} params, {macs / 1e6:.1f} M MACs/image, '
        f'batch {config.batch_size} on {len(placed)} x {placed[0].device_kind}',
        flush=True)

  train_timing = TrainTiming(config, info, devices)
  compile_train = train_timing.compile_seconds
  train_ips = train_timing.images_per_sec(runs, steps)
  state, images, labels = (train_timing.state, train_timing.images,
                           train_timing.labels)

  p_eval = evaluation.pmapped_eval_step(config, info, devices)
  eval_batch = devices.place_global(next(batches.padded_eval_batches(Split(
      images[:1].repeat(config.eval_batch_size, 0),
      labels[:1].repeat(config.eval_batch_size, 0)), config.eval_batch_size)))
  start = time.perf_counter()
  jax.block_until_ready(p_eval(state, eval_batch))
  compile_eval = time.perf_counter() - start

  def eval_steps():
    for _ in range(steps):
      jax.block_until_ready(p_eval(state, eval_batch))

  eval_ips = steps * config.eval_batch_size / timing.median_seconds(eval_steps, runs)

  variables = eval_variables(unreplicate(state))
  mean, std = info.mean, info.std
  infer = jax.jit(lambda variables, image: jnp.argmax(model.apply(
      variables, augment.normalize(image, mean, std), train=False), -1))
  one = jnp.asarray(images[:1])
  jax.block_until_ready(infer(variables, one))

  def latency_calls_fn():
    for _ in range(latency_calls):
      jax.block_until_ready(infer(variables, one))

  latency_ms = 1e3 * timing.median_seconds(latency_calls_fn, runs) / latency_calls

  # The loop against the step, in turns, loop_repeats times: a machine whose
  # speed drifts by 10 % between minutes still gives a ratio of neighbours.
  loop_runs, loop_ratios = [], []
  for _ in range(loop_repeats if loop_steps else 0):
    loop_runs.append(loop_images_per_sec(config, loop_steps, loop_log_every))
    step_now = train_timing.images_per_sec(runs, steps)
    loop_ratios.append(loop_runs[-1] / step_now)
  loop_ips = statistics.median(loop_runs) if loop_runs else None
  loop_share = statistics.median(loop_ratios) if loop_ratios else None

  peak = matmul_flops_per_sec()
  train_flops_per_image = train_flops(macs)
  share = train_flops_per_image * train_ips / peak
  result = {
      'train_images_per_sec': round(train_ips, 1),
      'loop_images_per_sec': loop_ips and round(loop_ips, 1),
      'loop_share_of_step': loop_share and round(loop_share, 3),
      'loop_runs_images_per_sec': [round(r, 1) for r in loop_runs],
      'loop_share_of_step_by_run': [round(r, 3) for r in loop_ratios],
      'steps_per_dispatch': config.steps_per_dispatch,
      'eval_images_per_sec': round(eval_ips, 1),
      'latency_ms_batch1': round(latency_ms, 3),
      'peak_rss_mb': round(timing.peak_rss_mb(), 1),
      'compile_train_sec': round(compile_train, 2),
      'compile_eval_sec': round(compile_eval, 2),
      'train_share_of_matmul_peak': round(share, 3),
      'matmul_gflops_per_sec': round(peak / 1e9, 1),
      'train_gflops_per_image': round(train_flops_per_image / 1e9, 3),
      'batch_size': config.batch_size, 'eval_batch_size': config.eval_batch_size,
      'model': config.model, 'dilation': config.dilation,
      'conv_impl': config.conv_impl,
      'widths': list(config.widths), 'strides': list(config.strides),
      'dtype': config.dtype, 'runs': runs, 'steps_per_run': steps,
      'jax_version': jax.__version__,
      'device': f'{len(placed)} x {placed[0].device_kind} ({placed[0].platform})',
      'machine': platform.machine(), 'cpu': timing.cpu_description(),
  }
  print(f'compile: train {compile_train:.1f} s, eval {compile_eval:.1f} s')
  print(f'train {train_ips:.1f} img/s ({100 * share:.1f}% of the '
        f'{peak / 1e9:.0f} GFLOP/s matmul peak), eval {eval_ips:.1f} img/s, '
        f'batch-1 latency {latency_ms:.3f} ms, peak RSS '
        f'{timing.peak_rss_mb():.0f} MB')
  if loop_ips:
    print(f'training loop {loop_ips:.1f} img/s, {100 * loop_share:.1f}% of '
          f'the step\'s timed right after it (median of {len(loop_runs)}; '
          f'{config.steps_per_dispatch} step(s) per dispatch, {loop_steps} '
          f'steps logged every {loop_log_every})')
  print(json.dumps(result), flush=True)
  return result
