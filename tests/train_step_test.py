"""Tests of tf_cgan_transfer.train_step: latent and augmentation streams, the EMA copy,
and D's step with DiffAugment and LeCam against an independent computation.

The replica steps are also exercised through the trainer (tests/trainer_test.py:
2-replica equivalence, resume, precision, frozen-layer gradients).
"""

import dataclasses
import itertools
import os

import numpy as np
import tensorflow as tf

from tests import model_fixtures
from tests.augment_references import np_apply
from tests.model_fixtures import tiny_generator
from tf_cgan_transfer import biggan
from tf_cgan_transfer import data
from tf_cgan_transfer import limited_data
from tf_cgan_transfer import losses
from tf_cgan_transfer import train_config
from tf_cgan_transfer import train_step
from tf_cgan_transfer import trainer

STREAMS = (
    train_step.D_STREAM,
    train_step.G_STREAM,
    train_step.D_REAL_AUGMENT_STREAM,
    train_step.D_FAKE_AUGMENT_STREAM,
    train_step.G_AUGMENT_STREAM,
)


class LatentStreamTest(tf.test.TestCase):
    def test_keys_never_collide_across_steps_streams_and_micro_batches(self):
        keys = {}
        for step, stream, micro in itertools.product(range(3), STREAMS, (0, 1, 10, 100, 101)):
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
        for folded in (3, train_step.G_STREAM, 2):
            expected = tf.random.experimental.stateless_fold_in(
                expected, tf.constant(folded, tf.int64), alg="philox"
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


class LimitedDataStepTest(tf.test.TestCase):
    """D's step with DiffAugment and LeCam equals the same losses computed here."""

    WEIGHT, DECAY = 0.5, 0.8

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = tf.compat.v1.test.get_temp_dir()
        source = os.path.join(root, "limited_data_source")
        model_fixtures.make_source(source, shared=True, with_d=True)
        config = train_config.TrainConfig(
            model_dir=os.path.join(root, "limited_data_run"),
            data=data.DataConfig(dataset="folder", image_folder="unused", resolution=32),
            method="finetune",
            source=source,
            batch_size=4,
            seed=11,
            augment="diffaugment",
            lecam_weight=cls.WEIGHT,
            lecam_decay=cls.DECAY,
            # Small steps keep D's outputs from blowing up between the three steps.
            optimizer=train_config.OptimizerConfig(g_lr=1e-3, d_lr=1e-3, epsilon=1.0),
        )
        cls.trainer = trainer.Trainer(config, num_classes=3)

    def _reference(self, real_images, real_labels, step, anchors):
        """D's hinge losses, mean outputs and LeCam penalty of the step's first micro-batch,
        from the step's streams and the NumPy augmentation; the models are left as found."""
        run, seed = self.trainer, self.trainer.config.seed
        g, d = run.generator, run.discriminator
        saved = g.get_weights(), d.get_weights()  # training calls advance SN's u vectors
        z, fake_labels = train_step.draw_latents(
            train_step.stream_key(seed, step, train_step.D_STREAM, 0), 4, g.dim_z, 3
        )

        def augmented(images, stream):
            key = train_step.stream_key(seed, step, stream, 0)
            params = limited_data.draw(key, 4, 32, limited_data.DEFAULT_POLICY)
            numpy_params = {k: v.numpy() for k, v in params.items()}
            return np_apply(np.asarray(images), numpy_params, limited_data.DEFAULT_POLICY)

        fake = g((z, fake_labels), training=True)
        real_in = augmented(real_images, train_step.D_REAL_AUGMENT_STREAM)
        fake_in = augmented(fake, train_step.D_FAKE_AUGMENT_STREAM)
        with tf.GradientTape() as tape:
            # One D call on both halves: one power iteration, one sigma for real and fake.
            both = np.concatenate([real_in, fake_in]).astype(np.float32)
            both_labels = np.concatenate([real_labels, fake_labels])
            logits = d((tf.constant(both), both_labels), training=True)
            real_logits, fake_logits = logits[:4], logits[4:]
            loss_real, loss_fake = losses.discriminator_hinge_loss(real_logits, fake_logits)
            r, f = real_logits.numpy(), fake_logits.numpy()
            alpha_real, alpha_fake, active = anchors
            penalty = active * (np.mean((r - alpha_fake) ** 2) + np.mean((f - alpha_real) ** 2))
            lecam = active * (
                tf.reduce_mean(tf.square(real_logits - alpha_fake))
                + tf.reduce_mean(tf.square(fake_logits - alpha_real))
            )
            loss = loss_real + loss_fake + self.WEIGHT * lecam
        grads = tape.gradient(loss, run.models.d_variables)
        g.set_weights(saved[0])
        d.set_weights(saved[1])
        terms = dict(
            d_loss_real=float(loss_real),
            d_loss_fake=float(loss_fake),
            d_real=float(r.mean()),
            d_fake=float(f.mean()),
            lecam=float(penalty),
        )
        return terms, grads, (z, fake_labels)

    def test_three_steps_match_numpy_penalty_and_averages(self):
        run = self.trainer
        rng = np.random.default_rng(0)
        alpha = None  # NumPy's (α_R, α_F)
        for step in range(3):
            images = rng.uniform(-1, 1, [1, 4, 32, 32, 3]).astype(np.float32)
            labels = rng.integers(0, 3, [1, 4]).astype(np.int32)
            anchors = (0.0, 0.0, 0.0) if alpha is None else (*alpha, 1.0)
            expected, grads, (z, fake_labels) = self._reference(images[0], labels[0], step, anchors)
            if step == 1:
                # The step's D gradient is that of hinge + weight * LeCam computed here.
                real_aug = run.steps.augmentation(0, train_step.D_REAL_AUGMENT_STREAM)
                fake_aug = run.steps.augmentation(0, train_step.D_FAKE_AUGMENT_STREAM)
                saved = run.generator.get_weights(), run.discriminator.get_weights()
                got, _ = run.steps.d_micro_step(
                    images[0],
                    labels[0],
                    z,
                    fake_labels,
                    real_aug,
                    fake_aug,
                    tuple(tf.constant(a, tf.float32) for a in anchors),
                )
                run.generator.set_weights(saved[0])
                run.discriminator.set_weights(saved[1])
                for a, b in zip(got, grads):
                    self.assertAllClose(a, b, rtol=1e-4, atol=1e-5)
            metrics = {k: float(v) for k, v in run.train_step(images, labels).items()}
            for key, value in expected.items():
                self.assertAllClose(metrics[key], value, rtol=1e-4, atol=1e-5, msg=f"{key} {step}")
            means = expected["d_real"], expected["d_fake"]
            alpha = (
                means
                if alpha is None
                else tuple(self.DECAY * a + (1 - self.DECAY) * m for a, m in zip(alpha, means))
            )
            self.assertAllClose((metrics["lecam_real"], metrics["lecam_fake"]), alpha, rtol=1e-4)
            self.assertEqual(int(run.lecam.updates.numpy()), step + 1)
        self.assertGreater(metrics["lecam"], 0.0)

    def test_a_d_step_advances_spectral_norm_once(self):
        # BigGAN-PyTorch and compare_gan call D once on real and fake together: u takes
        # one power iteration per D step (it depends on W and u only, not the input).
        run = self.trainer
        d = run.discriminator
        u_vars = [v for v in d.variables if v.name.split("/")[-1].startswith("u")]
        self.assertNotEmpty(u_vars)
        saved = run.generator.get_weights(), d.get_weights()
        d((tf.zeros([2, 32, 32, 3]), tf.constant([0, 1])), training=True)
        once = [v.numpy() for v in u_vars]
        d((tf.zeros([2, 32, 32, 3]), tf.constant([0, 1])), training=True)
        twice = [v.numpy() for v in u_vars]
        d.set_weights(saved[1])
        z = tf.random.normal([4, run.generator.dim_z])
        labels = tf.constant([0, 1, 2, 0])
        anchors = tuple(tf.constant(0.0) for _ in range(3))
        real_aug = run.steps.augmentation(0, train_step.D_REAL_AUGMENT_STREAM)
        fake_aug = run.steps.augmentation(0, train_step.D_FAKE_AUGMENT_STREAM)
        run.steps.d_micro_step(
            tf.zeros([4, 32, 32, 3]), labels, z, labels, real_aug, fake_aug, anchors
        )
        after = [v.numpy() for v in u_vars]
        run.generator.set_weights(saved[0])
        d.set_weights(saved[1])
        for a, b, c in zip(after, once, twice):
            self.assertAllClose(a, b, atol=1e-6)
        self.assertGreater(max(np.max(np.abs(a - c)) for a, c in zip(after, twice)), 1e-5)

    def test_real_fake_and_g_images_draw_independently(self):
        steps = self.trainer.steps
        draws = {
            stream: steps.augmentation(0, stream)
            for stream in (
                train_step.D_REAL_AUGMENT_STREAM,
                train_step.D_FAKE_AUGMENT_STREAM,
                train_step.G_AUGMENT_STREAM,
            )
        }
        names = {"brightness", "saturation", "contrast", "translation", "cutout"}
        for a, b in itertools.combinations(draws.values(), 2):
            self.assertEqual(set(a), names)  # the same policy
            self.assertEqual(set(b), names)
            for name in names:
                self.assertNotAllEqual(a[name], b[name])
        # Another micro-batch of the same stream draws again.
        again = steps.augmentation(1, train_step.D_REAL_AUGMENT_STREAM)
        self.assertNotAllEqual(again["cutout"], draws[train_step.D_REAL_AUGMENT_STREAM]["cutout"])

    def test_without_augmentation_no_parameters_are_drawn(self):
        config = dataclasses.replace(self.trainer.config, augment="none")
        steps = train_step.GANStep(
            config,
            self.trainer.models,
            self.trainer.g_optimizer,
            self.trainer.d_optimizer,
            self.trainer.step,
            self.trainer.strategy,
            3,
            lecam=self.trainer.lecam,
        )
        self.assertEqual(steps.augmentation(0, train_step.D_REAL_AUGMENT_STREAM), {})


if __name__ == "__main__":
    tf.test.main()
