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
    """`tensor` after checking its rank, its sizes and its batch size.

    Args:
      name: the input's name, in the messages.
      tensor: the signature's input (declared of unknown shape).
      shape: its expected shape, `[None, sizes...]` (None: the batch).
      max_batch: the largest batch allowed.

    Returns:
      `tensor`, of static shape `shape`, computed only after every check passed.
    """
    what = f"{name} must have shape {shape}".replace("None", "N")
    rank = len(shape)
    # Padded with ones, so indexing a tensor of too low a rank stays in bounds (the rank
    # check reports it).
    dims = tf.concat([tf.shape(tensor), tf.ones([rank], tf.int32)], axis=0)
    n = dims[0]
    checks = [
        tf.debugging.assert_equal(tf.rank(tensor), rank, what),
        tf.debugging.assert_positive(n, f"{name}: the batch is empty; send at least one"),
        tf.debugging.assert_less_equal(
            n, max_batch, f"{name}: batch over max_batch={max_batch} (set at export)"
        ),
    ]
    for axis, size in enumerate(shape[1:], start=1):
        checks.append(tf.debugging.assert_equal(dims[axis], size, what))
    # When a signature is called from Python, TensorFlow specialises its graph to the
    # request's shapes before running it, so an op after the checks that cannot take a
    # bad shape (a matmul, tf.ensure_shape) would fail first with a message naming
    # itself. The reshape's target sizes are PlaceholderWithDefaults, which that
    # specialisation does not fold: nothing after the checks sees the bad shape.
    sizes = [tf.compat.v1.placeholder_with_default(-1, [])]
    sizes += [tf.compat.v1.placeholder_with_default(size, []) for size in shape[1:]]
    tensor = tf.reshape(_checked(tensor, checks), tf.stack(sizes))
    tensor.set_shape(shape)
    return tensor
