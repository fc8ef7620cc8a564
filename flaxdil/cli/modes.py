"""What the command line does in each mode, as functions tests and
notebooks can call: train, evaluate, inspect, export."""

from __future__ import annotations

import json

import jax
import ml_collections

from flaxdil import models
from flaxdil.config import rules
from flaxdil.config.args import with_fields
from flaxdil.errors import FlaxdilError
from flaxdil.experiments import paper
from flaxdil.inspection import summary as model_summary
from flaxdil.inspection import text as summary_text
from flaxdil.models import baselines
from flaxdil.training import evaluation, loop, steps

__all__ = ['train', 'evaluate', 'inspect_model', 'export_model']


def _require_workdir(workdir: str | None, mode: str) -> str:
  if not workdir:
    raise FlaxdilError(f'--mode={mode} needs --workdir=DIR '
                       f'({"where to train" if mode == "train" else "a training workdir"}).')
  return workdir


def train(config: ml_collections.ConfigDict, workdir: str | None) -> dict:
  return loop.train_and_evaluate(config, _require_workdir(workdir, 'train'))


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
    state, step, config, info, _ = evaluation.restore_state(config, workdir,
                                                           step)
    params = state.params
  else:
    info = rules.check_run(config)
  metadata = {'model': config.model, 'dataset': config.dataset,
              'dilation': config.dilation,
              **model_summary.inference_spec(config, info)}
  if workdir:
    metadata.update(checkpoint=workdir, checkpoint_step=int(step))
  summary = model_summary.summarize(steps.create_model(config, info),
                                    info.image_shape,
                                    params=params, metadata=metadata)
  summary['paper_params'] = paper.TABLE1_PARAMS.get(config.model)
  if config.model in baselines.BASELINES:
    # The published ImageNet network, to check against the paper's Table 1.
    imagenet = model_summary.summarize(
        models.create_model(with_fields(config, stem='imagenet',
                                        image_size=None), 1000),
        (224, 224, 3))
    summary['imagenet_reference'] = {
        'input_shape': [224, 224, 3], 'num_classes': 1000,
        'total_params': imagenet['total_params'],
        'total_macs': imagenet['total_macs'],
        'published_macs': paper.PUBLISHED_IMAGENET_MACS.get(config.model)}
  print(summary_text.to_json(summary) if as_json
        else summary_text.format_summary(summary))
  return summary


def export_model(config, workdir, step=None) -> dict:
  if jax.process_count() > 1:
    raise FlaxdilError('--mode=export runs in one process; start it without '
                       '--coordinator_address/--num_processes/--process_id.')
  from flaxdil.export import artifacts  # ONNX and its runtime: only here.
  report = artifacts.export(config, _require_workdir(workdir, 'export'), step)
  print(f'Exported checkpoint {report["checkpoint"]["step"]} to '
        f'{workdir}/export/, verified on {report["num_examples"]} '
        f'{report["test_split"]} examples (checkpoint accuracy '
        f'{report["checkpoint_accuracy"]:.4f}):')
  for name, a in report['artifacts'].items():
    size = f'{a["size_bytes"] / 1e6:.2f} MB' if 'size_bytes' in a else '—'
    latency = a.get('latency_ms_batch1_1_threads',
                    a.get('latency_ms_batch1_all_threads'))
    print(f'  {name:11s} {size:>9s}  accuracy {a["accuracy"]:.4f}  agreement '
          f'{a["agreement_with_checkpoint"]:.4%}  max |Δlogit| '
          f'{a["max_abs_logit_difference"]:.2e}  batch-1 {latency:.3f} ms  '
          f'{a["images_per_sec_batch64"]:.0f} img/s at batch 64')
  return report
