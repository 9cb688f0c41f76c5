"""Tests of tf_cgan_transfer.transfer and the knowledge-propagating BN."""

import os
import re

import numpy as np
import tensorflow as tf

from tests import fake_biggan_module as fake
from tests import pytorch_biggan
from tf_cgan_transfer import biggan
from tf_cgan_transfer import layers
from tf_cgan_transfer import model_io
from tf_cgan_transfer import pytorch_import
from tf_cgan_transfer import transfer

from tests.layer_references import np_spectral_normalize
from tests.model_fixtures import MAPPING, OLD_CLASSES, make_source, set_one_hot_mixtures


class KnowledgePropagationInvariantTest(tf.test.TestCase):
    """docs/design.md §4 (the one-hot invariant): one-hot mixtures reproduce the old classes exactly."""

    def _check(self, source, transferred, z):
        new_labels = tf.range(len(MAPPING))
        expected = source((z, tf.constant(MAPPING)))
        self.assertAllClose(transferred((z, new_labels)), expected, atol=1e-5, rtol=0)
        # Guard: the classes really differ, so the check above is not vacuous.
        self.assertGreater(float(tf.reduce_max(tf.abs(expected - source((z, new_labels))))), 1e-2)

    def test_shared_embedding_source(self):
        directory = self.create_tempdir().full_path
        source, _ = make_source(directory, shared=True)
        models = transfer.build(transfer.TransferConfig("kp_bn", 3), source=directory)
        set_one_hot_mixtures(models.generator, MAPPING)
        for seed in (1, 2):
            self._check(source, models.generator, biggan.sample_z(3, 8, seed=seed))

    def test_source_without_shared_embedding(self):
        directory = self.create_tempdir().full_path
        source, _ = make_source(directory, shared=False)
        models = transfer.build(transfer.TransferConfig("kp_bn", 3), source=directory)
        self.assertEqual(models.generator.conditional_batch_norms()[0].z_dim, 0)
        set_one_hot_mixtures(models.generator, MAPPING)
        self._check(source, models.generator, biggan.sample_z(3, 128, seed=3))

    def test_tf_hub_source(self):
        module_dir = self.create_tempdir().full_path
        tensors = fake.make_biggan_tensors(resolution=128, ch=8, num_classes=OLD_CLASSES, seed=9)
        fake.write_checkpoint_only_module(module_dir, tensors)
        models = transfer.build(
            transfer.TransferConfig("kp_bn", 3, resolution=128), source=module_dir
        )
        set_one_hot_mixtures(models.generator, MAPPING)
        z = np.clip(np.random.default_rng(9).normal(size=[3, 12]), -2, 2).astype(np.float32)
        y_old = np.eye(OLD_CLASSES, dtype=np.float32)[MAPPING]
        self.assertAllClose(
            models.generator((z, tf.range(3))),
            fake.reference_forward(tensors, z, y_old),
            atol=1e-5,
            rtol=0,
        )
        # A fresh D for the new classes, since hub modules ship none.
        self.assertEqual(models.discriminator.num_classes, 3)
        self.assertEqual(models.discriminator.resolution, 128)

    def test_a_prior_mixture_equals_the_source_at_that_soft_label(self):
        # Extends the invariant: A(y_n) = prior[n] with R = 0 gives the old classes'
        # mixture, i.e. the source fed the soft label prior[n] (exact without spectral
        # norm; with it, the prior scaled to spectral norm 1).
        directory = self.create_tempdir().full_path
        source, _ = make_source(directory, shared=True)
        prior = np.random.default_rng(4).dirichlet(np.ones(OLD_CLASSES), size=3)
        z = biggan.sample_z(3, 8, seed=5)
        # (sigma as the layer's power iteration computes it from the top singular vector)
        sigma = np_spectral_normalize(prior, np.linalg.svd(prior)[2][:1])[2]
        for spectral_norm, label in ((False, prior), (True, prior / sigma)):
            config = transfer.TransferConfig(
                "kp_bn", 3, mixture_init="prior", mixture_spectral_norm=spectral_norm
            )
            calls = []
            g = transfer.build(
                config, source=directory, prior=lambda g, d: calls.append(d) or prior
            ).generator
            self.assertEqual(calls, [None])  # called once, with the source's (absent) D
            expected = source((z, tf.constant(label, tf.float32)))
            self.assertAllClose(g((z, tf.range(3))), expected, atol=1e-5, rtol=0)
        hard = source((z, tf.constant(MAPPING)))
        self.assertGreater(float(tf.reduce_max(tf.abs(expected - hard))), 1e-2)

    def test_auto_mixture_init_takes_the_prior_only_from_a_source_with_a_d(self):
        prior = np.random.default_rng(6).dirichlet(np.ones(OLD_CLASSES), size=3)
        for with_d in (False, True):
            directory = self.create_tempdir().full_path
            make_source(directory, with_d=with_d)
            calls = []
            models = transfer.build(
                transfer.TransferConfig("kp_bn", 3, mixture_init="auto"),
                source=directory,
                prior=lambda g, d: calls.append(d) or prior,
            )
            init = "prior" if with_d else "orthogonal"
            self.assertEqual(models.config.mixture_init, init)
            self.assertLen(calls, int(with_d))  # the prior is computed only from a D
            bn = models.generator.blocks[0].HyperBN
            self.assertEqual(bn.get_config()["mixture_init"], init)
            gamma_mixture = bn.mixture_weights(tf.eye(3))[0].numpy()  # A(y_n), [3, K]
            rows = gamma_mixture / gamma_mixture.sum(1, keepdims=True)
            # The prior, spectrally normalised (same proportions), or a random start.
            self.assertEqual(np.allclose(rows, prior, atol=1e-4), with_d)

    def test_prior_needs_its_function_and_the_right_shape(self):
        directory = self.create_tempdir().full_path
        make_source(directory)
        config = transfer.TransferConfig("kp_bn", 3, mixture_init="prior")
        with self.assertRaisesRegex(transfer.TransferError, "needs prior="):
            transfer.build(config, source=directory)
        with self.assertRaisesRegex(
            transfer.TransferError, r"\(2, 5\); this transfer needs \(3, 5\)"
        ):
            transfer.build(config, source=directory, prior=lambda g, d: np.ones([2, 5]))
        with self.assertRaisesRegex(transfer.TransferError, "spectral norm"):
            transfer.TransferConfig("kp_bn", 3, mixture_init="zeros").validate()

    def test_prior_knowledge_is_the_effective_projection(self):
        directory = self.create_tempdir().full_path
        source, _ = make_source(directory, shared=True)
        models = transfer.build(transfer.TransferConfig("kp_bn", 2), source=directory)
        src_bn = source.blocks[1].HyperBN_1
        dst_bn = models.generator.blocks[1].HyperBN_1
        w = src_bn.gamma.kernel.numpy()
        sigma = layers.spectral_normalize(w, src_bn.gamma.u)[2].numpy()
        self.assertNotAllClose(sigma, 1.0)  # the raw weight would give a different P
        self.assertAllClose(
            dst_bn.P_gamma, source.linear.kernel.numpy() @ (w[2:] / sigma), atol=1e-6
        )
        self.assertAllClose(dst_bn.Wz_gamma, w[:2] / sigma, atol=1e-6)
        self.assertAllEqual(dst_bn.R_gamma, np.zeros([2, dst_bn.R_gamma.shape[1]]))


class MineGANInvariantTest(tf.test.TestCase):
    """Before training, minegan at new class n is the source at the class weights of its
    miner: z' = z (zero output layer) and softmax(L[n]) over the old classes."""

    def _logits(self, generator, seed):
        logits = 3.0 * np.random.default_rng(seed).normal(size=[3, OLD_CLASSES])
        generator.miner.class_logits.assign(logits.astype(np.float32))
        return tf.nn.softmax(logits.astype(np.float32))

    def _check(self, source, generator, z):
        labels = tf.constant([0, 1, 2, 1])
        uniform = tf.fill([4, OLD_CLASSES], 1.0 / OLD_CLASSES)
        self.assertAllClose(generator((z, labels)), source((z, uniform)), atol=1e-5, rtol=0)
        weights = tf.gather(self._logits(generator, 4), labels)
        expected = source((z, weights))
        self.assertAllClose(generator((z, labels)), expected, atol=1e-5, rtol=0)
        # Guard: the mixtures change the image, so the check above is not vacuous.
        self.assertGreater(float(tf.reduce_max(tf.abs(expected - source((z, uniform))))), 1e-2)

    def test_sources_with_and_without_a_shared_embedding(self):
        for shared in (True, False):
            with self.subTest(shared=shared):
                directory = self.create_tempdir().full_path
                source, _ = make_source(directory, shared=shared)
                g = transfer.build(
                    transfer.TransferConfig("minegan", 3), source=directory
                ).generator
                self.assertEqual((g.conditioning, g.num_source_classes), ("minegan", OLD_CLASSES))
                self.assertEqual(g.shared_dim, source.shared_dim)
                self._check(source, g, biggan.sample_z(4, g.dim_z, seed=5))


class TrainableVariablesTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.directory = os.path.join(tf.compat.v1.test.get_temp_dir(), "source_with_d")
        make_source(cls.directory, shared=True, with_d=True)

    def _names(self, variables):
        return sorted(v.name for v in variables)

    def _build(self, method, n=3, **kwargs):
        return transfer.build(transfer.TransferConfig(method, n, **kwargs), source=self.directory)

    def test_kp_bn_bn_stage_trains_only_the_bn_parameters(self):
        models = self._build("kp_bn")
        kp = r"Generator/GBlock(_\d)?/HyperBN(_1)?/"
        parts = r"(P_gamma|P_beta|Wz_gamma|Wz_beta|R_gamma|R_beta|A_(gamma|beta)/(kernel|bias)):0"
        names = self._names(models.g_variables)
        self.assertLen(names, 6 * 10)  # 3 blocks x 2 BNs x 10 tensors
        for name in names:
            self.assertRegex(name, "^" + kp + parts + "$")
        self.assertEqual(
            self._names(models.d_variables), self._names(models.discriminator.trainable_variables)
        )

    def test_kp_bn_ft_stage_freezes_a_and_p(self):
        bn_models = self._build("kp_bn")
        bn_dir = self.create_tempdir().full_path
        model_io.save_models(bn_dir, bn_models.generator, bn_models.discriminator)
        models = transfer.build(
            transfer.TransferConfig("kp_bn", 3, stage="ft"), bn_checkpoint=bn_dir
        )
        all_names = self._names(models.generator.trainable_variables)
        frozen = [n for n in all_names if re.search(r"/(A_gamma|A_beta)/|/P_(gamma|beta):", n)]
        self.assertLen(frozen, 6 * 6)
        self.assertEqual(self._names(models.g_variables), sorted(set(all_names) - set(frozen)))
        self.assertTrue(any("/R_gamma:" in n for n in self._names(models.g_variables)))
        self.assertTrue(any("/conv0/kernel:" in n for n in self._names(models.g_variables)))
        # The bn stage's weights were restored, not re-initialised.
        self.assertAllEqual(
            models.generator.blocks[0].HyperBN.P_gamma,
            bn_models.generator.blocks[0].HyperBN.P_gamma,
        )

    def test_bn_only_trains_only_the_class_residuals(self):
        models = self._build("bn_only")
        names = self._names(models.g_variables)
        self.assertLen(names, 6 * 2)
        for name in names:
            self.assertRegex(name, r"/HyperBN(_1)?/R_(gamma|beta):0$")
        bn = models.generator.blocks[0].HyperBN
        self.assertIsNone(bn.A_gamma)
        self.assertIsNotNone(bn.Wz_gamma)  # pretrained z part kept, frozen

    def test_finetune_and_scratch_train_everything(self):
        for method in ("finetune", "scratch"):
            models = self._build(method)
            self.assertEqual(
                self._names(models.g_variables), self._names(models.generator.trainable_variables)
            )
            self.assertEqual(
                self._names(models.d_variables),
                self._names(models.discriminator.trainable_variables),
            )

    def test_freeze_d_freezes_the_first_blocks(self):
        models = self._build("freeze_d", freeze_d_blocks=2)
        d_names = self._names(models.d_variables)
        self.assertFalse(any(re.match(r"Discriminator/DBlock(_1)?/", n) for n in d_names))
        self.assertTrue(any(n.startswith("Discriminator/DBlock_2/") for n in d_names))
        self.assertIn("Discriminator/embedding/kernel:0", d_names)
        self.assertEqual(
            self._names(models.g_variables), self._names(models.generator.trainable_variables)
        )

    def test_minegan_stages_train_the_miner_then_everything(self):
        source, source_d = model_io.restore_models(self.directory)
        models = self._build("minegan", 4)
        g, d = models.generator, models.discriminator
        names = self._names(models.g_variables)
        self.assertEqual(names, self._names(g.miner.trainable_variables))
        self.assertLen(names, 8)
        for name in names:
            self.assertRegex(name, "^Generator/miner/")
        self.assertEqual(self._names(models.d_variables), self._names(d.trainable_variables))
        # N (H + K) + 2 dz H + H^2 + 2 H + dz (dz: the whole z; H: miner_hidden_dim).
        n, k, dz, h = 4, OLD_CLASSES, g.dim_z, g.miner_hidden_dim
        expected = n * (h + k) + 2 * dz * h + h * h + 2 * h + dz
        self.assertEqual(biggan.count_parameters(models.g_variables), expected)
        # The whole pretrained G is kept, its old-class conditioning included; D keeps
        # the pretrained body with a fresh embedding for the new classes.
        self.assertAllEqual(g.linear.kernel, source.linear.kernel)
        self.assertAllEqual(g.blocks[1].HyperBN.beta.kernel, source.blocks[1].HyperBN.beta.kernel)
        self.assertAllEqual(g.blocks[2].conv1.kernel, source.blocks[2].conv1.kernel)
        self.assertAllEqual(d.blocks[1].conv1.kernel, source_d.blocks[1].conv1.kernel)
        self.assertAllEqual(d.linear.kernel, source_d.linear.kernel)
        self.assertEqual(d.embedding.kernel.shape, [4, 32])
        # Stage ft resumes from the miner stage's models and trains all of G and D.
        g.miner.class_logits.assign(tf.random.normal([4, OLD_CLASSES]))
        miner_dir = self.create_tempdir().full_path
        model_io.save_models(miner_dir, g, d)
        ft = transfer.build(
            transfer.TransferConfig("minegan", 4, stage="ft"), bn_checkpoint=miner_dir
        )
        self.assertEqual(self._names(ft.g_variables), self._names(ft.generator.trainable_variables))
        self.assertEqual(
            self._names(ft.d_variables), self._names(ft.discriminator.trainable_variables)
        )
        self.assertAllEqual(ft.generator.miner.class_logits, g.miner.class_logits)

    def test_kp_bn_trainable_count_is_linear_in_new_classes(self):
        source, _ = model_io.restore_models(self.directory)
        k, dz = OLD_CLASSES, 2
        channels = [bn.bn.accumulated_mean.shape[0] for bn in source.conditional_batch_norms()]
        d_fixed = (
            biggan.count_parameters(self._build("kp_bn", 1).d_variables) - 32
        )  # minus 1 x C_D row
        for n in (1, 5, 20):
            models = self._build("kp_bn", n)
            # Per BN layer: A (N x K + K, twice), P (K x C, twice), W^z (dz x C, twice),
            # R (N x C, twice) -> 2N(K + C) + const.
            expected = sum(2 * (n * k + k) + 2 * k * c + 2 * dz * c + 2 * n * c for c in channels)
            self.assertEqual(biggan.count_parameters(models.g_variables), expected)
            self.assertEqual(biggan.count_parameters(models.d_variables), d_fixed + 32 * n)

    def test_discriminator_keeps_the_pretrained_body_with_a_fresh_embedding(self):
        _, source_d = model_io.restore_models(self.directory)
        for method, copied in (("kp_bn", True), ("scratch", False)):
            d = self._build(method, 4).discriminator
            self.assertEqual(d.embedding.kernel.shape, [4, 32])
            same = np.array_equal(
                d.blocks[1].conv1.kernel.numpy(), source_d.blocks[1].conv1.kernel.numpy()
            )
            self.assertEqual(same, copied, method)
            self.assertEqual(
                np.array_equal(d.linear.kernel.numpy(), source_d.linear.kernel.numpy()), copied
            )

    def test_finetune_keeps_g_and_draws_new_embeddings_at_the_old_scale(self):
        source, _ = model_io.restore_models(self.directory)
        g = self._build("finetune", 50).generator
        self.assertAllEqual(g.blocks[2].conv1.kernel, source.blocks[2].conv1.kernel)
        self.assertAllEqual(g.blocks[0].HyperBN.gamma.kernel, source.blocks[0].HyperBN.gamma.kernel)
        self.assertEqual(g.linear.kernel.shape, [50, 8])
        self.assertAllClose(
            np.std(g.linear.kernel.numpy()), np.std(source.linear.kernel.numpy()), rtol=0.2
        )


class PytorchSourceTest(tf.test.TestCase):
    """Transfers from a BigGAN-PyTorch weights directory: its G (or G_ema) and D body."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.directory = os.path.join(tf.compat.v1.test.get_temp_dir(), "pytorch_source")
        cls.states = pytorch_biggan.write_weights_dir(cls.directory, num_classes=OLD_CLASSES)
        cls.source_g, cls.source_d, _ = pytorch_import.load_models(cls.directory)

    def test_kp_bn_keeps_the_source_function_and_the_d_body(self):
        models = transfer.build(transfer.TransferConfig("kp_bn", 3), source=self.directory)
        g, d = models.generator, models.discriminator
        # The author's conventions carry over to the new models.
        self.assertEqual((g.sn_norm_style, g.bn_epsilon), ("clamp", 1e-5))
        self.assertEqual((d.sn_norm_style, d.embedding_u_side), ("clamp", "input"))
        # One-hot mixtures reproduce the old classes: P is the source's effective
        # (clamp-normalised) projection.
        set_one_hot_mixtures(g, MAPPING)
        z = biggan.sample_z(3, g.dim_z, seed=2)
        expected = self.source_g((z, tf.constant(MAPPING)))
        self.assertAllClose(g((z, tf.range(3))), expected, atol=1e-5, rtol=0)
        self.assertGreater(
            float(tf.reduce_max(tf.abs(expected - self.source_g((z, tf.range(3)))))), 1e-2
        )
        for ours, theirs in zip(d.blocks, self.source_d.blocks):
            self.assertAllEqual(ours.conv1.kernel, theirs.conv1.kernel)
        self.assertAllEqual(d.linear.kernel, self.source_d.linear.kernel)
        self.assertEqual(d.embedding.kernel.shape, [3, self.source_d.embedding.kernel.shape[1]])
        self.assertEqual(d.embedding.u.shape, [1, 3])  # fresh, over the new classes

    def test_source_ema_starts_from_g_ema(self):
        config = transfer.TransferConfig("finetune", 2)
        g = transfer.build(config, source=self.directory, source_ema=True).generator
        conv = "blocks.1.0.conv1.weight"  # our GBlock_1/conv0, HWIO
        self.assertAllEqual(
            g.blocks[1].conv0.kernel, self.states["G_ema"][conv].permute(2, 3, 1, 0)
        )
        self.assertNotAllClose(g.blocks[1].conv0.kernel, self.source_g.blocks[1].conv0.kernel)
        with self.assertRaisesRegex(transfer.TransferError, "applies to BigGAN-PyTorch"):
            transfer.build(config, source="deepmind/biggan-128/2", source_ema=True)


class BadTransferTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.directory = self.create_tempdir().full_path
        make_source(self.directory, shared=True, with_d=True)

    def test_no_new_classes(self):
        for n in (0, -2):
            with self.assertRaisesRegex(
                transfer.TransferError, f"num_new_classes must be an integer >= 1, got {n}"
            ):
                transfer.build(transfer.TransferConfig("kp_bn", n), source=self.directory)

    def test_unknown_method_and_stage(self):
        with self.assertRaisesRegex(transfer.TransferError, "Unknown method 'kpbn'; use one of"):
            transfer.build(transfer.TransferConfig("kpbn", 3), source=self.directory)
        with self.assertRaisesRegex(
            transfer.TransferError, r"Method 'finetune' has no stage 'bn'; its stages are \('ft',\)"
        ):
            transfer.build(
                transfer.TransferConfig("finetune", 3, stage="bn"), source=self.directory
            )
        with self.assertRaisesRegex(
            transfer.TransferError, r"Method 'minegan' has no stage 'bn'; its stages are \('miner'"
        ):
            transfer.build(transfer.TransferConfig("minegan", 3, stage="bn"), source=self.directory)

    def test_ft_without_bn_checkpoint(self):
        with self.assertRaisesRegex(
            transfer.TransferError, "Stage 'ft' of kp_bn resumes from a 'bn'-stage model directory"
        ):
            transfer.build(transfer.TransferConfig("kp_bn", 3, stage="ft"), source=self.directory)
        empty = self.create_tempdir().full_path
        with self.assertRaisesRegex(transfer.TransferError, "Cannot resume stage 'ft' from"):
            transfer.build(transfer.TransferConfig("kp_bn", 3, stage="ft"), bn_checkpoint=empty)
        # A pretrained (not transferred) model directory is not a bn-stage checkpoint.
        with self.assertRaisesRegex(transfer.TransferError, "is not a kp_bn 'bn'-stage model"):
            transfer.build(
                transfer.TransferConfig("kp_bn", 3, stage="ft"), bn_checkpoint=self.directory
            )

    def test_minegan_ft_needs_a_miner_stage_checkpoint(self):
        minegan_ft = transfer.TransferConfig("minegan", 3, stage="ft")
        with self.assertRaisesRegex(
            transfer.TransferError,
            "Stage 'ft' of minegan resumes from a 'miner'-stage model directory: pass "
            "bn_checkpoint=",
        ):
            transfer.build(minegan_ft, source=self.directory)
        # The generator's conditioning must be minegan (a pretrained model's is biggan).
        with self.assertRaisesRegex(
            transfer.TransferError,
            "is not a minegan 'miner'-stage model directory \\(generator conditioning is "
            "'biggan'\\); run stage 'miner' first",
        ):
            transfer.build(minegan_ft, bn_checkpoint=self.directory)

    def test_checkpoint_class_count_or_resolution_mismatch(self):
        models = transfer.build(transfer.TransferConfig("kp_bn", 3), source=self.directory)
        bn_dir = self.create_tempdir().full_path
        model_io.save_models(bn_dir, models.generator, models.discriminator)
        with self.assertRaisesRegex(
            transfer.TransferError,
            "Class count mismatch: .* was trained for 3 new classes, this run asks for 4",
        ):
            transfer.build(transfer.TransferConfig("kp_bn", 4, stage="ft"), bn_checkpoint=bn_dir)
        with self.assertRaisesRegex(
            transfer.TransferError, "Resolution mismatch: .* is 32x32 but the data needs 64x64"
        ):
            transfer.build(
                transfer.TransferConfig("kp_bn", 3, stage="ft", resolution=64), bn_checkpoint=bn_dir
            )
        with self.assertRaisesRegex(
            transfer.TransferError, "Resolution mismatch: the source model is 32x32"
        ):
            transfer.build(
                transfer.TransferConfig("kp_bn", 3, resolution=128), source=self.directory
            )

    def test_transferred_generator_as_source(self):
        models = transfer.build(transfer.TransferConfig("kp_bn", 3), source=self.directory)
        directory = self.create_tempdir().full_path
        model_io.save_models(directory, models.generator, models.discriminator)
        with self.assertRaisesRegex(transfer.TransferError, "already a transferred"):
            transfer.build(transfer.TransferConfig("finetune", 3), source=directory)
        # A minegan generator (in memory: what load_source returns for any source).
        minegan = biggan.Generator(
            32,
            ch=8,
            num_classes=3,
            shared_dim=8,
            dim_z=8,
            attention_resolution=0,
            conditioning="minegan",
            num_source_classes=OLD_CLASSES,
        )
        with self.assertRaisesRegex(transfer.TransferError, r"already a transferred \(minegan\)"):
            transfer.build(transfer.TransferConfig("minegan", 3), source=minegan)

    def test_bad_residual_init_and_freeze_depth(self):
        with self.assertRaisesRegex(transfer.TransferError, "Unknown residual_init 'ones'"):
            transfer.build(
                transfer.TransferConfig("kp_bn", 3, residual_init="ones"), source=self.directory
            )
        with self.assertRaisesRegex(transfer.TransferError, "freeze_d_blocks=9 but D has only 4"):
            transfer.build(
                transfer.TransferConfig("freeze_d", 3, freeze_d_blocks=9), source=self.directory
            )


class ResidualInitTest(tf.test.TestCase):
    def test_orthogonal_residuals(self):
        directory = self.create_tempdir().full_path
        make_source(directory)
        models = transfer.build(
            transfer.TransferConfig("kp_bn", 3, residual_init="orthogonal"), source=directory
        )
        r = models.generator.blocks[0].HyperBN.R_gamma.numpy()  # [3, 32]
        self.assertAllClose(r @ r.T, np.eye(3), atol=1e-5)


if __name__ == "__main__":
    tf.test.main()
