"""A trained workdir → a released weight (flaxdil/pretrained/weights/).

  python bin/release.py --workdir=workdirs/fast/seed-0 --name=dilated_net_d0_fast \
      --speedrun=workdirs/fast/speedrun.json --data_dir=../shared/tensorflow_datasets

Writes NAME.flaxdil (the weights evaluation uses, int8 kernels by default:
--storage), NAME.int8.onnx (the workdir's --mode=export, run first where it
is missing), the model card NAME.md and NAME's entry in index.json. The
card's accuracy is measured by reading the written file back and
evaluating it on the whole test split; --speedrun names the speedrun
tables that give the recipe's spread over seeds.

Where the training machine lacks the export tools (a GPU machine that is
lent, then gone), --snapshot writes only a float32 NAME.flaxdil with the
run's provenance there; --workdir=NAME.flaxdil then releases it elsewhere.
"""

from absl import app, flags, logging

_WORKDIR = flags.DEFINE_string('workdir', None, 'The trained workdir, or a '
                                '--snapshot of one (a .flaxdil file).')
_NAME = flags.DEFINE_string('name', None, 'The released weight\'s name.')
_SPEEDRUN = flags.DEFINE_list('speedrun', [],
                              'speedrun.json files of this recipe\'s seeds.')
_DATA_DIR = flags.DEFINE_string('data_dir', None,
                                'Where the dataset is (default: the '
                                'workdir\'s).')
_OUT = flags.DEFINE_string('out', None, 'Directory (default: the package\'s '
                           'weights/).')
_STORAGE = flags.DEFINE_enum('storage', 'int8', ['int8', 'float16', 'float32'],
                             'How the weight file stores the weights.')
_CARD_NOTE = flags.DEFINE_string('card_note', '', 'A line for the card\'s '
                                 'limitations (markdown), e.g. other runs of '
                                 'the recipe.')
_SNAPSHOT = flags.DEFINE_bool('snapshot', False, 'Write only a float32 '
                              'NAME.flaxdil with the run\'s provenance.')


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  from flaxdil import pretrained
  from flaxdil.errors import exit_on_user_error
  from flaxdil.experiments import release
  with exit_on_user_error():
    entry = release.release(_WORKDIR.value, _NAME.value, _SPEEDRUN.value,
                            _DATA_DIR.value,
                            _OUT.value or pretrained.WEIGHTS_DIR,
                            card_notes=(f'- {_CARD_NOTE.value}\n'
                                        if _CARD_NOTE.value else ''),
                            storage=_STORAGE.value, snapshot=_SNAPSHOT.value)
  if _SNAPSHOT.value:
    print(f'{_NAME.value}: snapshot {entry["bytes"] / 1e6:.2f} MB, sha256 '
          f'{entry["sha256"]}')
    return
  print(f'{_NAME.value}: {entry["bytes"] / 1e6:.2f} MB, test accuracy '
        f'{entry["test_accuracy"]:.4f} (float32 checkpoint '
        f'{entry["checkpoint_test_accuracy"]:.4f}; int8 ONNX '
        f'{entry["onnx_int8_test_accuracy"]:.4f}), sha256 {entry["sha256"]}')


if __name__ == '__main__':
  flags.mark_flags_as_required(['workdir', 'name'])
  app.run(main)
