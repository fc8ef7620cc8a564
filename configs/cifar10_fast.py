"""The paper's network trained for time to accuracy under airbench's rules:
a schedule fixed in advance, all 50,000 training images (no hold-out, so
nothing is selected), and the final weights (their EMA) tested once on the
whole test split. Time it with bin/speedrun.py.

The network is configs/cifar10.py's: nine joint modules, widths 32…1024,
stride 2 at blocks 2, 4, 6, 3.1 M parameters. The recipe is the hour-long
one's (configs/cifar10_recipe.py: AdamW on the kernels, label smoothing,
an EMA, test-time flips) cut to 7 epochs (349,440 images), 21.6-24.4
minutes on a 2-core Zen 4 at 253-291 images/s, with a warm-up of a third
of an epoch and the cosine decay to zero after it. What each further
trick buys is measured over seeds before it lands here (docs/results.md,
"Time to accuracy").
Landed since:
- airbench's test-time translation by 2 pixels (+0.30 to +0.60 points on
  each of four trained checkpoints, paired, for about 26 s more of
  evaluation on 2 cores: results/tta_shift/; runs before it evaluated with
  the flip alone);
- weight decay 0.5 instead of the hour-long recipe's 0.05: +2.65 points
  over seeds 0, 1, 2, paired (+2.34 to +3.25 each; 83.28 % mean), at no
  cost in time (results/fast_weight_decay/). Every kernel but the
  classifier's feeds a BatchNorm, so only its direction counts; Adam's
  steps grow the kernels' norms, which shrinks the angle of each step,
  and the stronger decay keeps the norms 2-4x smaller. Runs before it
  (results/speedrun_fast/, the released fast weights, the ablation)
  trained with 0.05;
- weight decay 1.5 instead of 0.5: +0.65 points over seeds 0, 1, 2,
  paired (+1.22, +0.68, +0.06; interval [-0.79, +2.10]), 83.85 % mean over
  seeds 0-4, at no cost in time (results/fast_weight_decay/, python
  results/fast_weight_decay/compare.py). Runs before it trained with 0.5;
- 9 epochs instead of 8 (+0.21, +0.18 points at seeds 0 and 1:
  results/fast_9ep/) and a random crop after padding by 2 pixels instead
  of 4: +0.68 and +1.05 points at 9 epochs, paired on one machine
  (results/fast_candidates/). With 4-pixel padding the recipe fitted its
  training batches no better than the test split (84 %): the network is short of
  fitting, and the smaller shift lets it fit more (86 %) while still
  generalising. 85.06 ± 0.29 % over seeds 0-4 (84.90, 84.74, 85.31,
  85.41, 84.93 %: results/fast_recipe/), 5 of 5 at or above 84.25 %. Runs before it trained 8 epochs with 4-pixel
  padding;
- a crop after padding by 1 pixel instead of 2: +0.21 points over seeds
  0-4, paired (+0.47, +0.37, -0.03, +0.30, -0.08; interval [-0.10,
  +0.51]), 85.26 ± 0.32 % over the five, 5 of 5 at or above 84.25 %
  (results/fast_crop_padding/), at no cost in time; cut to 5 epochs
  +0.66 [+0.23, +1.10] over seeds 0-2, positive at each. Each step down
  lets the network fit its training batches better (88.0-88.5 % over
  the last epoch at 1 pixel, 86.1-86.5 % at 2). Runs before it (the
  ablation below, the δ = 2 and hour-long rows, the released fast
  weights) trained with 2 pixels;
- 7 epochs instead of 9: the soonest length whose mean over five seeds
  reaches the paper's 84.25 %, issue 26's rule. 84.58 +- 0.36 % over
  seeds 0-4 (84.62, 84.09, 84.98, 84.84, 84.35 %; interval [84.13,
  85.02]), 4 of 5 at or above 84.25 %, in 21.6-24.4 minutes, against
  26-27 at 9 epochs; -0.69 [-1.05, -0.33] against 9 epochs, paired
  (results/fast_7ep/). 6 epochs: 83.58 % at seed 0, 1.04 below 7, not
  pursued. For a margin (5 of 5 seeds, 85.26 +- 0.32 %) train 9:
  configs/cifar10_fast.py:num_epochs=9. Runs before it (the ablation,
  the rows of docs/results.md that say 9 epochs) trained 9.
Each trick taken out again, paired (results/recipe_ablation/), all at 9
epochs: in training on the recipe with 2-pixel padding, weight decay +2.97
(positive at each of seeds 0-2, the interval reaching zero), the 2-pixel
padding (against 4) +0.92, label smoothing +0.37 (seeds 0-2, both
intervals clear of zero); in evaluation, on the 1-pixel checkpoints:
the test-time flip +0.60 and the shift +0.22 (seeds 0-4); the EMA +0.03,
nothing measurable. At 7 epochs, seeds 0-4: the test-time flip +0.84,
the shift +0.24 (both intervals clear of zero), the EMA +0.04; the crops
after 1-pixel padding -0.03 [-0.54, +0.47]: the flip alone
(crop_padding=0) tests the same, 84.61 +- 0.16 %, and was not adopted.
On machine E (a 2-core Xeon; seeds 0-2 of the recipe there, 84.44 +-
0.24 %, in 17.8 min at best), the random flip -0.13 [-0.51, +0.25]: the
crops alone (random_flip=False) test the same, 84.57 +- 0.24 %, not
adopted either; label smoothing +0.15 [-0.45, +0.75], kept (clear of
zero at 9 epochs); weight decay +4.03 [-0.28, +8.34], every seed
positive: without it 80.41 +- 1.74 %.

Arguments, comma-separated: configs/cifar10_fast.py:dilation=2,num_epochs=6
"""

from flaxdil.config import files
from flaxdil.config.args import apply_arguments


def get_config(arg: str | None = None):
  config = files.load('cifar10_recipe.py', relative_to=__file__)
  config.dilation = 0
  config.validation_size = 0
  config.num_epochs = 7
  config.crop_padding = 1
  config.warmup_epochs = 1 / 3
  config.weight_decay = 1.5
  config.label_smoothing = 0.2
  config.ema_decay = 0.99
  config.test_time_shift = 2
  # Only the end counts: no checkpoint by time during a 15-minute run.
  config.checkpoint_every_minutes = 0.0
  return apply_arguments(config, arg)
