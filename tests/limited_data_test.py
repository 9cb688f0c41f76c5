"""Tests of tf_cgan_transfer.limited_data: DiffAugment's ops against NumPy, gradients
through them, the policy and settings checks, and LeCam's penalty and averages.

How the training step uses them (streams, resume, replicas, precisions) is tested in
tests/train_step_test.py and tests/trainer_test.py.
"""

import numpy as np
import tensorflow as tf

from tests.augment_references import np_apply, np_cutout
from tests.model_fixtures import tiny_generator
from tf_cgan_transfer import limited_data
from tf_cgan_transfer import train_step

R = 32


def _key(seed):
    return train_step.stream_key(seed, 0, train_step.D_REAL_AUGMENT_STREAM, 0)


def _images(batch=6, seed=0, resolution=R):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, [batch, resolution, resolution, 3]).astype(np.float32)


class DrawTest(tf.test.TestCase):
    def test_parameters_cover_their_ranges(self):
        params = {
            k: v.numpy()
            for k, v in limited_data.draw(_key(1), 4096, R, limited_data.POLICIES).items()
        }
        self.assertEqual(
            set(params), {"brightness", "saturation", "contrast", "translation", "cutout"}
        )
        for name, low, high in (
            ("brightness", -0.5, 0.5),
            ("saturation", 0, 2),
            ("contrast", 0.5, 1.5),
        ):
            self.assertEqual(params[name].shape, (4096,))
            self.assertGreaterEqual(params[name].min(), low)
            self.assertLess(params[name].max(), high)
            self.assertAllClose(params[name].mean(), (low + high) / 2, atol=0.05)
        # Shift 1/8 of 32 = 4 pixels, each integer in [-4, 4] drawn; centres 0..32 (side 16).
        self.assertEqual(limited_data.translation_shift(R), 4)
        self.assertEqual(limited_data.cutout_size(R), 16)
        self.assertAllEqual(np.unique(params["translation"]), np.arange(-4, 5))
        self.assertAllEqual(np.unique(params["cutout"]), np.arange(0, 33))
        self.assertEqual(params["translation"].shape, (4096, 2))
        # Rows and columns are drawn independently.
        self.assertLess(abs(np.corrcoef(params["cutout"].T)[0, 1]), 0.1)

    def test_same_key_same_draws_and_other_key_other_draws(self):
        a = limited_data.draw(_key(1), 8, R, ("color", "cutout"))
        b = limited_data.draw(_key(1), 8, R, ("color", "cutout"))
        c = limited_data.draw(_key(2), 8, R, ("color", "cutout"))
        self.assertEqual(set(a), {"brightness", "saturation", "contrast", "cutout"})
        for name in a:
            self.assertAllEqual(a[name], b[name])
            self.assertNotAllEqual(a[name], c[name])
        # Each op's draw depends on the key alone, not on the rest of the policy.
        alone = limited_data.draw(_key(1), 8, R, ("cutout",))
        self.assertAllEqual(alone["cutout"], a["cutout"])

    def test_replica_slice(self):
        params = limited_data.draw(_key(3), 8, R, limited_data.POLICIES)
        half = limited_data.replica_slice(params, 4, 4)
        for name in params:
            self.assertAllEqual(half[name], params[name][4:8])


class OpsTest(tf.test.TestCase):
    def _check(self, policy, seed):
        x = _images(seed=seed)
        params = limited_data.draw(_key(seed), len(x), R, policy)
        got = limited_data.apply(tf.constant(x), params, policy)
        expected = np_apply(x, {k: v.numpy() for k, v in params.items()}, policy)
        self.assertAllClose(got, expected, atol=1e-5)
        self.assertNotAllClose(got, x)
        return got.numpy()

    def test_color_matches_numpy(self):
        self._check(("color",), seed=1)

    def test_translation_matches_numpy_with_zero_padding(self):
        got = self._check(("translation",), seed=2)
        params = limited_data.draw(_key(2), 6, R, ("translation",))["translation"].numpy()
        # An image moved down by dy > 0 has dy rows of zeros on top.
        b = int(np.argmax(params[:, 0]))
        self.assertAllEqual(got[b, : params[b, 0]], np.zeros_like(got[b, : params[b, 0]]))

    def test_cutout_matches_numpy(self):
        got = self._check(("cutout",), seed=3)
        zeros = (got == 0).all(axis=3).sum(axis=(1, 2))
        self.assertTrue(np.all(zeros > 0) and np.all(zeros <= 16 * 16))

    def test_cutout_of_an_odd_side_and_at_the_border(self):
        x = _images(batch=3, resolution=8)
        centres = np.array([[0, 0], [7, 3], [4, 4]], np.int32)
        got = limited_data.cut_out(tf.constant(x), tf.constant(centres), 3)
        self.assertAllEqual(got, np_cutout(x, centres, 3))
        self.assertEqual(int((got.numpy()[0] == 0).all(axis=2).sum()), 4)  # a 2x2 corner

    def test_full_policy_and_listed_order(self):
        self._check(limited_data.POLICIES, seed=4)
        self._check(("cutout", "translation", "color"), seed=5)

    def test_empty_policy_is_the_identity(self):
        x = tf.constant(_images())
        self.assertIs(limited_data.apply(x, {}, ()), x)
        self.assertIs(limited_data.apply(x, None, ()), x)


class GradientTest(tf.test.TestCase):
    """G's gradient flows through every op: non-zero, and the finite difference."""

    def test_gradient_equals_a_finite_difference_in_float64(self):
        rng = np.random.default_rng(0)
        base, direction, weights = (rng.normal(size=[4, R, R, 3]) for _ in range(3))
        for policy in (("color",), ("translation",), ("cutout",), limited_data.POLICIES):
            params = limited_data.draw(_key(7), 4, R, policy)

            def loss(theta):
                images = tf.tanh(base + theta * direction)
                return tf.reduce_sum(weights * limited_data.apply(images, params, policy))

            theta = tf.constant(0.3, tf.float64)
            with tf.GradientTape() as tape:
                tape.watch(theta)
                value = loss(theta)
            grad = tape.gradient(value, theta)
            eps = 1e-6
            numeric = (loss(theta + eps) - loss(theta - eps)) / (2 * eps)
            self.assertNotEqual(float(grad), 0.0, msg=policy)
            self.assertAllClose(grad, numeric, rtol=1e-6, msg=policy)

    def test_gradient_reaches_a_tiny_generator(self):
        tf.keras.utils.set_random_seed(0)
        g = tiny_generator(32).build_weights()
        z = tf.random.normal([4, g.dim_z])
        labels = tf.constant([0, 1, 2, 0])
        weights = tf.random.normal([4, R, R, 3])
        # The output BN's offset: not spectrally normalised (SN's gradient treats the
        # power-iteration vector as constant, which a finite difference does not).
        beta = g.ScaledCrossReplicaBN.beta
        direction = tf.random.normal(beta.shape)
        start = beta.numpy()
        for policy in (("color",), ("translation",), ("cutout",)):
            params = limited_data.draw(_key(8), 4, R, policy)

            def loss():  # inference mode: no statistics or power-iteration updates
                images = g((z, labels), training=False)
                return tf.reduce_sum(weights * limited_data.apply(images, params, policy))

            with tf.GradientTape() as tape:
                value = loss()
            *grads, beta_grad = tape.gradient(value, [*g.trainable_variables, beta])
            self.assertGreater(float(tf.linalg.global_norm(grads)), 0.0, msg=policy)
            directional = float(tf.reduce_sum(beta_grad * direction))
            eps = 1e-4  # G is strongly curved here (ReLU kinks, tanh): a small step
            beta.assign(start + eps * direction)
            up = float(loss())
            beta.assign(start - eps * direction)
            down = float(loss())
            beta.assign(start)
            self.assertNotEqual(directional, 0.0)
            self.assertAllClose((up - down) / (2 * eps), directional, rtol=2e-2, msg=policy)


class SettingsTest(tf.test.TestCase):
    def test_parse_policy(self):
        self.assertEqual(limited_data.parse_policy("color, cutout"), ("color", "cutout"))
        self.assertEqual(limited_data.parse_policy(["translation"]), ("translation",))
        with self.assertRaisesRegex(limited_data.LimitedDataError, r"'colour'.*choose from color"):
            limited_data.parse_policy("colour,cutout")
        with self.assertRaisesRegex(limited_data.LimitedDataError, "twice"):
            limited_data.parse_policy("cutout,cutout")
        with self.assertRaisesRegex(limited_data.LimitedDataError, "empty.*--augment=none"):
            limited_data.parse_policy(" , ")

    def test_check(self):
        self.assertEqual(limited_data.check("none", "bogus", 0.0, 0.99), ())
        self.assertEqual(limited_data.check("diffaugment", "cutout", 0.0, 0.99), ("cutout",))
        for args, message in (
            (("flip", "cutout", 0.0, 0.99), "--augment='flip'"),
            (("none", "", -1.0, 0.99), "--lecam_weight=-1.0 must be >= 0"),
            (("none", "", float("nan"), 0.99), "--lecam_weight=nan"),
            (("none", "", 0.1, 1.0), r"--lecam_decay=1.0 must be in \[0, 1\)"),
        ):
            with self.assertRaisesRegex(limited_data.LimitedDataError, message):
                limited_data.check(*args)

    def test_describe(self):
        self.assertEqual(
            limited_data.describe("diffaugment", ("color", "cutout"), 0.3),
            "diffaugment(color,cutout), LeCam 0.3 (decay 0.99)",
        )
        self.assertEqual(limited_data.describe("none", (), 0.0), "no augmentation, no LeCam")


class LeCamTest(tf.test.TestCase):
    def test_penalty_matches_numpy(self):
        rng = np.random.default_rng(0)
        real, fake = rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)
        expected = np.mean((real - -0.5) ** 2) + np.mean((fake - 1.5) ** 2)
        self.assertAllClose(limited_data.lecam_penalty(real, fake, 1.5, -0.5), expected)
        # Two replicas' sums over the global batch add up to the mean.
        halves = [
            limited_data.lecam_penalty(real[i : i + 4], fake[i : i + 4], 1.5, -0.5, 8)
            for i in (0, 4)
        ]
        self.assertAllClose(sum(halves), expected)

    def test_averages_over_three_updates_match_numpy(self):
        averages = limited_data.LeCamAverages(decay=0.9)
        means = [(2.0, -1.0), (1.0, -3.0), (4.0, 0.5)]
        self.assertAllEqual(averages.anchors(), (0.0, 0.0, 0.0))  # inactive until updated
        real = fake = None
        for step, (r, f) in enumerate(means):
            averages.update(tf.constant(r), tf.constant(f))
            # The first update copies; later ones decay.
            real = r if step == 0 else 0.9 * real + 0.1 * r
            fake = f if step == 0 else 0.9 * fake + 0.1 * f
            self.assertAllClose(averages.anchors(), (real, fake, 1.0))
        self.assertEqual(int(averages.updates.numpy()), 3)
        self.assertLen(averages.trainable_variables, 0)
        self.assertLen(averages.variables, 3)  # all three are checkpointed


if __name__ == "__main__":
    tf.test.main()
