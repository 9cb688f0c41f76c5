"""Image helpers shared by the command-line tools: [-1, 1] floats -> uint8 grids -> PNG."""

import tensorflow as tf

from tf_cgan_transfer import run_safety


def to_uint8(images):
    """`[..., 3]` floats in [-1, 1] -> uint8 in [0, 255] (rounded, clipped)."""
    images = tf.clip_by_value(tf.convert_to_tensor(images, tf.float32), -1.0, 1.0)
    return tf.cast(tf.round((images + 1.0) * 127.5), tf.uint8)


def make_grid(images, rows, padding=2):
    """`[rows * cols, H, W, C]` -> one `[rows*(H+p)+p, cols*(W+p)+p, C]` uint8 sheet.

    Images fill the sheet row by row; `padding` pixels of black separate them.
    """
    images = to_uint8(images) if images.dtype != tf.uint8 else images
    n, h, w, c = images.shape
    if n % rows:
        raise ValueError(f"{n} images do not fill {rows} rows evenly.")
    cols = n // rows
    padded = tf.pad(images, [[0, 0], [padding, 0], [padding, 0], [0, 0]])
    grid = tf.reshape(padded, [rows, cols, h + padding, w + padding, c])
    grid = tf.reshape(
        tf.transpose(grid, [0, 2, 1, 3, 4]), [rows * (h + padding), cols * (w + padding), c]
    )
    return tf.pad(grid, [[0, padding], [0, padding], [0, 0]])


def write_png(path, image):
    """Writes a `[H, W, C]` uint8 image as PNG, creating parent directories.

    Written to `path.partial` and renamed: a kill mid-write leaves no truncated PNG.
    """
    png = tf.io.encode_png(image)
    run_safety.write_atomically(
        path, lambda partial: tf.io.write_file(partial, png), fault="sample_write"
    )
