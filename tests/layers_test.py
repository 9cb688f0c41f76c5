"""Tests of tf_cgan_transfer.layers against independent NumPy computations."""

import numpy as np
import tensorflow as tf

from tests import distribution
from tests.layer_references import assert_config_round_trip
from tests.layer_references import np_batch_norm
from tests.layer_references import np_conv_same
from tests.layer_references import np_spectral_normalize
from tf_cgan_transfer import layers


class SpectralNormTest(tf.test.TestCase):
    def test_matches_numpy_power_iteration(self):
        rng = np.random.default_rng(0)
        for shape in ([7, 5], [3, 3, 4, 6], [1, 1, 8, 2]):
            w = rng.normal(size=shape).astype(np.float32)
            u = rng.normal(size=[1, shape[-1]]).astype(np.float32)
            w_sn, u_new, sigma = layers.spectral_normalize(w, u)
            ref_w, ref_u, ref_sigma = np_spectral_normalize(w, u)
            self.assertAllClose(sigma, ref_sigma, rtol=1e-5)
            self.assertAllClose(w_sn, ref_w, rtol=1e-5, atol=1e-6)
            self.assertAllClose(u_new, ref_u, rtol=1e-5, atol=1e-6)

    def test_epsilon_is_inside_the_rsqrt(self):
        # Tiny weights make eps visible: x*rsqrt(|x|^2+eps) differs from x/max(|x|,eps).
        rng = np.random.default_rng(1)
        w = (1e-3 * rng.normal(size=[6, 4])).astype(np.float32)
        u = (1e-2 * rng.normal(size=[1, 4])).astype(np.float32)
        _, _, sigma = layers.spectral_normalize(w, u)
        self.assertAllClose(sigma, np_spectral_normalize(w, u)[2], rtol=1e-5)
        self.assertNotAllClose(sigma, np.linalg.svd(w, compute_uv=False)[0], rtol=1e-2)

    def test_clamp_style_divides_by_the_floored_norm(self):
        # Tiny vectors make the styles differ: clamp is x / max(|x|, eps) with eps a norm.
        rng = np.random.default_rng(11)
        w = (1e-4 * rng.normal(size=[6, 4])).astype(np.float32)
        u = rng.normal(size=[1, 4]).astype(np.float32)
        eps = 1e-3
        w_sn, u_new, sigma = layers.spectral_normalize(w, u, eps, "clamp")
        ref_w, ref_u, ref_sigma = np_spectral_normalize(w, u, eps, "clamp")
        self.assertAllClose(sigma, ref_sigma, rtol=1e-5)
        self.assertAllClose(u_new, ref_u, rtol=1e-5, atol=1e-7)
        self.assertNotAllClose(sigma, np_spectral_normalize(w, u, eps)[2], rtol=1e-2)
        # Far above the floor both styles agree (eps_rsqrt = eps_clamp^2).
        w = rng.normal(size=[6, 4]).astype(np.float32)
        self.assertAllClose(
            layers.spectral_normalize(w, u, 1e-6, "clamp")[2],
            layers.spectral_normalize(w, u, 1e-12)[2],
            rtol=1e-6,
        )
        with self.assertRaisesRegex(ValueError, "Unknown spectral-norm style"):
            layers.SNDense(3, norm_style="l2")

    def test_training_calls_converge_to_top_singular_value(self):
        rng = np.random.default_rng(2)
        layer = layers.SNDense(5, use_bias=False)
        x = tf.constant(rng.normal(size=[2, 9]), tf.float32)
        layer(x)
        for _ in range(60):
            layer(x, training=True)
        sigma = layers.spectral_normalize(layer.kernel, layer.u)[2]
        self.assertAllClose(
            sigma, np.linalg.svd(layer.kernel.numpy(), compute_uv=False)[0], rtol=1e-3
        )


class SNDenseTest(tf.test.TestCase):
    def test_output_and_u_update(self):
        rng = np.random.default_rng(3)
        layer = layers.SNDense(4)
        x = rng.normal(size=[3, 6]).astype(np.float32)
        layer(x)
        layer.bias.assign(rng.normal(size=[4]).astype(np.float32))
        w, u, b = layer.kernel.numpy(), layer.u.numpy(), layer.bias.numpy()
        ref_w, ref_u, _ = np_spectral_normalize(w, u)
        self.assertAllClose(layer(x), x @ ref_w + b, atol=1e-5)
        self.assertAllEqual(layer.u, u)  # inference leaves u alone
        self.assertAllClose(layer(x, training=True), x @ ref_w + b, atol=1e-5)
        self.assertAllClose(layer.u, ref_u, atol=1e-6)  # training advances u
        self.assertLen(layer.trainable_weights, 2)
        self.assertLen(layer.non_trainable_weights, 1)
        assert_config_round_trip(self, layer, x)

    def test_output_and_kernel_scaling_agree_in_value_and_gradient(self):
        # A batch smaller than the input width divides the outputs by sigma, a larger
        # one the kernel; both must be x (W / sigma) with the gradient through sigma.
        rng = np.random.default_rng(5)
        layer = layers.SNDense(4)
        layer.build([None, 16])
        for batch in (2, 40):
            x = tf.constant(rng.normal(size=[batch, 16]).astype(np.float32))
            weights = tf.constant(rng.normal(size=[batch, 4]).astype(np.float32))
            with tf.GradientTape(persistent=True) as tape:
                got = tf.reduce_sum(layer(x) * weights)
                reference_w = layers.spectral_normalize(layer.kernel, layer.u)[0]
                expected = tf.reduce_sum((tf.matmul(x, reference_w) + layer.bias) * weights)
            self.assertAllClose(got, expected, rtol=1e-5)
            self.assertAllClose(
                tape.gradient(got, layer.kernel), tape.gradient(expected, layer.kernel), atol=1e-5
            )

    def test_u_on_the_input_side_iterates_on_the_transposed_kernel(self):
        rng = np.random.default_rng(12)
        layer = layers.SNDense(3, use_bias=False, u_side="input", norm_style="clamp", epsilon=1e-6)
        x = rng.normal(size=[2, 5]).astype(np.float32)
        layer(x)
        self.assertEqual(layer.u.shape, [1, 5])
        w, u = layer.kernel.numpy(), layer.u.numpy()
        ref_wt, ref_u, _ = np_spectral_normalize(w.T, u, 1e-6, "clamp")
        self.assertAllClose(layer(x), x @ ref_wt.T, atol=1e-5)
        self.assertAllEqual(layer.u, u)
        layer(x, training=True)
        self.assertAllClose(layer.u, ref_u, atol=1e-6)
        assert_config_round_trip(self, layer, x)
        with self.assertRaisesRegex(ValueError, "Unknown u_side"):
            layers.SNDense(3, u_side="classes")


class SNConv2DTest(tf.test.TestCase):
    def test_matches_numpy_convolution(self):
        rng = np.random.default_rng(4)
        x = rng.normal(size=[2, 5, 6, 3]).astype(np.float32)
        for k in (1, 3):
            layer = layers.SNConv2D(4, k)
            layer(x)
            layer.bias.assign(rng.normal(size=[4]).astype(np.float32))
            ref_w, _, _ = np_spectral_normalize(layer.kernel.numpy(), layer.u.numpy())
            self.assertAllClose(layer(x), np_conv_same(x, ref_w) + layer.bias.numpy(), atol=1e-5)
            self.assertEqual(layer.kernel.shape, [k, k, 3, 4])
            assert_config_round_trip(self, layer, x)


class StandingBatchNormTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.rng = np.random.default_rng(5)
        self.x = (2.0 + 3.0 * self.rng.normal(size=[4, 3, 3, 5])).astype(np.float32)

    def test_training_uses_batch_moments(self):
        bn = layers.StandingBatchNorm()
        mean, var = self.x.mean((0, 1, 2)), self.x.var((0, 1, 2))
        self.assertAllClose(bn(self.x, training=True), np_batch_norm(self.x, mean, var), atol=1e-4)
        self.assertAllEqual(bn.accumulation_counter, 0.0)  # training alone accumulates nothing

    def test_inference_uses_standing_statistics_with_affine(self):
        bn = layers.StandingBatchNorm(scale=True, center=True)
        bn(self.x)
        mean, var = self.rng.normal(size=[5]), self.rng.uniform(0.5, 2.0, size=[5])
        gamma, beta = self.rng.normal(size=[5]), self.rng.normal(size=[5])
        bn.set_weights([gamma, beta, mean, var, 3.0])
        self.assertEqual(
            [w.name.split("/")[-1] for w in bn.weights],
            [
                "gamma:0",
                "beta:0",
                "accumulated_mean:0",
                "accumulated_var:0",
                "accumulation_counter:0",
            ],
        )
        self.assertAllClose(bn(self.x), np_batch_norm(self.x, mean, var) * gamma + beta, atol=1e-4)
        assert_config_round_trip(self, bn, self.x)

    def test_accumulate_averages_batch_moments(self):
        bn = layers.StandingBatchNorm()
        bn(self.x)
        bn.accumulated_mean.assign(np.full([5], 100.0, np.float32))
        bn.accumulation_counter.assign(9.0)
        bn.reset_standing_stats()
        batches = [self.x * s + s for s in (0.5, 1.0, 2.0)]
        for b in batches:
            out = bn(b, accumulate=True)
            self.assertAllClose(
                out, np_batch_norm(b, b.mean((0, 1, 2)), b.var((0, 1, 2))), atol=1e-4
            )
        self.assertAllClose(
            bn.accumulated_mean, np.mean([b.mean((0, 1, 2)) for b in batches], 0), rtol=1e-5
        )
        self.assertAllClose(
            bn.accumulated_var, np.mean([b.var((0, 1, 2)) for b in batches], 0), rtol=1e-5
        )
        self.assertAllEqual(bn.accumulation_counter, 3.0)

    def test_cross_replica_statistics_equal_full_batch(self):
        strategy = distribution.two_replica_strategy()
        with strategy.scope():
            bn = layers.StandingBatchNorm()
            bn.build(self.x.shape)
        halves = (self.x[:2], self.x[2:])

        @tf.function
        def step(dist_x):
            return strategy.run(lambda x: bn(x, training=True, accumulate=True), (dist_x,))

        dist_x = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(halves[ctx.replica_id_in_sync_group])
        )
        outputs = strategy.experimental_local_results(step(dist_x))
        full = np_batch_norm(self.x, self.x.mean((0, 1, 2)), self.x.var((0, 1, 2)))
        self.assertAllClose(np.concatenate(outputs), full, atol=1e-4)
        self.assertAllClose(bn.accumulated_mean, self.x.mean((0, 1, 2)), atol=1e-5)
        self.assertAllClose(bn.accumulated_var, self.x.var((0, 1, 2)), rtol=1e-5)


class SelfAttentionTest(tf.test.TestCase):
    def test_matches_numpy(self):
        rng = np.random.default_rng(8)
        x = rng.normal(size=[2, 4, 6, 16]).astype(np.float32)
        att = layers.SelfAttention()
        att(x)
        att.gamma.assign(0.7)
        w = {
            n: np_spectral_normalize(getattr(att, n).kernel.numpy(), getattr(att, n).u.numpy())[0][
                0, 0
            ]
            for n in ("theta", "phi", "g", "o_conv")
        }

        def pool(t):  # 2x2 max pool, stride 2
            b, h, wd, c = t.shape
            return t.reshape(b, h // 2, 2, wd // 2, 2, c).max((2, 4))

        theta = (x @ w["theta"]).reshape(2, 24, 2)
        phi = pool(x @ w["phi"]).reshape(2, 6, 2)
        g = pool(x @ w["g"]).reshape(2, 6, 8)
        logits = theta @ phi.transpose(0, 2, 1)
        att_map = np.exp(logits - logits.max(-1, keepdims=True))
        att_map /= att_map.sum(-1, keepdims=True)
        o = (att_map @ g).reshape(2, 4, 6, 8)
        self.assertAllClose(att(x), x + 0.7 * (o @ w["o_conv"]), atol=1e-5)
        assert_config_round_trip(self, att, x)

    def test_rejects_channels_not_divisible_by_8(self):
        with self.assertRaisesRegex(ValueError, "divisible by 8, got 12.*attention_resolution=0"):
            layers.SelfAttention()(tf.zeros([1, 4, 4, 12]))


if __name__ == "__main__":
    tf.test.main()


class _TensorBranch(tf.keras.layers.Layer):
    """Branches on a tensor: only AutoGraph makes this traceable."""

    def call(self, x, training=False):
        if tf.reduce_sum(x) > 0:
            return x
        return -x


class _Outer(tf.keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = _TensorBranch()

    @layers.without_autograph
    def call(self, x, training=False, scale=1.0):
        return self.inner(x, training=training) * scale


class WithoutAutographTest(tf.test.TestCase):
    def test_nothing_the_marked_call_reaches_is_converted(self):
        x = tf.constant([-1.0, -2.0])
        # Converted (an unmarked layer in a tf.function): the branch becomes a tf.cond.
        self.assertAllEqual(tf.function(lambda x: _TensorBranch()(x))(x), [1.0, 2.0])
        # Eagerly the marked layer works; traced, the inner layer is reached unconverted,
        # so its tensor branch fails: proof that AutoGraph left the whole call alone.
        outer = _Outer()
        self.assertAllEqual(outer(x, scale=2.0), [2.0, 4.0])
        with self.assertRaises(tf.errors.OperatorNotAllowedInGraphError):
            tf.function(lambda x: outer(x))(x)

    def test_keras_still_sees_the_signature(self):
        spec = _Outer()._call_spec
        self.assertEqual(spec.arg_names, ["x", "training", "scale"])
        self.assertTrue(spec.expects_training_arg)
