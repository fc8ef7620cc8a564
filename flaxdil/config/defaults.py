"""Every config field flaxdil reads, in one table: its default, what it
means, the values it allows and what a resumed run may do with it.

Config files (configs/*.py) start from `get_config()` and change what they
need; override any field on the command line with --config.FIELD=VALUE.
The rules between fields, and what the run's data and devices demand of
them, are in flaxdil.config.rules, which checks every field against its
row here. Step counts' -1 sentinels are resolved in flaxdil.config.budget.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import ml_collections

from flaxdil.config import values

# What a resumed training run may do with a field (flaxdil.workdir.record):
#   IDENTITY  what the parameters mean: refused on resume and when a
#             workdir is evaluated, inspected or exported
#   FIXED     how the run trains (data order, augmentation, optimizer,
#             schedule, selection): refused on resume, free for evaluation
#   FREE      where data lives, kernels, length, logging and checkpoint
#             cadence: may change, and the change is recorded per session
IDENTITY, FIXED, FREE = 'identity', 'fixed', 'free'

# config.input_pipeline: how training data reaches the devices
# (flaxdil.training.inputs); both compute the same batches.
INPUT_PIPELINES = ('auto', 'device', 'stream')


@dataclasses.dataclass(frozen=True)
class Field:
  default: Any
  test: Callable[[Any], bool]
  # What the error message says is allowed (or a function that says it).
  allowed: str | Callable[[], str]
  on_resume: str     # IDENTITY, FIXED or FREE.
  # Where the default is None: the type of value the field takes.
  type: type | None = None

  def describe_allowed(self) -> str:
    return self.allowed if isinstance(self.allowed, str) else self.allowed()


FIELDS = {
    # --- Data.
    # A TFDS dataset name.
    'dataset': Field('cifar10', values.is_name, 'a TFDS dataset name', IDENTITY),
    # None: $TFDS_DATA_DIR, else the TFDS default (downloading if allowed).
    'data_dir': Field(None, values.is_optional_path, 'a directory, or None', FREE,
                      str),
    # Where a dataset read from downloaded files finds them (Tiny ImageNet:
    # the directory holding tiny-imagenet-200.zip); it is then prepared once
    # into data_dir.
    'manual_dir': Field(None, values.is_optional_path, 'a directory, or None',
                        FREE, str),
    'train_split': Field('train', values.is_name, 'a split name or TFDS slice',
                         FIXED),
    # Only for final numbers (--mode=eval).
    'test_split': Field('test', values.is_name, 'a split name or TFDS slice', FREE),
    # Held out of train_split for model selection.
    'validation_size': Field(5000, lambda v: values.is_int(v) and v >= 0,
                             'an integer >= 0', FIXED),
    # Random crop after zero-padding; 0: off.
    'crop_padding': Field(4, lambda v: values.is_int(v) and v >= 0,
                          'an integer >= 0 (0: off)', FIXED),
    # Horizontal flip.
    'random_flip': Field(True, values.is_bool, 'True or False', FIXED),
    # With random_flip: airbench's alternating flip (BatchOrder.flips).
    'alternating_flip': Field(False, values.is_bool, 'True or False', FIXED),
    # airbench96's cutout: one S×S square of each training image, at a
    # random place inside it, set to the dataset's mean (0: off).
    'cutout': Field(0, lambda v: values.is_int(v) and v >= 0,
                    'an integer >= 0: the side of the square (0: off)', FIXED),
    # Progressive resizing (issue 26): the first early_epochs epochs train
    # on S×S images (S = early_size), for about (S/side)² of the compute
    # per image; later steps, evaluation and export see whole images.
    # early_mode 'crop': random S×S crops of the padded images, objects at
    # their own scale; 'resize': the whole augmented image resized
    # (bilinear, antialiased). 0: off.
    'early_size': Field(0, lambda v: values.is_int(v) and v >= 0,
                        'an integer >= 0 (0: off)', FIXED),
    'early_epochs': Field(0.0, lambda v: values.is_number(v) and v >= 0,
                          'a number of epochs >= 0', FIXED),
    'early_mode': Field('crop', lambda v: v in ('crop', 'resize'),
                        "'crop' or 'resize'", FIXED),
    # The size the network sees: None keeps the dataset's own; an integer S
    # resizes every image (bilinear, no antialiasing, on the device, after
    # the augmentation at the dataset's size) to S×S as the network's first
    # operation, in training, evaluation and export alike (e.g. 96: CIFAR-10
    # enlarged 3x).
    'image_size': Field(None, lambda v: v is None or (values.is_int(v) and v >= 1),
                        'None (the dataset\'s own size) or an integer >= 1',
                        IDENTITY, int),
    # How training data reaches the devices. 'device': each device holds the
    # whole decoded training split (uint8) and gathers each step's batch
    # itself. 'stream': each process reads only its devices' rows of each
    # step from disk, decoding on `stream_threads` threads, `stream_prefetch`
    # steps ahead; needed for images of varying size (ImageNet) and for data
    # larger than memory. Both give bitwise the same batches. 'auto':
    # 'device' where the decoded training split fits in a quarter of one
    # device's memory (of the host's, on a CPU) and the images are of one
    # size, else 'stream'; the log says which and why.
    'input_pipeline': Field('auto', lambda v: v in INPUT_PIPELINES,
                            f'one of {", ".join(INPUT_PIPELINES)}', FREE),
    'stream_threads': Field(4, lambda v: values.is_int(v) and v >= 1,
                            'an integer >= 1', FREE),
    # Steps read ahead; at least stream_threads.
    'stream_prefetch': Field(8, lambda v: values.is_int(v) and v >= 1,
                             'an integer >= 1 (steps read ahead)', FREE),

    # --- Model (these fields fix what the parameters mean: a workdir
    # refuses another value of them).
    # 'dilated_net' (the paper's), or a Table 1 baseline: 'mobilenet_v1',
    # 'squeezenet', 'googlenet', 'vgg16' (configs/baselines.py); widths,
    # strides and dilation describe dilated_net only.
    'model': Field('dilated_net', *values.one_of('models', 'MODELS'), IDENTITY),
    # Baselines: 'cifar' (32×32 body, no early downsampling) or 'imagenet'
    # (the published 224×224 network).
    'stem': Field('cifar', *values.one_of('models', 'STEMS'), IDENTITY),
    # 3→32→…→1024 doubles the width at each downsampling, like MobileNet;
    # with three 1024-wide blocks the CIFAR-10 model has 3.11 M parameters,
    # the paper's 3.1 M. Most parameters sit in the last, 4×4 blocks, where
    # they cost few multiply-adds.
    'widths': Field((32, 64, 128, 256, 512, 512, 1024, 1024, 1024),
                    lambda v: values.ints(v, lambda w: w >= 1),
                    'one integer >= 1 per basic structure, e.g. 32:64:128',
                    IDENTITY),
    'strides': Field((1, 2, 1, 2, 1, 2, 1, 1, 1),
                     lambda v: values.ints(v, lambda s: s in (1, 2)),
                     'one stride per basic structure, each 1 or 2, e.g. '
                     '1:2:1', IDENTITY),
    # The paper's δ: 0 → 3×3, 1 → 7×7, 2 → 11×11; or one δ per structure.
    'dilation': Field(2, values.is_dilation,
                      'the paper\'s δ, an integer >= 0 (0: 3x3, 1: 7x7, 2: '
                      '11x11), or one such integer per basic structure',
                      IDENTITY),
    # Compute dtype; parameters stay float32.
    'dtype': Field('float32', *values.one_of('models', 'DTYPES'), IDENTITY),
    'bn_momentum': Field(0.9, lambda v: values.is_number(v) and 0 <= v < 1,
                         'a number in [0, 1)', FIXED),
    # Kernels for the convolutions (same parameters, same results): 'lax',
    # 'fast' (sliced depthwise + matmul pointwise, for XLA:CPU) or 'auto'.
    'conv_impl': Field('auto', *values.one_of('models', 'CONV_IMPLS'), FREE),

    # --- Optimisation: Adam, linear warm-up then the schedule.
    # Global; divided evenly across devices.
    'batch_size': Field(128, lambda v: values.is_int(v) and v >= 1,
                        'an integer >= 1', FIXED),
    'eval_batch_size': Field(500, lambda v: values.is_int(v) and v >= 1,
                             'an integer >= 1', FREE),
    'num_epochs': Field(30, values.is_number,
                        'a number (> 0 unless num_train_steps is set)', FREE),
    # -1: num_epochs × steps per epoch.
    'num_train_steps': Field(-1, lambda v: values.is_int(v) and (v == -1 or v >= 1),
                             '-1 (from num_epochs) or an integer >= 1', FREE),
    # Peak, reached after warm-up.
    'learning_rate': Field(2e-3, lambda v: values.is_number(v) and v > 0,
                           'a number > 0', FIXED),
    'warmup_epochs': Field(1.0, lambda v: values.is_number(v) and v >= 0,
                           'a number >= 0', FIXED),
    # After the warm-up, a schedule of flaxdil.config.budget.SCHEDULES:
    # 'cosine' or 'linear' decays to 0 at the last step; 'constant'.
    'lr_schedule': Field('cosine', *values.one_of('config.budget', 'SCHEDULES'),
                         FIXED),
    # flaxdil.training.optimizers.OPTIMIZERS: 'adam' (AdamW with weight
    # decay), 'sgd' (with sgd_momentum, Nesterov's where nesterov).
    'optimizer': Field('adam', *values.one_of('training.optimizers',
                                              'OPTIMIZERS'), FIXED),
    'sgd_momentum': Field(0.9, lambda v: values.is_number(v) and 0 <= v < 1,
                          'a number in [0, 1)', FIXED),
    'nesterov': Field(True, values.is_bool, 'True or False', FIXED),
    # Adam's decay rate for its running mean of squared gradients (optax's
    # b2). Lower forgets the first steps' large gradients sooner.
    'adam_b2': Field(0.999, lambda v: values.is_number(v) and 0 < v < 1,
                     'a number in (0, 1)', FIXED),
    # > 0: of kernels only; Adam's is AdamW's decoupled decay, SGD's is L2
    # added to the gradient (as PyTorch's SGD).
    'weight_decay': Field(0.0, lambda v: values.is_number(v) and v >= 0,
                          'a number >= 0', FIXED),
    # K > 0: Lookahead around the optimizer: every K steps the slow weights
    # move lookahead_alpha of the way to the fast ones, which restart there.
    'lookahead_steps': Field(0, lambda v: values.is_int(v) and v >= 0,
                             'an integer >= 0 (0: off)', FIXED),
    'lookahead_alpha': Field(0.5, lambda v: values.is_number(v) and 0 < v <= 1,
                             'a number in (0, 1]', FIXED),
    'label_smoothing': Field(0.0, lambda v: values.is_number(v) and 0 <= v < 1,
                             'a number in [0, 1)', FIXED),
    # > 0: keep an exponential moving average of the weights and BatchNorm
    # statistics (this decay per step); validation, checkpoint selection
    # and evaluation use the average.
    'ema_decay': Field(0.0, lambda v: values.is_number(v) and 0 <= v < 1,
                       'a number in [0, 1) (0: off)', FIXED),
    'seed': Field(0, values.is_int, 'an integer', FIXED),
    # Evaluation (validation and test alike): classify by the mean logits
    # of each image and its horizontal mirror.
    'test_time_flip': Field(False, values.is_bool, 'True or False', FIXED),
    # S > 0: airbench's test-time translation by S pixels (steps.predict).
    'test_time_shift': Field(0, lambda v: values.is_int(v) and v >= 0,
                             'an integer number of pixels >= 0', FIXED),

    # --- Fine-tuning (flaxdil.training.init_from).
    # Starts a new run from another run's weights: a training workdir (its
    # best checkpoint), WORKDIR@STEP, or a released weight's name or file
    # (flaxdil.pretrained). Parameters of matching path and shape are
    # loaded, the classifier is re-initialised where its shape differs (a
    # dataset of other classes); '' trains from scratch. A resume restores
    # its own checkpoint and never reads this again.
    'init_from': Field('', lambda v: isinstance(v, str),
                       "'' (from scratch), a workdir, WORKDIR@STEP or a "
                       'released weight (flaxdil.pretrained.list())', FIXED),
    # With init_from: train only the classifier; every other parameter
    # keeps the loaded values (BatchNorm statistics still follow the new
    # data, as a linear probe on the network's features).
    'freeze_backbone': Field(False, values.is_bool, 'True or False', FIXED),

    # --- Bookkeeping.
    'log_every_steps': Field(50, lambda v: values.is_int(v) and v >= 1,
                             'an integer >= 1', FREE),
    # -1: once per epoch.
    'eval_every_steps': Field(-1, lambda v: values.is_int(v) and (v == -1 or v >= 1),
                              '-1 (once per epoch) or an integer >= 1', FREE),
    # -1: at every evaluation.
    'checkpoint_every_steps': Field(
        -1, lambda v: values.is_int(v) and (v == -1 or v >= 1),
        '-1 (at every evaluation) or an integer >= 1', FREE),
    # Also checkpoint when this many minutes passed since the last
    # checkpoint, so an interrupted run loses at most that much however
    # long an epoch is; 0: off.
    'checkpoint_every_minutes': Field(
        10.0, lambda v: values.is_number(v) and v >= 0,
        'a number of minutes >= 0 (0: off)', FREE),
    # The latest K; the best is kept as well.
    'keep_checkpoints': Field(3, lambda v: values.is_int(v) and v >= 1,
                              'an integer >= 1', FREE),
    # A step whose loss or gradients are not finite stops training (exit
    # code 3) unless this is True: then the update is skipped (parameters,
    # optimizer state and BatchNorm statistics kept) and counted in the
    # metrics as nonfinite_steps.
    'skip_nonfinite_steps': Field(False, values.is_bool, 'True or False', FREE),
    # Train steps per dispatch to the devices: K > 1 runs K steps inside one
    # compiled program (a lax.scan of the same step), which saves the
    # host's per-step cost where steps are short (small models,
    # accelerators). The same batches, augmentation and checkpoints as
    # K = 1; logging, validation and step-based saves still happen at their
    # exact steps (a block never crosses one), time-based saves and SIGTERM
    # at the end of the block in which they come due.
    'steps_per_dispatch': Field(1, lambda v: values.is_int(v) and v >= 1,
                                'an integer >= 1', FREE),
    # 'A:B' traces the steps after step A up to step B with jax.profiler
    # into WORKDIR/profile/ (for TensorBoard's profile plugin or Perfetto);
    # '' off.
    'profile_steps': Field('', lambda v: v == '' or values.profile_window(v)
                           is not None,
                           "'' (off) or 'A:B' with integers 0 <= A < B "
                           "(traces the steps after A up to B)", FREE),
}


def fields_with(on_resume: str) -> tuple[str, ...]:
  return tuple(f for f, field in FIELDS.items() if field.on_resume == on_resume)


def get_config() -> ml_collections.ConfigDict:
  """Every field at its default."""
  config = ml_collections.ConfigDict()
  for name, field in FIELDS.items():
    config[name] = (ml_collections.config_dict.placeholder(field.type)
                    if field.default is None else field.default)
  return config


def from_record(record: dict) -> ml_collections.ConfigDict:
  """The config a recorded one (a workdir's config.json, a weight file's)
  describes: every field at its default, then the record's values. A
  field the record lacks did not exist when it was written, and its
  default is what that run did; one this flaxdil does not know is refused."""
  from flaxdil.errors import ConfigError
  unknown = sorted(set(record) - set(FIELDS))
  if unknown:
    raise ConfigError(
        f'the recorded config has fields this flaxdil does not know '
        f'({", ".join(unknown)}); it was written by a newer version. Fix: '
        'upgrade flaxdil.')
  config = get_config()
  for name, value in record.items():
    config[name] = tuple(value) if isinstance(value, list) else value
  return config
