"""Tests of tf_cgan_transfer.train_step: latent streams and the EMA copy.

The replica steps themselves are exercised through the trainer (tests/trainer_test.py:
2-replica equivalence, resume, precision, frozen-layer gradients).
"""

import itertools

import numpy as np
import tensorflow as tf

from tests.model_fixtures import tiny_generator
from tf_cgan_transfer import biggan
from tf_cgan_transfer import train_step


class LatentStreamTest(tf.test.TestCase):
    def test_keys_never_collide_across_steps_streams_and_micro_batches(self):
        keys = {}
        for step, stream, micro in itertools.product(
            range(3), (train_step.D_STREAM, train_step.G_STREAM), (0, 1, 10, 100, 101)
        ):
            key = tuple(train_step.stream_key(7, step, stream, micro).numpy())
            self.assertNotIn(key, keys, f"{(step, stream, micro)} collides with {keys.get(key)}")
            keys[key] = (step, stream, micro)
        # The old arithmetic seeds (step * 1000 + micro * 10 + salt) collided here.
        self.assertNotAllEqual(
            train_step.stream_key(7, 0, train_step.D_STREAM, 100),
            train_step.stream_key(7, 1, train_step.D_STREAM, 0),
        )

    def test_keys_are_folded_in_order_and_reproducible(self):
        key = train_step.stream_key(5, 3, train_step.G_STREAM, 2)
        expected = tf.constant([5, 0], tf.int64)
        for data in (3, train_step.G_STREAM, 2):
            expected = tf.random.experimental.stateless_fold_in(
                expected, tf.constant(data, tf.int64), alg="philox"
            )
        self.assertAllEqual(key, expected)
        self.assertAllEqual(key, train_step.stream_key(5, 3, train_step.G_STREAM, 2))
        self.assertNotAllEqual(key, train_step.stream_key(6, 3, train_step.G_STREAM, 2))

    def test_latents_and_labels_are_independent_draws_of_the_key(self):
        key = train_step.stream_key(1, 0, train_step.D_STREAM, 0)
        z, labels = train_step.draw_latents(key, 64, 8, 5)
        z_key = tf.random.experimental.stateless_fold_in(
            key, tf.constant(0, tf.int64), alg="philox"
        )
        self.assertAllEqual(z, biggan.sample_z(64, 8, 1.0, z_key))
        self.assertEqual(labels.dtype, tf.int32)
        self.assertAllInRange(labels, 0, 4)
        self.assertLen(np.unique(labels.numpy()), 5)  # 64 uniform draws hit all 5 classes


class EmaTest(tf.test.TestCase):
    def test_ema_generator_is_an_equal_copy(self):
        g = tiny_generator(32, ch=8, dim_z=8).build_weights()
        ema = train_step.make_ema_generator(g)
        self.assertIsNot(ema, g)
        self.assertEqual(ema.get_config(), g.get_config())
        z, y = biggan.sample_z(2, 8, seed=3), tf.constant([0, 1])
        self.assertAllEqual(ema((z, y)), g((z, y)))


if __name__ == "__main__":
    tf.test.main()
