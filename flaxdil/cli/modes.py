"""What the command line does in each mode, as functions tests and
notebooks can call: train, evaluate, inspect, export, predict.

Inspect, export and predict take the network from a workdir's checkpoint
(with the config that trained it) or from a released weight (`weights`:
a name of flaxdil.pretrained.list(), a .flaxdil file or a URL), whose own
config describes it; a config given beside a weight lends only the data's
location (data_dir, manual_dir), where export and predict --split read
data."""

from __future__ import annotations

import json
import sys

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
from flaxdil.workdir import record

__all__ = ['train', 'evaluate', 'inspect_model', 'export_model', 'predict']


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


def _load_weights(weights: str, config=None):
  """A released weight (flaxdil.pretrained.Pretrained), its config given
  the data location that `config` (the command's, where given) sets."""
  from flaxdil import pretrained
  loaded = pretrained.load(weights)
  if config is None:
    return loaded
  location = {f: config[f] for f in record.DATA_LOCATION
              if config.get(f) is not None}
  return loaded._replace(config=with_fields(loaded.config, **location))


def _from_weights(weights: str, config=None) -> evaluation.Restored:
  """A released weight as a restored checkpoint."""
  return evaluation.from_weights(_load_weights(weights, config))


def _one_network(workdir, weights, mode: str) -> None:
  if bool(workdir) == bool(weights):
    raise FlaxdilError(
        f'--mode={mode} takes the network from --workdir=DIR (a training '
        'workdir, with its --config) or from --weights=NAME (a released '
        'weight, flaxdil.pretrained.list(), or a .flaxdil file or URL): one '
        'of the two.')


def inspect_model(config, workdir=None, step=None, as_json=False,
                  weights=None) -> dict:
  params = None
  if weights:
    _one_network(workdir, weights, 'inspect')
    state, step, config, info, _ = _from_weights(weights, config)
    params = state.params
  elif workdir:
    state, step, config, info, _ = evaluation.restore_state(config, workdir,
                                                           step)
    params = state.params
  else:
    info = rules.check_run(config)
  metadata = {'model': config.model, 'dataset': config.dataset,
              'dilation': config.dilation,
              **model_summary.inference_spec(config, info)}
  if weights:
    metadata.update(released_weight=weights, checkpoint_step=int(step))
  elif workdir:
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


def export_model(config, workdir, step=None, weights=None) -> dict:
  """Exports WORKDIR's checkpoint, or a released weight into WORKDIR/export/
  (verified on the test split of the weight's dataset, read where the
  config's data_dir says)."""
  if jax.process_count() > 1:
    raise FlaxdilError('--mode=export runs in one process; start it without '
                       '--coordinator_address/--num_processes/--process_id.')
  from flaxdil.export import artifacts  # ONNX and its runtime: only here.
  workdir = _require_workdir(workdir, 'export')
  restored = _from_weights(weights, config) if weights else None
  report = artifacts.export(config, workdir, step, restored=restored)
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


def predict(config, workdir=None, weights=None, inputs=(), split=None,
            output=None, backend='jax', top_k=5, step=None,
            batch_size=64) -> dict:
  """Classifies image files (inputs: files, folders, globs) or a split with
  a workdir's checkpoint or a released weight (flaxdil.predict)."""
  from flaxdil import predict as predicting
  from flaxdil.predict import backends
  _one_network(workdir, weights, 'predict')
  if weights:
    source = backends.from_weights(_load_weights(weights, config))
  else:
    source = backends.from_workdir(config, workdir, step)
  summary = predicting.run(source, list(inputs), split, output, backend,
                           top_k, batch_size)
  accuracy = (f', top-1 accuracy {summary["accuracy"]:.4f} against the '
              'labels' if 'accuracy' in summary else '')
  print(f'Classified {summary["inputs"] - summary["failed"]} of '
        f'{summary["inputs"]} inputs with {source.description} '
        f'({backend}) in {summary["seconds"]:.1f} s, '
        f'{summary["inputs_per_sec"]:.0f}/s{accuracy}'
        + (f'; written to {output}' if output else '') + '.',
        file=sys.stderr, flush=True)
  return summary
