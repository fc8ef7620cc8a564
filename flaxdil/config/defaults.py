"""Every config field flaxdil reads, with its default and what it means.

Config files (configs/*.py) start from `get_config()` and change what they
need; override any field on the command line with --config.FIELD=VALUE.
Each field's allowed values, and whether a resumed run may change it, are
in flaxdil.config.rules.
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()

  # Data.
  config.dataset = 'cifar10'       # A TFDS dataset name.
  # None: $TFDS_DATA_DIR, else the TFDS default (downloading if allowed).
  config.data_dir = ml_collections.config_dict.placeholder(str)
  # Where a dataset read from downloaded files finds them (Tiny ImageNet:
  # the directory holding tiny-imagenet-200.zip); it is then prepared once
  # into data_dir.
  config.manual_dir = ml_collections.config_dict.placeholder(str)
  config.train_split = 'train'
  config.test_split = 'test'       # Only for final numbers (--mode=eval).
  config.validation_size = 5000    # Held out of train_split for model selection.
  config.crop_padding = 4          # Random crop after zero-padding; 0: off.
  config.random_flip = True        # Horizontal flip.
  # The size the network sees: None keeps the dataset's own; an integer S
  # resizes every image (bilinear, no antialiasing, on the device, after the
  # augmentation at the dataset's size) to S×S as the network's first
  # operation, in training, evaluation and export alike (e.g. 96: CIFAR-10
  # enlarged 3x).
  config.image_size = ml_collections.config_dict.placeholder(int)
  # How training data reaches the devices. 'device': each device holds the
  # whole decoded training split (uint8) and gathers each step's batch
  # itself. 'stream': each process reads only its devices' rows of each
  # step from disk, decoding on `stream_threads` threads, `stream_prefetch`
  # steps ahead; needed for images of varying size (ImageNet) and for data
  # larger than memory. Both give bitwise the same batches. 'auto': 'device'
  # where the decoded training split fits in a quarter of one device's
  # memory (of the host's, on a CPU) and the images are of one size, else
  # 'stream'; the log says which and why.
  config.input_pipeline = 'auto'
  config.stream_threads = 4
  config.stream_prefetch = 8   # Steps read ahead; at least stream_threads.

  # Model (these fields fix what the parameters mean: a workdir refuses
  # another value of them).
  # 'dilated_net' (the paper's), or a Table 1 baseline: 'mobilenet_v1',
  # 'squeezenet', 'googlenet', 'vgg16' (configs/baselines.py); widths,
  # strides and dilation describe dilated_net only.
  config.model = 'dilated_net'
  # Baselines: 'cifar' (32×32 body, no early downsampling) or 'imagenet'
  # (the published 224×224 network).
  config.stem = 'cifar'
  # 3→32→…→1024 doubles the width at each downsampling, like MobileNet; with
  # three 1024-wide blocks the CIFAR-10 model has 3.11 M parameters, the
  # paper's 3.1 M. Most parameters sit in the last, 4×4 blocks, where they
  # cost few multiply-adds.
  config.widths = (32, 64, 128, 256, 512, 512, 1024, 1024, 1024)
  config.strides = (1, 2, 1, 2, 1, 2, 1, 1, 1)
  config.dilation = 2              # The paper's δ: 0 → 3×3, 1 → 7×7, 2 → 11×11.
  config.dtype = 'float32'         # Compute dtype; parameters stay float32.
  config.bn_momentum = 0.9
  # Kernels for the convolutions (same parameters, same results):
  # 'lax', 'fast' (sliced depthwise + matmul pointwise, for XLA:CPU) or 'auto'.
  config.conv_impl = 'auto'

  # Optimisation: Adam, linear warm-up then cosine decay.
  config.batch_size = 128          # Global; divided evenly across devices.
  config.eval_batch_size = 500
  config.num_epochs = 30
  config.num_train_steps = -1      # -1: num_epochs × steps per epoch.
  config.learning_rate = 2e-3      # Peak, reached after warm-up.
  config.warmup_epochs = 1.0
  config.lr_schedule = 'cosine'    # 'cosine' or 'constant' (after warm-up).
  config.weight_decay = 0.0        # > 0: AdamW's decoupled decay.
  config.label_smoothing = 0.0
  # > 0: keep an exponential moving average of the weights and BatchNorm
  # statistics (this decay per step); validation, checkpoint selection and
  # evaluation use the average.
  config.ema_decay = 0.0
  config.seed = 0
  # Evaluation (validation and test alike): classify by the mean logits of
  # each image and its horizontal mirror.
  config.test_time_flip = False

  # Bookkeeping.
  config.log_every_steps = 50
  config.eval_every_steps = -1     # -1: once per epoch.
  config.checkpoint_every_steps = -1  # -1: at every evaluation.
  # Also checkpoint when this many minutes passed since the last checkpoint,
  # so an interrupted run loses at most that much however long an epoch is.
  config.checkpoint_every_minutes = 10.0   # 0: off.
  config.keep_checkpoints = 3      # The latest K; the best is kept as well.
  # A step whose loss or gradients are not finite stops training (exit code
  # 3) unless this is True: then the update is skipped (parameters,
  # optimizer state and BatchNorm statistics kept) and counted in the
  # metrics as nonfinite_steps.
  config.skip_nonfinite_steps = False
  # Train steps per dispatch to the devices: K > 1 runs K steps inside one
  # compiled program (a lax.scan of the same step), which saves the host's
  # per-step cost where steps are short (small models, accelerators). The
  # same batches, augmentation and checkpoints as K = 1; logging,
  # validation and step-based saves still happen at their exact steps
  # (a block never crosses one), time-based saves and SIGTERM at the end of
  # the block in which they come due.
  config.steps_per_dispatch = 1
  # 'A:B' traces the steps after step A up to step B with jax.profiler into
  # WORKDIR/profile/ (for TensorBoard's profile plugin or Perfetto); '' off.
  config.profile_steps = ''
  return config
