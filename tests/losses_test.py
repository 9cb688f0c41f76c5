"""Tests of tf_cgan_transfer.losses against NumPy."""

import numpy as np
import tensorflow as tf

from tests import model_fixtures
from tf_cgan_transfer import biggan
from tf_cgan_transfer import losses
from tf_cgan_transfer import transfer


class HingeLossTest(tf.test.TestCase):
    def test_hinge_losses_equal_numpy(self):
        rng = np.random.default_rng(0)
        real, fake = rng.normal(size=[6]) * 2, rng.normal(size=[6]) * 2
        loss_real, loss_fake = losses.discriminator_hinge_loss(real, fake)
        self.assertAllClose(loss_real, np.mean(np.maximum(0, 1 - real)))
        self.assertAllClose(loss_fake, np.mean(np.maximum(0, 1 + fake)))
        self.assertAllClose(losses.generator_hinge_loss(fake), -np.mean(fake))

    def test_global_batch_scaling(self):
        # Per-replica losses summed over replicas equal the full-batch mean.
        rng = np.random.default_rng(1)
        real, fake = rng.normal(size=[8]), rng.normal(size=[8])
        halves = [
            losses.discriminator_hinge_loss(real[i::2], fake[i::2], global_batch_size=8)
            for i in range(2)
        ]
        full = losses.discriminator_hinge_loss(real, fake)
        self.assertAllClose(np.sum(halves, axis=0), full)
        g_halves = [losses.generator_hinge_loss(fake[i::2], global_batch_size=8) for i in range(2)]
        self.assertAllClose(sum(g_halves), losses.generator_hinge_loss(fake))


class RegularizerTest(tf.test.TestCase):
    def test_regularizers_equal_numpy(self):
        directory = self.create_tempdir().full_path
        model_fixtures.make_source(directory)
        g = transfer.build(
            transfer.TransferConfig("kp_bn", 3, residual_init="orthogonal"), source=directory
        ).generator
        rng = np.random.default_rng(2)
        for bn in g.conditional_batch_norms():
            for a in (bn.A_gamma, bn.A_beta):
                a.bias.assign(rng.normal(size=a.bias.shape).astype(np.float32))
        l1 = sum(
            np.mean(np.abs(v.numpy()))
            for bn in g.conditional_batch_norms()
            for a in (bn.A_gamma, bn.A_beta)
            for v in (a.kernel, a.bias)
        )
        l2 = sum(
            np.mean(np.square(r.numpy()))
            for bn in g.conditional_batch_norms()
            for r in (bn.R_gamma, bn.R_beta)
        )
        self.assertGreater(l2, 0.0)
        self.assertAllClose(losses.mixture_l1(g), l1, rtol=1e-5)
        self.assertAllClose(losses.residual_l2(g), l2, rtol=1e-5)
        total, parts = losses.transfer_regularizer(g, l1_scale=0.01, l2_scale=0.1)
        self.assertAllClose(total, 0.01 * l1 + 0.1 * l2, rtol=1e-5)
        self.assertAllClose(parts["l1"], l1, rtol=1e-5)

    def test_regularizer_gradients_reach_only_a_and_r(self):
        directory = self.create_tempdir().full_path
        model_fixtures.make_source(directory)
        models = transfer.build(transfer.TransferConfig("kp_bn", 2), source=directory)
        with tf.GradientTape() as tape:
            total, _ = losses.transfer_regularizer(models.generator, 0.01, 0.1)
        grads = tape.gradient(total, models.g_variables)
        touched = sorted(
            v.name.split("/")[-1] for v, g in zip(models.g_variables, grads) if g is not None
        )
        self.assertEqual(set(touched), {"kernel:0", "bias:0", "R_gamma:0", "R_beta:0"})

    def test_no_knowledge_layers_give_zero(self):
        g = biggan.Generator(32, ch=8, num_classes=3, shared_dim=8, dim_z=8).build_weights()
        self.assertEqual(float(losses.mixture_l1(g)), 0.0)
        self.assertEqual(float(losses.residual_l2(g)), 0.0)


if __name__ == "__main__":
    tf.test.main()
