"""Tests of tf_cgan_transfer.conditional_bn against independent NumPy computations."""

import numpy as np
import tensorflow as tf

from tests.layer_references import assert_config_round_trip
from tests.layer_references import np_batch_norm
from tests.layer_references import np_spectral_normalize
from tf_cgan_transfer import conditional_bn


class ConditionalBatchNormTest(tf.test.TestCase):
    def test_shared_embedding_hyper_bn(self):
        rng = np.random.default_rng(6)
        x = rng.normal(size=[3, 4, 4, 6]).astype(np.float32)
        z = rng.normal(size=[3, 2]).astype(np.float32)
        e = rng.normal(size=[3, 5]).astype(np.float32)
        cbn = conditional_bn.ConditionalBatchNorm()
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
        cbn = conditional_bn.ConditionalBatchNorm(shared_embedding=False)
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
        bn = conditional_bn.KnowledgePropagationBatchNorm(
            k, n, z_dim=dz, residual_init="orthogonal"
        )
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
        bn = conditional_bn.KnowledgePropagationBatchNorm(4, 3, use_mixture=False)
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
            conditional_bn.KnowledgePropagationBatchNorm(4, 3, residual_init="random")


class MixtureOptionsTest(tf.test.TestCase):
    """A's initialisers, spectral norm on/off and `set_mixtures`, k = 4 old, n = 3 new."""

    def _layer(self, **kwargs):
        bn = conditional_bn.KnowledgePropagationBatchNorm(4, 3, **kwargs)
        bn(tf.random.normal([2, 2, 2, 5]), class_code=tf.one_hot([0, 2], 3))
        return bn

    def _weights(self, bn):
        return [w.numpy() for w in bn.mixture_weights(tf.eye(3))]

    def test_initialisers_without_spectral_norm(self):
        for init, expected in (("zeros", np.zeros([3, 4])), ("uniform", np.full([3, 4], 0.25))):
            bn = self._layer(mixture_init=init, mixture_spectral_norm=False)
            self.assertNotIn("u", [w.name.split("/")[-1][:-2] for w in bn.weights])
            for weights in self._weights(bn):
                self.assertAllClose(weights, expected)
        small = self._layer(mixture_init="small", mixture_spectral_norm=False)
        gram = small.A_gamma.kernel.numpy() @ small.A_gamma.kernel.numpy().T
        self.assertAllClose(gram, 1e-4 * np.eye(3), atol=1e-9)  # orthogonal rows, norm 0.01

    def test_set_mixtures_exact_without_and_scaled_with_spectral_norm(self):
        prior = np.random.default_rng(0).dirichlet(np.ones(4), size=3)
        plain = self._layer(mixture_init="prior", mixture_spectral_norm=False)
        plain.set_mixtures(prior)
        for weights in self._weights(plain):
            self.assertAllClose(weights, prior, atol=1e-6)
        sn = self._layer(mixture_init="prior")
        sn.set_mixtures(prior)
        # sigma as the layer's power iteration computes it, from the top singular vector.
        sigma = np_spectral_normalize(prior, np.linalg.svd(prior)[2][:1])[2]
        self.assertAllClose(sigma, np.linalg.svd(prior, compute_uv=False)[0], rtol=1e-3)
        for weights in self._weights(sn):
            self.assertAllClose(weights, prior / sigma, atol=1e-5)
        assert_config_round_trip(
            self, sn, tf.random.normal([2, 2, 2, 5]), class_code=tf.one_hot([0, 2], 3)
        )
        self.assertEqual(sn.get_config()["mixture_init"], "prior")

    def test_bad_combinations_are_one_clear_error(self):
        with self.assertRaisesRegex(ValueError, "would divide by a zero norm.*spectral norm off"):
            conditional_bn.KnowledgePropagationBatchNorm(4, 3, mixture_init="zeros")
        with self.assertRaisesRegex(ValueError, "would equal 'orthogonal'"):
            conditional_bn.check_mixture("small", True)
        with self.assertRaisesRegex(ValueError, "Unknown mixture_init 'random'"):
            conditional_bn.check_mixture("random", False)


class FactoryTest(tf.test.TestCase):
    def test_make_picks_the_layer_of_each_conditioning(self):
        hyper = conditional_bn.make({"type": "biggan", "shared_embedding": False}, "HyperBN")
        self.assertIsInstance(hyper, conditional_bn.ConditionalBatchNorm)
        self.assertFalse(hyper.shared_embedding)
        kp = conditional_bn.make({"type": "kp_bn", "num_old_classes": 4, "num_new_classes": 2}, "b")
        only = conditional_bn.make(
            {"type": "bn_only", "num_old_classes": 4, "num_new_classes": 2}, "c"
        )
        self.assertTrue(kp.use_mixture)
        self.assertFalse(only.use_mixture)
        with self.assertRaisesRegex(ValueError, "Unknown conditioning 'hyper'"):
            conditional_bn.make({"type": "hyper"}, "d")


if __name__ == "__main__":
    tf.test.main()
