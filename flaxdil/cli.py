"""What bin/main.py does in each mode (kept here so tests can call it)."""

from __future__ import annotations

import json

import ml_collections

from flaxdil import model_summary, models
from flaxdil import train as trainer
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
  result = trainer.evaluate_checkpoint(
      config, _require_workdir(workdir, 'eval'), split=split, step=step)
  print(f'{result["split"]}: accuracy {result["accuracy"]:.4f} loss '
        f'{result["loss"]:.4f} on {result["num_examples"]} examples '
        f'(checkpoint of step {result["step"]}); written to '
        f'{workdir}/eval_{result["split"]}.json')
  print(json.dumps(result))
  return result


def _with_stem(config: ml_collections.ConfigDict, stem: str):
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.stem = stem
  return config


def inspect_model(config, workdir=None, step=None, as_json=False) -> dict:
  experiment = trainer.Experiment(config)
  metadata = {'model': config.model, 'dataset': config.dataset,
           'dilation': config.dilation}
  params = None
  if workdir:
    state, step, _ = trainer.restore_state(config, workdir, step, experiment)
    params = state.params
    metadata.update(checkpoint=workdir, checkpoint_step=int(step))
  summary = model_summary.summarize(experiment.model, experiment.info.image_shape,
                                    params=params, metadata=metadata)
  summary['paper_params'] = baselines.PAPER_PARAMS.get(config.model)
  if config.model in baselines.BASELINES:
    # The published ImageNet network, to check against the paper's Table 1.
    imagenet = model_summary.summarize(
        models.create_model(_with_stem(config, 'imagenet'), 1000), (224, 224, 3))
    summary['imagenet_reference'] = {
        'input_shape': [224, 224, 3], 'num_classes': 1000,
        'total_params': imagenet['total_params'],
        'total_macs': imagenet['total_macs']}
  print(model_summary.to_json(summary) if as_json
        else model_summary.format_summary(summary))
  return summary
