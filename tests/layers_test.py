"""Tests of tf_cgan_transfer.layers against independent NumPy computations."""

import numpy as np
import tensorflow as tf

from tests import distribution
from tf_cgan_transfer import layers

EPS = 1e-4


def np_spectral_normalize(w, u, eps=EPS):
    """BIGGAN_TFHUB_LAYOUT.md §4 in float64 NumPy: one power iteration from u."""
    m = w.reshape(-1, w.shape[-1]).astype(np.float64)
    v = u.astype(np.float64) @ m.T
    v = v / np.sqrt(np.sum(v**2) + eps)
    u_new = v @ m
    u_new = u_new / np.sqrt(np.sum(u_new**2) + eps)
    sigma = ((v @ m) @ u_new.T).item()
    return w / sigma, u_new, sigma


def np_conv_same(x, k):
    """Naive stride-1 SAME convolution, NHWC x HWIO, float64."""
    kh, kw = k.shape[:2]
    ph, pw = kh // 2, kw // 2
    xp = np.pad(x, [(0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)])
    out = np.zeros(x.shape[:3] + (k.shape[-1],))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i : i + x.shape[1], j : j + x.shape[2], :] @ k[i, j]
    return out


def np_batch_norm(x, mean, var, eps=EPS):
    return (x - mean) / np.sqrt(var + eps)


def assert_config_round_trip(test, layer, *args, **kwargs):
    """Rebuilt from get_config with the same weights, the layer computes the same."""
    clone = layer.__class__.from_config(layer.get_config())
    test.assertEqual(clone.get_config(), layer.get_config())
    clone(*args, **kwargs)
    clone.set_weights(layer.get_weights())
    test.assertAllClose(clone(*args, **kwargs), layer(*args, **kwargs), atol=1e-6)


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


class ConditionalBatchNormTest(tf.test.TestCase):
    def test_shared_embedding_hyper_bn(self):
        rng = np.random.default_rng(6)
        x = rng.normal(size=[3, 4, 4, 6]).astype(np.float32)
        z = rng.normal(size=[3, 2]).astype(np.float32)
        e = rng.normal(size=[3, 5]).astype(np.float32)
        cbn = layers.ConditionalBatchNorm()
        cbn(x, z_chunk=z, class_code=e)
        self.assertEqual(cbn.gamma.kernel.shape, [7, 6])  # rows: [z chunk ; embedding]
        mean, var = rng.normal(size=[6]), rng.uniform(0.5, 1.5, size=[6])
        cbn.bn.accumulated_mean.assign(mean)
        cbn.bn.accumulated_var.assign(var)
        c = np.concatenate([z, e], 1)
        w_g = np_spectral_normalize(cbn.gamma.kernel.numpy(), cbn.gamma.u.numpy())[0]
        w_b = np_spectral_normalize(cbn.beta.kernel.numpy(), cbn.beta.u.numpy())[0]
        gain, bias = 1 + c @ w_g, c @ w_b
        expected = np_batch_norm(x, mean, var) * gain[:, None, None] + bias[:, None, None]
        self.assertAllClose(cbn(x, z_chunk=z, class_code=e), expected, atol=1e-4)
        assert_config_round_trip(self, cbn, x, z_chunk=z, class_code=e)

    def test_per_class_tables(self):
        rng = np.random.default_rng(7)
        x = rng.normal(size=[4, 2, 2, 3]).astype(np.float32)
        labels = np.array([0, 2, 1, 2])
        y = np.eye(3, dtype=np.float32)[labels]
        cbn = layers.ConditionalBatchNorm(shared_embedding=False)
        self.assertAllClose(
            cbn(x, class_code=y, training=True),
            np_batch_norm(x, x.mean((0, 1, 2)), x.var((0, 1, 2))),
            atol=1e-4,
        )
        table_g, table_b = rng.normal(size=[3, 3]), rng.normal(size=[3, 3])
        cbn.gamma.kernel.assign(table_g)
        cbn.beta.kernel.assign(table_b)
        expected = (
            np_batch_norm(x, x.mean((0, 1, 2)), x.var((0, 1, 2)))
            * (1 + table_g[labels])[:, None, None]
            + table_b[labels][:, None, None]
        )
        self.assertAllClose(cbn(x, class_code=y, training=True), expected, atol=1e-4)


class KnowledgePropagationBatchNormTest(tf.test.TestCase):
    def test_matches_the_method_formula(self):
        rng = np.random.default_rng(9)
        k, n, dz, c = 4, 3, 2, 5
        x = rng.normal(size=[3, 2, 2, c]).astype(np.float32)
        z = rng.normal(size=[3, dz]).astype(np.float32)
        labels = np.array([2, 0, 1])
        y = np.eye(n, dtype=np.float32)[labels]
        bn = layers.KnowledgePropagationBatchNorm(k, n, z_dim=dz, residual_init="orthogonal")
        bn(x, z_chunk=z, class_code=y)
        values = {}
        for w in (bn.P_gamma, bn.P_beta, bn.Wz_gamma, bn.Wz_beta, bn.A_gamma.bias, bn.A_beta.bias):
            w.assign(rng.normal(size=w.shape).astype(np.float32))
        mean, var = rng.normal(size=[c]), rng.uniform(0.5, 1.5, size=[c])
        bn.bn.accumulated_mean.assign(mean)
        bn.bn.accumulated_var.assign(var)
        for part in ("gamma", "beta"):
            a = getattr(bn, f"A_{part}")
            a_sn = np_spectral_normalize(a.kernel.numpy(), a.u.numpy())[0]  # [N, K]
            w_mix = y @ a_sn + a.bias.numpy()  # A y_n + bias, [B, K]
            values[part] = (
                w_mix @ getattr(bn, f"P_{part}").numpy()
                + z @ getattr(bn, f"Wz_{part}").numpy()
                + y @ getattr(bn, f"R_{part}").numpy()
            )
        expected = (
            np_batch_norm(x, mean, var) * (1 + values["gamma"])[:, None, None]
            + values["beta"][:, None, None]
        )
        self.assertAllClose(bn(x, z_chunk=z, class_code=y), expected, atol=1e-4)
        names = sorted(w.name for w in bn.trainable_weights)
        self.assertLen(names, 10)  # P, W^z, R (x2) and A's kernel + bias (x2)
        assert_config_round_trip(self, bn, x, z_chunk=z, class_code=y)

    def test_bn_only_has_no_mixture(self):
        bn = layers.KnowledgePropagationBatchNorm(4, 3, use_mixture=False)
        x = tf.random.normal([2, 2, 2, 5])
        out = bn(x, class_code=tf.one_hot([0, 2], 3), training=True)
        self.assertIsNone(bn.A_gamma)
        self.assertEqual(
            sorted(w.name.split("/")[-1] for w in bn.trainable_weights), ["R_beta:0", "R_gamma:0"]
        )
        self.assertAllClose(
            out,
            np_batch_norm(x.numpy(), x.numpy().mean((0, 1, 2)), x.numpy().var((0, 1, 2))),
            atol=1e-4,
        )

    def test_unknown_residual_init(self):
        with self.assertRaisesRegex(ValueError, "Unknown residual_init 'random'"):
            layers.KnowledgePropagationBatchNorm(4, 3, residual_init="random")


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
