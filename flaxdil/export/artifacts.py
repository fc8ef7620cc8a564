"""A trained checkpoint → deployable artifacts, verified and measured.

WORKDIR/export/ holds
  model.onnx        float32 ONNX, emitted from the inspection's description
                    of the computation (flaxdil.inspection.summary) with the
                    `onnx` package: no converter, no TensorFlow
  model_int8.onnx   static int8 (ONNX Runtime, QDQ, per-channel weights),
                    calibrated on training images, never test images
  model.jaxexport   serialized `jax.export`, symbolic batch size
  report.json       per artifact: size, agreement with the checkpoint on
                    the whole test split, accuracy, latency, throughput

Every artifact maps uint8 images [batch, H, W, C] to the logits that
--mode=eval computes: the weights evaluation uses (the EMA where kept),
normalisation inside, and the test-time flip inside where the config uses
it. The exporters need `pip install -r requirements-export.txt`; training
needs none of it.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flaxdil import timing
from flaxdil.config import rules
from flaxdil.data import source
from flaxdil.errors import FlaxdilError
from flaxdil.export.onnx_graph import build_onnx, ort_session, quantize_int8
from flaxdil.inspection import summary as model_summary
from flaxdil.training import evaluation, steps
from flaxdil.workdir.files import write_json_atomic

_CALIBRATION_IMAGES = 300


def _require_exporters():
  try:
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
  except ImportError as e:
    raise FlaxdilError(
        f'--mode=export needs the export packages ({e.name} is missing). '
        'Fix: pip install -r requirements-export.txt') from None


def logits_fn(state, info, config):
  """uint8 images → the logits --mode=eval computes (steps.predict)."""
  return functools.partial(steps.predict, state, info=info,
                           **steps.test_time_augmentation(config))


# --- Measurement ------------------------------------------------------------


def _median_ms(fn, calls: int) -> float:
  fn()  # The first call may compile or allocate.
  return 1e3 * timing.median_seconds(fn, calls)


def batched_logits(predict, images, batch: int = 500) -> np.ndarray:
  """predict over images, `batch` at a time, concatenated on the host."""
  return np.concatenate([np.asarray(predict(images[i:i + batch]))
                         for i in range(0, len(images), batch)])


def _verify(logits, labels, reference) -> dict:
  return {
      'accuracy': float(np.mean(np.argmax(logits, -1) == labels)),
      'agreement_with_checkpoint': float(
          np.mean(np.argmax(logits, -1) == np.argmax(reference, -1))),
      'max_abs_logit_difference': float(np.max(np.abs(logits - reference))),
  }


def export(config: ml_collections.ConfigDict, workdir: str,
           step: int | None = None, latency_calls: int = 200,
           restored: evaluation.Restored | None = None,
           test: source.Split | None = None) -> dict:
  """Writes WORKDIR/export/ (replacing an older one only once the new one
  is complete) and returns its report. restored: the network to export
  (a released weight's), instead of workdir's checkpoint. test: the config's
  test split, where the caller has read it already."""
  _require_exporters()
  from jax import export as jax_export
  import onnx
  state, step, config, info, _ = restored or evaluation.restore_state(
      config, workdir, step)
  if info.varying_size:
    raise FlaxdilError(
        f'--mode=export verifies every artifact on the whole test split held '
        f'in memory, which {config.dataset!r} (images of varying size) is '
        'too large for: not supported yet. Fix: export a model trained on a '
        'dataset of one image size.')
  # Calibration reads the training split, verification the test split.
  rules.check_splits(config, rules.training_splits(config))
  summary = model_summary.summarize(steps.create_model(config, info),
                                    info.image_shape)
  summary.update(model_summary.inference_spec(config, info))
  variables = jax.tree_util.tree_map(
      np.asarray, {'params': state.params, 'batch_stats': state.batch_stats})
  if test is None:
    test = source.load_split(config, config.test_split)
  calibration = source.load_split(config, config.train_split).images[
      :_CALIBRATION_IMAGES]
  jitted = jax.jit(logits_fn(state, info, config))
  reference = batched_logits(jitted, test.images)  # What --mode=eval computes.

  final = os.path.join(workdir, 'export')
  try:
    if restored:  # A released weight's export goes to a new directory.
      os.makedirs(workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix='.export-tmp-', dir=workdir)
  except OSError as e:
    raise FlaxdilError(f'cannot write to {workdir!r} ({e.strerror}). Fix: '
                       'export from a workdir you can write to.') from None
  try:
    paths = {name: os.path.join(work, name) for name in
             ('model.onnx', 'model_int8.onnx', 'model.jaxexport')}
    onnx.save(build_onnx(summary, variables), paths['model.onnx'])
    quantize_int8(paths['model.onnx'], paths['model_int8.onnx'], calibration,
                  work)
    symbolic = jax.ShapeDtypeStruct(
        jax_export.symbolic_shape(f'b,{",".join(map(str, info.image_shape))}'),
        jnp.uint8)
    with open(paths['model.jaxexport'], 'wb') as f:
      f.write(jax_export.export(jitted)(symbolic).serialize())
    with open(paths['model.jaxexport'], 'rb') as f:
      exported = jax_export.deserialize(bytearray(f.read()))

    one, batch64 = test.images[:1], test.images[:64]
    runners = {'jax_jit': lambda x: np.asarray(jitted(x)),
               'jax_export': lambda x: np.asarray(exported.call(x))}
    sessions = {}
    for name in ('model.onnx', 'model_int8.onnx'):
      for threads in (1, 2):
        sessions[name, threads] = ort_session(paths[name], threads)
    runners['onnx_float'] = lambda x: sessions['model.onnx', 2].run(
        None, {'images': x})[0]
    runners['onnx_int8'] = lambda x: sessions['model_int8.onnx', 2].run(
        None, {'images': x})[0]
    files = {'jax_jit': None, 'jax_export': 'model.jaxexport',
             'onnx_float': 'model.onnx', 'onnx_int8': 'model_int8.onnx'}
    artifacts = {}
    for name, run in runners.items():
      logits = reference if name == 'jax_jit' else batched_logits(run, test.images)
      entry = _verify(logits, test.labels, reference)
      if files[name]:
        entry['file'] = files[name]
        entry['size_bytes'] = os.path.getsize(paths[files[name]])
      if name.startswith('onnx'):
        for threads in (1, 2):
          entry[f'latency_ms_batch1_{threads}_threads'] = _median_ms(
              lambda: sessions[files[name], threads].run(None, {'images': one}),
              latency_calls)
      else:  # XLA:CPU's threads are fixed when JAX starts: all cores here.
        entry['latency_ms_batch1_all_threads'] = _median_ms(
            lambda: run(one), latency_calls)
      entry['images_per_sec_batch64'] = 64 / (1e-3 * _median_ms(
          lambda: run(batch64), max(latency_calls // 10, 5)))
      artifacts[name] = entry
    report = {
        'checkpoint': {'workdir': os.path.abspath(workdir), 'step': int(step),
                       'weights': summary['weights']},
        'test_split': config.test_split, 'num_examples': len(test),
        'test_time_flip': summary['test_time_flip'],
        'test_time_shift': summary['test_time_shift'],
        'calibration': f'first {len(calibration)} images of '
                       f'{config.train_split}',
        'checkpoint_accuracy': float(np.mean(
            np.argmax(reference, -1) == test.labels)),
        'artifacts': artifacts,
        'cpu': timing.cpu_description(), 'latency_calls': latency_calls,
    }
    write_json_atomic(os.path.join(work, 'report.json'), report)
    os.chmod(work, 0o755)  # mkdtemp's 0700 is for while it is incomplete.
    if os.path.exists(final):
      shutil.rmtree(final)
    os.replace(work, final)
  except BaseException:
    shutil.rmtree(work, ignore_errors=True)
    raise
  return report
