"""The network predict runs, and on what: a workdir's checkpoint or a
released weight (Source), computed by JAX, by ONNX Runtime on the float
ONNX graph, or by ONNX Runtime on the int8 export (a backend).

Every backend maps uint8 images [batch, H, W, C] to the logits --mode=eval
computes: the same weights, normalisation and test-time flip
(flaxdil.export.artifacts verifies the ONNX artifacts against it).
"""

from __future__ import annotations

import functools
import os
from typing import Callable, NamedTuple

import jax
import ml_collections
import numpy as np

from flaxdil.data.source import DatasetInfo
from flaxdil.errors import FlaxdilError

BACKENDS = ('jax', 'onnx', 'int8')


class Source(NamedTuple):
  """A trained network, wherever it came from."""
  description: str     # For the log: 'released weight NAME', 'WORKDIR step N'.
  state: object        # steps.TrainState without optimizer (host).
  config: ml_collections.ConfigDict
  info: DatasetInfo
  class_names: list[str]
  int8_path: str | None  # The int8 ONNX export, where one exists.


def from_weights(weights) -> Source:
  """A released weight (flaxdil.pretrained.Pretrained)."""
  from flaxdil.training import evaluation
  return Source(f'released weight {weights.name}',
                evaluation.from_weights(weights).state, weights.config,
                weights.info, weights.class_names, weights.onnx_int8())


def from_workdir(config: ml_collections.ConfigDict, workdir: str,
                 step: int | None = None) -> Source:
  from flaxdil.data import source
  from flaxdil.training import evaluation
  from flaxdil.workdir import files
  restored = evaluation.restore_state(config, workdir, step)
  # The int8 export counts only where it is of the checkpoint restored.
  report = files.read_json(os.path.join(workdir, 'export', 'report.json'),
                           'the export\'s report', fix='export again')
  exported = report and report['checkpoint']['step'] == restored.step
  return Source(f'{workdir}, checkpoint of step {restored.step}',
                restored.state, restored.config, restored.info,
                source.class_names(restored.config),
                os.path.join(workdir, 'export', 'model_int8.onnx')
                if exported else None)


def _onnx_session(model_bytes_or_path, threads: int | None):
  try:
    import onnxruntime
  except ImportError:
    raise FlaxdilError('--backend=onnx and int8 need ONNX Runtime. Fix: pip '
                       'install -r requirements-export.txt') from None
  options = onnxruntime.SessionOptions()
  if threads:
    options.intra_op_num_threads = threads
  return onnxruntime.InferenceSession(model_bytes_or_path, options,
                                      providers=['CPUExecutionProvider'])


def _float_onnx(source: Source) -> bytes:
  """The float ONNX graph of the network, built in memory as --mode=export
  builds model.onnx."""
  try:
    from flaxdil.export.onnx_graph import build_onnx
    from flaxdil.inspection import summary as model_summary
    from flaxdil.training import steps
  except ImportError:
    raise FlaxdilError('--backend=onnx needs the onnx package. Fix: pip '
                       'install -r requirements-export.txt') from None
  summary = model_summary.summarize(steps.create_model(source.config,
                                                       source.info),
                                    source.info.image_shape)
  summary.update(model_summary.inference_spec(source.config, source.info))
  variables = jax.tree_util.tree_map(np.asarray,
                                     steps.eval_variables(source.state))
  return build_onnx(summary, variables).SerializeToString()


def logits_function(source: Source, backend: str,
                    threads: int | None = None
                    ) -> Callable[[np.ndarray], np.ndarray]:
  """uint8 images → float32 logits, by `backend` (BACKENDS)."""
  if backend == 'jax':
    from flaxdil.training import steps
    predict = jax.jit(functools.partial(
        steps.predict, source.state, info=source.info,
        **steps.test_time_augmentation(source.config)))
    return lambda images: np.asarray(predict(images))
  if backend == 'onnx':
    session = _onnx_session(_float_onnx(source), threads)
  elif backend == 'int8':
    if source.int8_path is None:
      raise FlaxdilError(
          f'{source.description} has no int8 export of that checkpoint. '
          'Fix: run --mode=export on the workdir (with the same '
          '--checkpoint_step) first, or use --backend=jax or onnx.')
    session = _onnx_session(source.int8_path, threads)
  else:
    raise FlaxdilError(f'--backend={backend!r} is not one of '
                       f'{", ".join(BACKENDS)}.')
  return lambda images: session.run(None, {'images': images})[0]
