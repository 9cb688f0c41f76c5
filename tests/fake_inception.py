"""Fake TF-GAN Inception modules (`tensorflow/tfgan/eval/inception/1`) for offline tests.

The real module cannot be downloaded here (docs/dependencies.md §3), so tests use
SavedModels with its interface: float32 images `[N, S, S, 3]` in [-1, 1] (S = 299) in,
a dict with `pool_3` `[N, 1, 1, 2048]` and `logits` `[N, 1008]` out. Two forms:

* `write_tf2_module`: a `tf.Module` whose `__call__` is the network, saved with
  `tf.saved_model.save` (the loaded object is callable, like TF-GAN's own test fake).
* `write_tf1_hub_module`: a TF1 Hub format module (`hub.create_module_spec`) with one
  `default` signature (input `images`); `hub.load` gives an object that is *not*
  callable, only `signatures["default"]` is.

Both compute the same cheap, deterministic function of the image, so different image
sets get different statistics:

    x      = average-pool(images, window S // 13) flattened      [N, F]
    pool_3 = softplus(x @ W1 + b1)                                [N, pool_dim]
    logits = (pool_3 - 0.5) @ W2                                  [N, logits_dim]

with `W1, b1, W2` drawn from `np.random.default_rng(seed)` (see `make_weights`);
`reference_outputs` is the same function in NumPy.
"""

import os

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

IMAGE_SIZE = 299
POOL_DIM = 2048
LOGITS_DIM = 1008
_GRID = 13  # pooled grid side: 299 // 23 = 13


def _window(image_size):
    return max(1, image_size // _GRID)


def make_weights(image_size=IMAGE_SIZE, pool_dim=POOL_DIM, logits_dim=LOGITS_DIM, seed=0):
    """`{"w1", "b1", "w2"}` float32 NumPy arrays of the fake network."""
    side = image_size // _window(image_size)
    features = side * side * 3
    rng = np.random.default_rng(seed)
    return dict(
        w1=(rng.normal(size=[features, pool_dim]) * 4.0 / np.sqrt(features)).astype(np.float32),
        b1=rng.normal(0.0, 0.5, size=[pool_dim]).astype(np.float32),
        w2=(rng.normal(size=[pool_dim, logits_dim]) * 8.0 / np.sqrt(pool_dim)).astype(np.float32),
    )


def _forward(images, w1, b1, w2, image_size):
    """The fake network in TF ops: `{"pool_3": [N, 1, 1, P], "logits": [N, L]}`."""
    window = _window(image_size)
    x = tf.nn.avg_pool2d(images, window, window, "VALID")
    x = tf.reshape(x, [tf.shape(x)[0], w1.shape[0]])
    pool = tf.math.softplus(tf.matmul(x, w1) + b1)
    logits = tf.matmul(pool - 0.5, w2)
    return {"pool_3": pool[:, None, None, :], "logits": logits}


def reference_outputs(images, weights, image_size=IMAGE_SIZE):
    """float64 NumPy version of the network: `(pool_3 [N, P], logits [N, L])`."""
    images = np.asarray(images, np.float64)
    window = _window(image_size)
    side = image_size // window
    n = images.shape[0]
    cropped = images[:, : side * window, : side * window, :]
    x = cropped.reshape(n, side, window, side, window, 3).mean(axis=(2, 4)).reshape(n, -1)
    pool = np.logaddexp(0.0, x @ weights["w1"] + weights["b1"])
    return pool, (pool - 0.5) @ weights["w2"]


class _FakeInception(tf.Module):
    def __init__(self, weights, image_size):
        super().__init__(name="fake_inception")
        self._image_size = image_size
        self.w1 = tf.Variable(weights["w1"], name="w1")
        self.b1 = tf.Variable(weights["b1"], name="b1")
        self.w2 = tf.Variable(weights["w2"], name="w2")
        self.__call__ = tf.function(
            self._call,
            input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32)],
        )

    def _call(self, images):
        return _forward(images, self.w1, self.b1, self.w2, self._image_size)


def write_tf2_module(export_dir, image_size=IMAGE_SIZE, seed=0, **dims):
    """Saves the callable TF2 form to `export_dir`; returns its weights.

    Args:
      export_dir: directory to write (created).
      image_size: the spatial size of the input signature.
      seed: weight seed; the same seed gives the same network in both forms.
      **dims: `pool_dim`, `logits_dim` (defaults 2048, 1008).
    """
    weights = make_weights(image_size, seed=seed, **dims)
    tf.saved_model.save(_FakeInception(weights, image_size), export_dir)
    return weights


def write_tf1_hub_module(export_dir, image_size=IMAGE_SIZE, seed=0, **dims):
    """Exports the TF1 Hub format (`default` signature only) to `export_dir`; returns weights.

    Builds the graph with `hub.create_module_spec` in graph mode (tensorflow_hub 0.15.0),
    with the weights as variables, as a real TF1 Hub module stores them.
    """
    weights = make_weights(image_size, seed=seed, **dims)

    def module_fn():
        variables = {
            name: tf.compat.v1.get_variable(
                name, shape=value.shape, initializer=tf.compat.v1.zeros_initializer()
            )
            for name, value in weights.items()
        }
        images = tf.compat.v1.placeholder(tf.float32, [None, image_size, image_size, 3])
        outputs = _forward(images, variables["w1"], variables["b1"], variables["w2"], image_size)
        hub.add_signature(inputs={"images": images}, outputs=outputs)

    with tf.Graph().as_default():
        spec = hub.create_module_spec(module_fn)
        module = hub.Module(spec)
        feeds, assigns = {}, []
        for name, value in weights.items():
            placeholder = tf.compat.v1.placeholder(tf.float32, value.shape)
            feeds[placeholder] = value
            assigns.append(module.variable_map[name].assign(placeholder))
        with tf.compat.v1.Session() as session:
            session.run(assigns, feeds)
            module.export(export_dir, session)
    if not tf.io.gfile.exists(os.path.join(export_dir, "tfhub_module.pb")):
        raise AssertionError(f"{export_dir} is not a TF1 Hub module")
    return weights
