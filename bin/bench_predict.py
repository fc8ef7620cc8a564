"""What using a trained network costs on this machine: `flaxdil predict`
end to end over the test split written out as PNG files (files/s per
backend), batch-1 latency per backend, and the installed package's size
with and without the shipped weights.

  python bin/bench_predict.py --weights=dilated_net_d0_fast \
      --data_dir=../shared/tensorflow_datasets --pngs=/tmp/cifar10_test_png \
      --out=results/predict_bench/bench.json

Take it with nothing else running: every figure is a speed.
"""

import json
import os

from absl import app, flags, logging

_WEIGHTS = flags.DEFINE_string('weights', 'dilated_net_d0_fast',
                               'A released weight (or file).')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'The TFDS data dir.')
_PNGS = flags.DEFINE_string('pngs', None, 'Folder for the PNG files (kept '
                            'for the next run).')
_BACKENDS = flags.DEFINE_list('backends', ['jax', 'onnx', 'int8'],
                              'Backends to time.')
_BATCH = flags.DEFINE_integer('batch', 256, 'predict --batch.')
_CALLS = flags.DEFINE_integer('latency_calls', 200, 'Batch-1 calls timed.')
_OUT = flags.DEFINE_string('out', None, 'Write the figures here (JSON).')


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  from flaxdil import pretrained, timing
  from flaxdil.config.args import with_fields
  from flaxdil.experiments import predict_benchmark as bench
  from flaxdil.predict import backends
  weights = pretrained.load(_WEIGHTS.value)
  config = with_fields(weights.config, data_dir=_DATA_DIR.value)
  count = bench.write_pngs(config, config.test_split, _PNGS.value)
  record = {'weights': weights.name, 'pngs': count, 'batch': _BATCH.value,
            'cpu': timing.cpu_description(), 'commit': timing.git_commit(),
            'end_to_end': [], 'batch1_latency_ms': {}}
  for backend in _BACKENDS.value:
    result = bench.end_to_end(_WEIGHTS.value, _PNGS.value, backend,
                              _BATCH.value)
    record['end_to_end'].append(result)
    print(f'{backend:5s} end to end: {result["files"]} files in '
          f'{result["wall_seconds"]:.1f} s = {result["files_per_sec"]:.0f} '
          f'files/s (the command\'s own: {result["command_files_per_sec"]:.0f}'
          ' files/s)', flush=True)
  source = backends.from_weights(weights)
  image = bench.one_image(_PNGS.value)
  for backend in _BACKENDS.value:
    for threads in ((None,) if backend == 'jax' else (1, 2)):
      ms = bench.batch1_latency_ms(source, backend, image, _CALLS.value,
                                   threads)
      key = backend if threads is None else f'{backend}_{threads}_threads'
      record['batch1_latency_ms'][key] = ms
      print(f'{key:16s} batch-1 latency {ms:.3f} ms (median of '
            f'{_CALLS.value})', flush=True)
  checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  record['package'] = bench.package_sizes(checkout)
  p = record['package']
  print(f'wheel {p["wheel_bytes"] / 1e6:.2f} MB; installed '
        f'{p["installed_bytes"] / 1e6:.2f} MB, of which the weights '
        f'{p["weights_installed_bytes"] / 1e6:.2f} MB (without them '
        f'{p["installed_without_weights_bytes"] / 1e6:.2f} MB)', flush=True)
  if _OUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    with open(_OUT.value, 'w') as f:
      json.dump(record, f, indent=1)


if __name__ == '__main__':
  flags.mark_flags_as_required(['data_dir', 'pngs'])
  app.run(main)
