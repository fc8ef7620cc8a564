"""What happens to a batch on the device, inside the jitted step:
augmentation (random crop, flip) and normalisation, on uint8 images, and
cutout on the normalised ones.

Kept on the device as airbench does: the batch travels as uint8 (4x less
than float32), and the augmentation's randomness comes from one key per
example, so it is the same on any number of devices and after a resume.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def normalize(images: jax.Array, mean, std) -> jax.Array:
  """uint8 images → zero-mean, unit-variance float32."""
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  return (images.astype(jnp.float32) - mean) / std


def translations(images: jax.Array, shift: int) -> tuple[jax.Array, jax.Array]:
  """The images translated `shift` pixels up-left and down-right, their
  edges reflected (airbench's test-time translation)."""
  h, w = images.shape[1:3]
  padded = jnp.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)),
                   mode='reflect')
  return (padded[:, :h, :w],
          padded[:, 2 * shift:2 * shift + h, 2 * shift:2 * shift + w])


def augment(images: jax.Array, keys: jax.Array, crop_padding: int,
            random_flip: bool, early_size: int | None = None,
            early_mode: str = 'crop') -> jax.Array:
  """Random crop after zero padding and a random horizontal flip.

  `keys` holds one PRNG key per example, so the result depends only on the
  example's key: the same on 1 device or 8, and after a resume.

  early_size, early_mode (config's, while its early epochs last): None
  keeps the images' size; S with 'crop' crops S×S anywhere in the padded
  image, at the same scale (uint8); with 'resize' resizes the whole
  augmented image to S×S (bilinear, antialiased: float32).
  """
  crop_size = early_size if early_mode == 'crop' else None

  def one(image, key):
    crop_key, flip_key = jax.random.split(key)
    if crop_padding or crop_size:
      h, w, c = image.shape
      padded = jnp.pad(image, ((crop_padding, crop_padding),
                               (crop_padding, crop_padding), (0, 0)))
      if crop_size:
        corner = jax.random.randint(
            crop_key, (2,), 0,
            jnp.array([h, w]) + 2 * crop_padding - crop_size + 1)
        image = jax.lax.dynamic_slice(padded, (corner[0], corner[1], 0),
                                      (crop_size, crop_size, c))
      else:
        dy, dx = jax.random.randint(crop_key, (2,), 0, 2 * crop_padding + 1)
        image = jax.lax.dynamic_slice(padded, (dy, dx, 0), image.shape)
    if random_flip:
      image = jnp.where(jax.random.bernoulli(flip_key), image[:, ::-1], image)
    return image

  images = jax.vmap(one)(images, keys)
  if early_size and early_mode == 'resize':
    n, _, _, c = images.shape
    images = jax.image.resize(images.astype(jnp.float32),
                              (n, early_size, early_size, c), 'linear',
                              antialias=True)
  return images


def cutout(images: jax.Array, keys: jax.Array, size: int) -> jax.Array:
  """One size×size square per image, at a uniformly random place wholly
  inside it, set to zero: on normalised images, the dataset's mean (as
  airbench96's cutout, after normalisation). Its place comes from each
  example's key folded with 1, so the crop and flip that augment draws from
  the same key are those of a run without cutout: runs with and without
  it pair exactly, example by example."""
  h, w = images.shape[1:3]

  def mask(key):
    top, left = jax.random.randint(jax.random.fold_in(key, 1), (2,), 0,
                                   jnp.array([h, w]) - size + 1)
    rows = (jnp.arange(h) >= top) & (jnp.arange(h) < top + size)
    cols = (jnp.arange(w) >= left) & (jnp.arange(w) < left + size)
    return rows[:, None] & cols[None, :]

  inside = jax.vmap(mask)(keys)
  return jnp.where(inside[..., None], jnp.zeros((), images.dtype), images)
