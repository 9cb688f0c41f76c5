"""Tests of tf_cgan_transfer.affinity_prior: kp_bn's mixtures initialised from the source D."""

import dataclasses
import os
from unittest import mock

import numpy as np
import tensorflow as tf

from tests import model_fixtures
from tf_cgan_transfer import affinity_prior
from tf_cgan_transfer import data
from tf_cgan_transfer import discriminator as discriminator_lib
from tf_cgan_transfer import mixture_stats
from tf_cgan_transfer import model_io
from tf_cgan_transfer import train_config
from tf_cgan_transfer import trainer

K = model_fixtures.OLD_CLASSES


def _numpy_prior(d, images, labels, n):
    """Scores through D's own call: logit(x, k) - linear(phi(x)) = <e_k, phi(x)>."""
    linear = d.linear(d.features(images)).numpy()[:, 0]
    scores = np.stack(
        [d((images, tf.fill([len(labels)], k))).numpy() - linear for k in range(d.num_classes)],
        axis=1,
    ).astype(np.float64)
    p = np.exp(scores - scores.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return np.stack([p[labels == c].mean(0) for c in range(n)])


class ProjectionPriorTest(tf.test.TestCase):
    def test_matches_the_projection_scores_of_ds_call(self):
        tf.keras.utils.set_random_seed(1)
        d = discriminator_lib.Discriminator(32, ch=8, num_classes=K).build_weights()
        # Spread the embedding so the softmax is not flat (a fresh one scores ~0).
        d.embedding.kernel.assign(d.embedding.kernel * 30.0)
        images = tf.random.uniform([6, 32, 32, 3], -1, 1)
        labels = np.array([0, 2, 1, 0, 2, 1])
        batches = [(images[:4], labels[:4]), (images[4:], labels[4:])]
        prior = affinity_prior.projection_prior(d, batches, 3)
        expected = _numpy_prior(d, images, labels, 3)
        self.assertAllClose(prior, expected, atol=1e-5)
        self.assertAllClose(prior.sum(1), np.ones(3))
        self.assertGreater(prior.max() - prior.min(), 0.05)  # not the uniform 1/K

    def test_a_class_without_images_and_a_source_without_d_are_clear_errors(self):
        d = discriminator_lib.Discriminator(32, ch=8, num_classes=K).build_weights()
        images = tf.zeros([2, 32, 32, 3])
        with self.assertRaisesRegex(affinity_prior.PriorError, r"New classes \[1\] have no"):
            affinity_prior.projection_prior(d, [(images, np.array([0, 2]))], 3)
        with self.assertRaisesRegex(affinity_prior.PriorError, "TF-Hub BigGANs ship only G"):
            affinity_prior.for_source(None, None, 3)

    def test_one_epoch_reads_every_image_once_unflipped(self):
        folder = model_fixtures.write_image_folder(self.create_tempdir().full_path, per_class=5)
        config = data.DataConfig(dataset="folder", image_folder=folder, resolution=32, flip=True)
        plan = data.validate(config)
        batches = list(affinity_prior.one_epoch(plan, batch_size=4))
        self.assertEqual([len(b[1]) for b in batches], [4, 4, 4, 3])
        labels = np.concatenate([b[1] for b in batches])
        self.assertAllEqual(np.bincount(labels), [5, 5, 5])
        unflipped = data.make_dataset(
            plan.with_config(dataclasses.replace(config, flip=False)), 15, shuffle=False
        )
        images, _ = next(iter(unflipped))
        self.assertAllClose(np.concatenate([b[0] for b in batches]), images)


class TrainerPriorTest(tf.test.TestCase):
    def test_a_run_is_built_from_the_prior_and_a_resume_reuses_it(self):
        root = self.create_tempdir().full_path
        source = os.path.join(root, "source")
        g, d = model_fixtures.make_source(source, with_d=True)
        d.embedding.kernel.assign(d.embedding.kernel * 30.0)
        model_io.save_models(source, g, d)
        folder = model_fixtures.write_image_folder(os.path.join(root, "images"))
        config = train_config.TrainConfig(
            model_dir=os.path.join(root, "run"),
            data=data.DataConfig(dataset="folder", image_folder=folder, resolution=32),
            source=source,
            mixture_init="prior",
            mixture_spectral_norm=False,
            batch_size=4,
            sample_every=0,
        )
        run = trainer.Trainer(config)
        saved = affinity_prior.load(config.model_dir)
        plan = data.validate(config.data)
        expected = affinity_prior.projection_prior(d, affinity_prior.one_epoch(plan), 3)
        self.assertAllClose(saved, expected, atol=1e-5)
        # The run starts from the prior, in every layer, gain and bias.
        mixtures = mixture_stats.mixtures(run.generator)
        self.assertNotEmpty(mixtures)
        for label, weights in mixtures.items():
            self.assertAllClose(weights, saved, atol=1e-6, msg=label)
        # A resumed run rebuilds from the saved prior: no second pass over the data.
        prior = affinity_prior.for_run(config.model_dir, plan=None, num_new_classes=3)
        with mock.patch.object(affinity_prior, "for_source", side_effect=AssertionError):
            self.assertAllClose(prior(None, d), saved)


if __name__ == "__main__":
    tf.test.main()
