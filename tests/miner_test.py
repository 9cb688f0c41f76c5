"""Tests of tf_cgan_transfer.miner (MineGAN's miner) and the minegan generator it sits in."""

import numpy as np
import tensorflow as tf

from tests.layer_references import assert_config_round_trip
from tests.model_fixtures import tiny_generator
from tf_cgan_transfer import biggan
from tf_cgan_transfer import miner as miner_lib
from tf_cgan_transfer import precision

N, K, DZ, H = 3, 5, 8, 16


def _inputs(seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=[4, DZ]).astype(np.float32)
    y = np.eye(N, dtype=np.float32)[[0, 2, 1, 2]]
    return z, y


class MinerTest(tf.test.TestCase):
    def test_shapes_and_identity_before_training(self):
        miner = miner_lib.Miner(N, K, hidden_dim=H)
        z, y = _inputs(0)
        z_mined, w = miner(z, y)
        self.assertEqual((z_mined.shape, w.shape), ((4, DZ), (4, K)))
        self.assertEqual((z_mined.dtype, w.dtype), (tf.float32, tf.float32))
        # Zero output layer: z' = z exactly; zero logits: the uniform old-class mixture.
        self.assertAllEqual(z_mined, z)
        self.assertAllClose(w, np.full([4, K], 1.0 / K), atol=1e-7)
        self.assertLen(miner.trainable_weights, 8)
        # N (H + K) + 2 dz H + H^2 + 2 H + dz
        self.assertEqual(
            biggan.count_parameters(miner), N * (H + K) + 2 * DZ * H + H * H + 2 * H + DZ
        )

    def test_matches_numpy_for_nonzero_weights(self):
        miner = miner_lib.Miner(N, K, hidden_dim=H)
        z, y = _inputs(1)
        miner(z, y)
        rng = np.random.default_rng(2)
        for w in miner.trainable_weights:
            w.assign(rng.normal(size=w.shape).astype(np.float32))
        v = {
            w.name.split("/")[-1].split(":")[0]: w.numpy().astype(np.float64) for w in miner.weights
        }
        relu = lambda x: np.maximum(x, 0.0)
        softmax = np.exp(v["class_logits"]) / np.exp(v["class_logits"]).sum(-1, keepdims=True)
        # A mixture of new classes as well as one-hot rows.
        y = np.concatenate([y, [[0.25, 0.75, 0.0]]]).astype(np.float32)
        z = np.concatenate([z, z[:1]])
        h = relu(z @ v["kernel_0"] + v["bias_0"] + y @ v["class_embedding"])
        h = relu(h @ v["kernel_1"] + v["bias_1"])
        z_mined, w = miner(z, y)
        self.assertAllClose(z_mined, z + h @ v["kernel_out"] + v["bias_out"], rtol=1e-4, atol=1e-3)
        self.assertAllClose(w, y @ softmax, atol=1e-6)
        self.assertAllClose(tf.reduce_sum(w, -1), np.ones(5), atol=1e-6)
        assert_config_round_trip(self, miner, z, y)


class MineGANGeneratorTest(tf.test.TestCase):
    def test_miner_stays_float32_under_mixed_precision(self):
        with precision.policy_scope("mixed_bfloat16"):  # blocks build their layers lazily
            g = tiny_generator(32, ch=8, dim_z=8, conditioning="minegan", num_source_classes=K)
            g.build_weights()
        x = g((biggan.sample_z(2, 8), tf.constant([0, 2])))
        self.assertEqual(x.dtype, tf.float32)
        self.assertEqual(g.blocks[0].conv0.compute_dtype, "bfloat16")
        self.assertEqual((g.miner.compute_dtype, g.linear.compute_dtype), ("float32", "float32"))
        self.assertEqual({v.dtype for v in g.variables}, {tf.float32})
        # The BNs keep BigGAN's conditioning over the K old classes (shared embedding).
        self.assertEqual(g.linear.kernel.shape, [K, 8])
        self.assertEqual(g.miner.class_logits.shape, [3, K])

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "conditioning='minegan' needs num_source_classes"):
            tiny_generator(32, conditioning="minegan")
        with self.assertRaisesRegex(ValueError, "needs a shared class embedding"):
            biggan.Generator(32, conditioning="minegan", num_source_classes=K, shared_dim=0)


if __name__ == "__main__":
    tf.test.main()
