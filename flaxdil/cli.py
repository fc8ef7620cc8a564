"""What bin/main.py does in each mode (kept here so tests can call it)."""

from __future__ import annotations

import json

import ml_collections

from flaxdil import evaluation, model_summary, models, paper, summary_text
from flaxdil import train as trainer
from flaxdil.config_args import with_fields
from flaxdil.devices import PmappedModel
from flaxdil.errors import FlaxdilError
from flaxdil.models import baselines

__all__ = ['train', 'evaluate', 'inspect_model']


def _require_workdir(workdir: str | None, mode: str) -> str:
  if not workdir:
    raise FlaxdilError(f'--mode={mode} needs --workdir=DIR '
                       f'({"where to train" if mode == "train" else "a training workdir"}).')
  return workdir


def train(config: ml_collections.ConfigDict, workdir: str | None) -> dict:
  return trainer.train_and_evaluate(config, _require_workdir(workdir, 'train'))


def evaluate(config, workdir, split=None, step=None) -> dict:
  result = evaluation.evaluate_checkpoint(
      config, _require_workdir(workdir, 'eval'), split=split, step=step)
  print(f'{result["split"]}: accuracy {result["accuracy"]:.4f} loss '
        f'{result["loss"]:.4f} on {result["num_examples"]} examples '
        f'(checkpoint of step {result["step"]}); written to '
        f'{workdir}/eval_{result["split"]}.json')
  print(json.dumps(result))
  return result


def inspect_model(config, workdir=None, step=None, as_json=False) -> dict:
  params = None
  if workdir:
    state, step, pmapped = evaluation.restore_state(config, workdir, step)
    params = state.params
  else:
    pmapped = PmappedModel(config)
  info = pmapped.info
  # With the layers (each naming its inputs), enough to rebuild what
  # --mode=eval computes without reading flaxdil.
  metadata = {
      'model': config.model, 'dataset': config.dataset,
      'dilation': config.dilation,
      'input': {'dtype': 'uint8', 'layout': 'NHWC',
                'shape': list(info.image_shape),
                'normalization': {'mean': list(info.mean),
                                  'std': list(info.std),
                                  'formula': '(pixel - mean) / std'}},
      # Which variables the checkpoint's evaluation uses: the EMA of the
      # weights and BatchNorm statistics, or the raw ones.
      'weights': 'ema' if config.ema_decay else 'params',
      # Logits averaged over the image and its left-right mirror.
      'test_time_flip': bool(config.test_time_flip),
      'dtype': config.dtype,
  }
  if workdir:
    metadata.update(checkpoint=workdir, checkpoint_step=int(step))
  summary = model_summary.summarize(pmapped.model, pmapped.info.image_shape,
                                    params=params, metadata=metadata)
  summary['paper_params'] = paper.TABLE1_PARAMS.get(config.model)
  if config.model in baselines.BASELINES:
    # The published ImageNet network, to check against the paper's Table 1.
    imagenet = model_summary.summarize(
        models.create_model(with_fields(config, stem='imagenet'), 1000),
        (224, 224, 3))
    summary['imagenet_reference'] = {
        'input_shape': [224, 224, 3], 'num_classes': 1000,
        'total_params': imagenet['total_params'],
        'total_macs': imagenet['total_macs'],
        'published_macs': paper.PUBLISHED_IMAGENET_MACS.get(config.model)}
  print(summary_text.to_json(summary) if as_json
        else summary_text.format_summary(summary))
  return summary
