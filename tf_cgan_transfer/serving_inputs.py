"""In-graph checks of what a served signature receives (`serving.ServingModule`).

The model server feeds a request's tensors to a signature's placeholders without
checking their shapes against the signature, so every check lives in the graph: each
failure is an INVALID_ARGUMENT whose message names the input, and nothing downstream
runs on a bad tensor.
"""

import tensorflow as tf


def check_labels(label, num_classes):
    """Assertions that every label is in [0, num_classes)."""
    return [
        tf.debugging.assert_greater_equal(label, 0, message=f"label must be in [0, {num_classes})"),
        tf.debugging.assert_less(
            label, num_classes, message=f"label must be in [0, {num_classes})"
        ),
    ]


def same_batch(tensors, message):
    """Assertions that `tensors` share their first dimension."""
    first = tf.shape(tensors[0])[0]
    return [tf.debugging.assert_equal(tf.shape(t)[0], first, message=message) for t in tensors[1:]]


def _checked(tensor, checks):
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


def batch_of(name, tensor, shape, max_batch):
    """`tensor` after checking its rank, width and batch size; shape `[N, ...]` then known.

    The rank is checked first (alone): the other checks index the shape.
    """
    what = f"{name} must have shape {shape}".replace("None", "N")
    tensor = _checked(tensor, [tf.debugging.assert_equal(tf.rank(tensor), len(shape), what)])
    dims = tf.shape(tensor)
    n = dims[0]
    checks = [
        tf.debugging.assert_positive(n, f"{name}: the batch is empty; send at least one"),
        tf.debugging.assert_less_equal(
            n, max_batch, f"{name}: batch over max_batch={max_batch} (set at export)"
        ),
    ]
    for axis, size in enumerate(shape[1:], start=1):
        checks.append(tf.debugging.assert_equal(dims[axis], size, what))
    return tf.ensure_shape(_checked(tensor, checks), shape)
