"""Sample sheets and interpolations of a generator: the one maker for every caller.

The trainer's `samples/step_*.png`, `hub_convert`'s `samples.png` and the `sample`
command line all draw here. Latent i of a request with seed s is
`biggan.sample_z(1, dim_z, truncation, s + i)` (`seeded_latents`), which is also what an
export's `sample` signature draws for seed s + i, so the same generator gives the same
picture in training, from a models directory and from its export.

Images are float32 `[N, R, R, 3]` in [-1, 1]; `images.make_grid` turns them into a sheet.
"""

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan

INTERPOLATIONS = ("slerp", "lerp")


def seeded_latents(seeds, dim_z, truncation):
    """One latent per seed: `[N, dim_z]`, row i = `biggan.sample_z(1, dim_z, t_i, seed_i)`.

    Args:
      seeds: int64 `[N]`; each row is a stateless truncated normal seeded by `[seed, 0]`.
      dim_z: latent width.
      truncation: float32 `[N]` (or a scalar), multiplies each row.

    Returns:
      float32 `[N, dim_z]` (a tensor; this also runs inside an export's graph).
    """
    seeds = tf.cast(seeds, tf.int64)
    z = tf.map_fn(
        lambda s: tf.random.stateless_truncated_normal(
            [dim_z], seed=tf.stack([s, tf.constant(0, tf.int64)]), alg=biggan.RNG_ALG
        ),
        seeds,
        fn_output_signature=tf.TensorSpec([dim_z], tf.float32),
    )
    truncation = tf.cast(truncation, tf.float32)
    if truncation.shape.rank:
        truncation = truncation[:, None]
    return z * truncation


def slerp(a, b, weights):
    """Spherical interpolation `[D], [D], [T] -> [T, D]` (lerp when a and b are parallel)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    weights = np.asarray(weights, np.float64)[:, None]
    cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return ((1 - weights) * a + weights * b).astype(np.float32)
    out = (np.sin((1 - weights) * omega) * a + np.sin(weights * omega) * b) / np.sin(omega)
    return out.astype(np.float32)


def lerp(a, b, weights):
    """Linear interpolation `[D], [D], [T] -> [T, D]`."""
    weights = np.asarray(weights, np.float32)[:, None]
    return ((1 - weights) * np.asarray(a) + weights * np.asarray(b)).astype(np.float32)


def batched(fn, batch_size, *arrays):
    """`fn` over consecutive slices of `batch_size` rows of `arrays`, concatenated.

    Args:
      fn: takes one slice of each of `arrays` and returns a tensor of as many rows.
      batch_size: rows per call (the last call may get fewer).
      *arrays: arrays or tensors with the same number of rows.

    Returns:
      The concatenated outputs, one row per input row.
    """
    n = len(arrays[0])
    return tf.concat(
        [fn(*(a[i : i + batch_size] for a in arrays)) for i in range(0, n, batch_size)], axis=0
    )


def generate(generator, z, y, batch_size=32):
    """`generator((z, y), training=False)` in batches of `batch_size`.

    Inference mode uses the standing statistics, so an image does not depend on its
    batch and `batch_size` changes only speed and memory.

    Args:
      generator: a `biggan.Generator`.
      z: float32 `[N, dim_z]` latents.
      y: int `[N]` class ids, or float32 `[N, num_classes]` label mixtures.
      batch_size: images per generator call.

    Returns:
      float32 `[N, R, R, 3]` images in [-1, 1].
    """
    call = _inference_function(generator)
    return batched(call, batch_size, tf.constant(z, tf.float32), tf.constant(y))


def _inference_function(generator):
    # One traced function per generator: sample sheets during training reuse it.
    cache = generator.__dict__.setdefault("_sampling_functions", {})
    if "call" not in cache:
        cache["call"] = tf.function(lambda z, y: generator((z, y), training=False))
    return cache["call"]


def sheet(generator, class_ids, samples_per_class, truncation=1.0, seed=0, batch_size=32):
    """A sample sheet: one row of `samples_per_class` images per class id.

    Image i (row-major) uses the latent of seed `seed + i`, so row r, column c holds
    class `class_ids[r]` at `seeded_latents([seed + r * samples_per_class + c])`.

    Args:
      generator: a `biggan.Generator`.
      class_ids: the class of each row.
      samples_per_class: images per row.
      truncation: latent truncation (the standing statistics are not re-accumulated).
      seed: the seed of the first latent.
      batch_size: images per generator call.

    Returns:
      float32 `[len(class_ids) * samples_per_class, R, R, 3]`, row-major.
    """
    y = np.repeat(np.asarray(class_ids, np.int32), samples_per_class)
    seeds = seed + np.arange(len(y), dtype=np.int64)
    z = seeded_latents(seeds, generator.dim_z, truncation).numpy()
    return generate(generator, z, y, batch_size)


def interpolate_z(
    generator, class_ids, steps, truncation=1.0, seed=0, interpolation="slerp", batch_size=32
):
    """One row per class, `steps` columns walking between the latents of `seed`, `seed + 1`.

    Every row walks the same path, so columns compare classes at equal latents; the first
    and last columns are `sheet`'s images of seeds `seed` and `seed + 1`.

    Args:
      generator: a `biggan.Generator`.
      class_ids: the class of each row.
      steps: columns, both ends included.
      truncation: latent truncation of both ends.
      seed: the seed of the first end (the second is `seed + 1`).
      interpolation: "slerp" (keeps the latent norm) or "lerp".
      batch_size: images per generator call.

    Returns:
      float32 `[len(class_ids) * steps, R, R, 3]`, row-major.

    Raises:
      ValueError: `interpolation` is not one of `INTERPOLATIONS`.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"Unknown interpolation {interpolation!r}; use one of {INTERPOLATIONS}.")
    weights = np.linspace(0.0, 1.0, steps)
    ends = seeded_latents(seed + np.arange(2, dtype=np.int64), generator.dim_z, truncation)
    path = (slerp if interpolation == "slerp" else lerp)(ends[0], ends[1], weights)
    z = np.tile(path, [len(class_ids), 1])
    y = np.repeat(np.asarray(class_ids, np.int32), steps)
    return generate(generator, z, y, batch_size)


def interpolate_class(
    generator, class_a, class_b, rows, steps, truncation=1.0, seed=0, batch_size=32
):
    """One row per latent, `steps` columns mixing the labels `(1 - w) a + w b` (one-hot).

    Args:
      generator: a `biggan.Generator`.
      class_a: the class of the first column.
      class_b: the class of the last column.
      rows: latents, of seeds `seed`, ..., `seed + rows - 1`.
      steps: columns, both ends included (weights `w` from 0 to 1).
      truncation: latent truncation.
      seed: the seed of the first row's latent.
      batch_size: images per generator call.

    Returns:
      float32 `[rows * steps, R, R, 3]`, row-major.
    """
    weights = np.linspace(0.0, 1.0, steps)
    seeds = seed + np.arange(rows, dtype=np.int64)
    z = np.repeat(seeded_latents(seeds, generator.dim_z, truncation).numpy(), steps, axis=0)
    one_hot = np.eye(generator.num_classes, dtype=np.float32)[[class_a, class_b]]
    mixes = (1 - weights[:, None]) * one_hot[0] + weights[:, None] * one_hot[1]
    y = np.tile(mixes.astype(np.float32), [rows, 1])
    return generate(generator, z, y, batch_size)
