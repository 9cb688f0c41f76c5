"""Tests of tf_cgan_transfer.biggan_deep and discriminator_deep: blocks, parameter
counts, configs, and knowledge propagation on BigGAN-deep (hub parity: hub_import_test)."""

import os
from unittest import mock

import numpy as np
import tensorflow as tf

from tests import distribution
from tests import fake_biggan_deep_module as fake_deep
from tests import model_fixtures
from tf_cgan_transfer import biggan
from tf_cgan_transfer import biggan_deep
from tf_cgan_transfer import conditional_bn
from tf_cgan_transfer import data
from tf_cgan_transfer import discriminator
from tf_cgan_transfer import discriminator_deep
from tf_cgan_transfer import export
from tf_cgan_transfer import mixture_stats
from tf_cgan_transfer import model_io
from tf_cgan_transfer import sample
from tf_cgan_transfer import serving
from tf_cgan_transfer import train_config
from tf_cgan_transfer import trainer
from tf_cgan_transfer import transfer

# Full-size generator parameters (EMA weights, 1000 classes, z and embedding 128, ch 128):
# the shape sum of docs/tfhub_layout.md §1.2/§5.3. compare_gan's BigGAN-deep test prints
# 50,244,484 for 128: its RGB conv is 128 -> 3, the hub's 128 -> 128 (144,125 more).
FULL_SIZE_G = {128: 50_388_609, 256: 55_880_833, 512: 56_163_905}
COMPARE_GAN_G_128 = 50_244_484
# compare_gan's figure for its BigGAN-deep D at 128 (ch 128, 1000 classes).
FULL_SIZE_D_128 = 34_590_210


_conv = fake_deep.conv_parameters


def deep_d_parameters(multipliers, ch, num_classes=1000, attention_after=1):
    """compare_gan's BigGAN-deep D: stem, bottleneck blocks (m = Cout / 4, add_channels
    1x1 when widening), attention, linear and projection embedding."""
    widths = [ch * m for m in multipliers]
    total = _conv(3, 3, widths[0])
    for index, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        m = cout // 4
        total += _conv(1, cin, m) + 2 * _conv(3, m, m) + _conv(1, m, cout)
        total += _conv(1, cin, cout - cin) if cout > cin else 0
        if index == attention_after:
            total += fake_deep.attention_parameters(cout)
    return total + widths[-1] + 1 + num_classes * widths[-1]


class ParameterCountTest(tf.test.TestCase):
    def test_full_size_counts_from_the_layout(self):
        # (hub_import_test checks the same formula against the imported tiny modules.)
        for resolution, expected in FULL_SIZE_G.items():
            self.assertEqual(fake_deep.parameter_count(resolution, 128), expected, resolution)
        rgb_difference = _conv(3, 128, 128) - _conv(3, 128, 3)
        self.assertEqual(COMPARE_GAN_G_128 + rgb_difference, FULL_SIZE_G[128])
        d_multipliers = (1, 2, 2, 4, 4, 8, 8, 16, 16, 16, 16)
        self.assertEqual(deep_d_parameters(d_multipliers, 128), FULL_SIZE_D_128)

    def test_built_discriminator_has_the_formula_count(self):
        # The same formula at a tiny width and class count, against a built D.
        d = discriminator_deep.DeepDiscriminator(128, ch=4, num_classes=3).build_weights()
        self.assertEqual(d.attention_index, 1)
        d_multipliers = (1, 2, 2, 4, 4, 8, 8, 16, 16, 16, 16)
        self.assertEqual(biggan.count_parameters(d), deep_d_parameters(d_multipliers, 4, 3))


class DeepBlockTest(tf.test.TestCase):
    def test_shortcut_keeps_the_first_channels_and_upsamples(self):
        h = tf.random.stateless_normal([2, 4, 4, 16], [1, 2])
        for upsample in (False, True):
            block = biggan_deep.DeepGBlock(8, upsample=upsample, name="GBlock_1")
            out = block(h, z_chunk=None, class_code=tf.zeros([2, 5]))
            self.assertEqual(out.shape, [2, 8 if upsample else 4, 8 if upsample else 4, 8])
            self.assertLen(block.batch_norms(), 4)
            self.assertEqual(block.conv1.kernel.shape, [3, 3, 4, 4])  # bottleneck 16 / 4
            # The last BN's inputs far below its standing mean: relu gives 0, and the
            # residual branch only conv3's bias, here 0.
            block.BatchNorm_3.bn.accumulated_mean.assign(tf.fill([4], 1e6))
            block.conv3.bias.assign(tf.zeros([8]))
            skip = biggan._upsample(h[..., :8]) if upsample else h[..., :8]
            self.assertAllClose(block(h, class_code=tf.zeros([2, 5])), skip)

    def test_generator_block_cannot_widen_and_discriminator_block_cannot_narrow(self):
        with self.assertRaisesRegex(ValueError, "cannot widen 4 to 8"):
            biggan_deep.DeepGBlock(8)(tf.zeros([1, 4, 4, 4]), class_code=tf.zeros([1, 2]))
        with self.assertRaisesRegex(ValueError, "cannot narrow 8 channels to 4"):
            discriminator_deep.DeepDBlock(4)(tf.zeros([1, 4, 4, 8]))

    def test_deep_needs_an_embedding_and_no_z_split(self):
        with self.assertRaisesRegex(ValueError, "hierarchical_z must be False"):
            biggan_deep.DeepGenerator(32, hierarchical_z=True)
        with self.assertRaisesRegex(ValueError, "shared_dim must be > 0"):
            biggan_deep.DeepGenerator(32, shared_dim=0)
        with self.assertRaisesRegex(ValueError, "Unsupported resolution 48.*biggan_deep"):
            biggan_deep.DeepGenerator(48)


class DeepTransferTest(tf.test.TestCase):
    """The one-hot invariant and the KP layers on a tiny BigGAN-deep (32 px; the hub
    parity tests cover attention)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tf.compat.v1.test.get_temp_dir()
        cls.source_dir = cls.root + "/deep_source"
        cls.source, _ = model_fixtures.make_deep_source(cls.source_dir, resolution=32)
        config = transfer.TransferConfig("kp_bn", 3)
        cls.models = transfer.build(config, source=(cls.source, None))  # as a hub source
        cls.z = biggan.sample_z(3, 8, seed=4)

    def test_one_hot_mixtures_reproduce_the_old_classes(self):
        generator = self.models.generator
        self.assertIsInstance(generator, biggan_deep.DeepGenerator)
        # The embedding's P is the old embedding table; a BN's P its projected class rows.
        self.assertAllClose(generator.linear.P_code, self.source.linear.kernel)
        src_bn = self.source.blocks[2].BatchNorm_1
        w = src_bn.gamma.normalized_kernel().numpy()
        bn = generator.blocks[2].BatchNorm_1
        self.assertEqual(bn.z_dim, 8)
        self.assertAllClose(bn.P_gamma, self.source.linear.kernel.numpy() @ w[8:], atol=1e-6)
        self.assertAllClose(bn.Wz_gamma, w[:8], atol=1e-6)

        model_fixtures.set_one_hot_mixtures(generator, model_fixtures.MAPPING)
        expected = self.source((self.z, tf.constant(model_fixtures.MAPPING)))
        self.assertAllClose(generator((self.z, tf.range(3))), expected, atol=1e-5, rtol=0)
        other = self.source((self.z, tf.range(3)))
        self.assertGreater(float(tf.reduce_max(tf.abs(expected - other))), 1e-2)

    def test_the_embedding_is_a_knowledge_propagating_layer(self):
        generator = self.models.generator
        layers_ = conditional_bn.knowledge_propagating(generator)
        self.assertIs(layers_[0], generator.linear)
        self.assertLen(layers_, 1 + 4 * generator.num_blocks)
        labels = list(mixture_stats.mixtures(generator))
        expected = ["linear/code", "GBlock/BatchNorm/gain", "GBlock/BatchNorm/bias"]
        self.assertEqual(labels[:3], expected)
        groups = transfer.bn_parameter_groups(generator)
        self.assertIn(id(generator.linear.P_code), {id(v) for v in groups["p"]})
        self.assertIn(id(generator.linear.R_code), {id(v) for v in groups["r"]})
        bn_stage = {id(v) for v in self.models.g_variables}
        self.assertTrue({id(v) for v in generator.linear.trainable_variables} <= bn_stage)
        # set_mixtures (the prior) reaches the embedding too.
        prior = np.full([3, model_fixtures.OLD_CLASSES], 0.2, np.float32)
        for layer in layers_:
            layer.set_mixtures(prior)
        weights = generator.linear.mixture_weights(tf.eye(3))[0]
        self.assertAllClose(weights, prior / np.linalg.norm(prior, 2), atol=1e-4, rtol=1e-3)

    def test_saved_and_restored_with_its_family(self):
        directory = self.root + "/deep_kp_models"
        model_io.save_models(directory, self.models.generator)
        self.assertEqual(model_io.read_config(directory)["family"], "biggan_deep")
        g, _ = model_io.restore_models(directory)
        self.assertIsInstance(g, biggan_deep.DeepGenerator)
        d_config = self.models.discriminator.get_config()
        self.assertEqual(d_config["family"], "biggan_deep")
        d = discriminator.Discriminator.from_config(d_config)
        self.assertIsInstance(d, discriminator_deep.DeepDiscriminator)
        y = tf.range(3)
        self.assertAllClose(g((self.z, y)), self.models.generator((self.z, y)), atol=1e-6)
        # A config without "family" (saved before BigGAN-deep) is a BigGAN.
        config = biggan.Generator(32, ch=8, num_classes=3, dim_z=8).get_config()
        del config["family"]
        self.assertEqual(type(biggan.Generator.from_config(config)), biggan.Generator)
        with self.assertRaisesRegex(ValueError, "Unknown discriminator family 'x'"):
            discriminator.Discriminator.from_config(dict(family="x"))

    def test_sample_and_export_accept_a_deep_model(self):
        output = self.root + "/deep_sheet.png"
        # Eagerly: tracing the tiny deep G costs ~12 s, drawing it eagerly a fraction.
        tf.config.run_functions_eagerly(True)
        try:
            shape = sample.run(
                sample.SampleConfig(
                    output=output, classes=("0", "4"), model=self.source_dir, samples_per_class=2
                )
            )
        finally:
            tf.config.run_functions_eagerly(False)
        self.assertEqual(shape, (2 * 34 + 2, 2 * 34 + 2, 3))  # 32 px images, 2 px padding
        # Export up to the SavedModel writer (serving_test covers the signatures; tracing
        # them for a deep G would cost ~30 s here): it loads and hands over the deep G.
        with mock.patch.object(serving, "save_generator", autospec=True) as save:
            save.side_effect = lambda generator, version_dir, *_, **__: os.makedirs(version_dir)
            export.run(
                export.ExportConfig(
                    model=self.source_dir,
                    name="deep",
                    export_root=self.root + "/exports",
                    standing_stats_batches=0,
                    warmup=False,
                )
            )
        generator = save.call_args.args[0]
        self.assertIsInstance(generator, biggan_deep.DeepGenerator)
        labels = tf.constant([4, 0, 1])
        self.assertAllClose(generator((self.z, labels)), self.source((self.z, labels)))

    def test_scratch_builds_the_family(self):
        config = transfer.TransferConfig("scratch", 2, resolution=32)
        arch = transfer.ArchitectureConfig(ch=4, dim_z=8, shared_dim=8, family="biggan_deep")
        models = transfer.build(config, architecture=arch)
        self.assertIsInstance(models.generator, biggan_deep.DeepGenerator)
        self.assertIsInstance(models.discriminator, discriminator_deep.DeepDiscriminator)
        self.assertFalse(models.generator.hierarchical_z)
        with self.assertRaisesRegex(transfer.TransferError, "Unknown family 'big'"):
            transfer.build(config, architecture=transfer.ArchitectureConfig(family="big"))


class DeepDistributionTest(tf.test.TestCase):
    """One kp_bn step of a deep G and D on 2 replicas equals the step on one device.

    Both steps run eagerly, with the optimisers' XLA off: tracing the deep step twice
    would cost ~1 min; the replica functions and all-reduces are the traced ones'.
    """

    def test_kp_bn_step_on_two_replicas_equals_one_device(self):
        # The source in memory (`model_io.load_source` takes a (G, D) pair): each Trainer
        # then skips restoring it from disk.
        source = model_fixtures.make_deep_source(self.create_tempdir().full_path, with_d=True)
        config = train_config.TrainConfig(
            model_dir=self.create_tempdir().full_path,
            data=data.DataConfig(dataset="folder", image_folder="unused", resolution=32),
            method="kp_bn",
            source=source,
            batch_size=4,
            l1_scale=0.01,
            l2_scale=0.1,
            seed=3,
            # Adam with a large epsilon behaves like SGD (trainer_test says why).
            optimizer=train_config.OptimizerConfig(g_lr=0.01, d_lr=0.01, epsilon=1.0),
        )
        single = trainer.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"), num_classes=3)
        strategy = distribution.two_replica_strategy()
        mirrored = trainer.Trainer(config, strategy, num_classes=3)
        for run in (single, mirrored):
            run.g_optimizer.jit_compile = run.d_optimizer.jit_compile = False
        for model in ("generator", "discriminator"):
            getattr(mirrored, model).set_weights(getattr(single, model).get_weights())
        self.assertIsInstance(single.generator, biggan_deep.DeepGenerator)
        self.assertIsInstance(single.discriminator, discriminator_deep.DeepDiscriminator)
        # The bn stage trains the class embedding's A, P and R too.
        trained = {id(v) for v in single.models.g_variables}
        self.assertIn(id(single.generator.linear.A_code.kernel), trained)

        rng = np.random.default_rng(0)
        images = rng.uniform(-1, 1, [1, 4, 32, 32, 3]).astype(np.float32)  # [M, B, R, R, 3]
        labels = rng.integers(0, 3, [1, 4]).astype(np.int32)
        initial = [v.numpy() for v in single.models.g_variables]
        expected = single.steps._train_step(tf.constant(images), tf.constant(labels))

        def per_replica(batch):  # replica r gets examples [2r, 2r + 2)
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(batch[:, 2 * ctx.replica_id_in_sync_group :][:, :2])
            )

        actual = mirrored.steps._train_step(per_replica(images), per_replica(labels))
        for key in expected:
            self.assertAllClose(actual[key], expected[key], rtol=1e-4, atol=1e-6, msg=key)
        for model in ("generator", "discriminator"):
            a, b = getattr(single, model).variables, getattr(mirrored, model).variables
            for v, w in zip(a, b, strict=True):
                self.assertAllClose(v, w, atol=1e-5, rtol=1e-5, msg=v.name)
        moved = [np.abs(v.numpy() - w).max() for v, w in zip(single.models.g_variables, initial)]
        self.assertGreater(min(moved[:3]), 0.0)  # the embedding's A, P, R: not vacuous


if __name__ == "__main__":
    tf.test.main()
