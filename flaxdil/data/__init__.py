"""The data room: TFDS datasets read without TensorFlow.

  source.py         finding or preparing a dataset, its metadata and split
                    sizes, decoding a whole split, the validation hold-out
  batches.py        the training batch order and padded evaluation batches
  augment.py        crop, flip and normalisation, on the device
  tiny_imagenet.py  the TFDS builder for Tiny ImageNet's official zip
"""
