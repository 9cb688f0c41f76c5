"""Tests of the training loop: distribution equivalence, resume, NaN stop, checkpoints."""

import dataclasses
import glob
import json
import os

import numpy as np
import tensorflow as tf

from tests import distribution
from tests import fake_inception
from tests import model_fixtures
from tf_cgan_transfer import biggan
from tf_cgan_transfer import data
from tf_cgan_transfer import evaluate
from tf_cgan_transfer import trainer

RESOLUTION = 32


def tiny_config(model_dir, source, data_config, **overrides):
    config = trainer.TrainConfig(
        model_dir=model_dir,
        data=data_config,
        method="kp_bn",
        source=source,
        batch_size=4,
        train_steps=2,
        l1_scale=0.01,
        l2_scale=0.1,
        checkpoint_every=1,
        log_every=1,
        sample_every=0,
        seed=3,
    )
    return dataclasses.replace(config, **overrides)


def _weights(models):
    return [v.numpy() for m in models for v in m.variables]


class DistributionEquivalenceTest(tf.test.TestCase):
    """One step on 2 replicas equals the same step on 1 device with the same global batch."""

    def _run(self, method, num_d_steps, grad_accumulation):
        source_dir = self.create_tempdir().full_path
        model_fixtures.make_source(source_dir, shared=True, with_d=True)
        data_config = data.DataConfig(dataset="folder", image_folder="unused", resolution=32)
        # Adam with a large epsilon behaves like SGD: its first step divides the gradient
        # by its own magnitude, which would turn float noise in near-zero gradients
        # (different summation orders on 1 vs 2 replicas) into full-size updates.
        optimizer = trainer.OptimizerConfig(g_lr=0.01, d_lr=0.01, epsilon=1.0)
        config = tiny_config(
            self.create_tempdir().full_path,
            source_dir,
            data_config,
            method=method,
            optimizer=optimizer,
            num_d_steps=num_d_steps,
            grad_accumulation=grad_accumulation,
        )
        rng = np.random.default_rng(0)
        real = [
            (
                rng.uniform(-1, 1, [4, 32, 32, 3]).astype(np.float32),
                rng.integers(0, 3, [4]).astype(np.int32),
            )
            for _ in range(num_d_steps * grad_accumulation)
        ]

        single = trainer.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"), num_classes=3)
        mirrored_strategy = distribution.two_replica_strategy()
        mirrored = trainer.Trainer(config, mirrored_strategy, num_classes=3)
        # Same starting point (fresh parameters such as A are random).
        for a, b in (
            (single.generator, mirrored.generator),
            (single.discriminator, mirrored.discriminator),
        ):
            b.set_weights(a.get_weights())

        initial_g = [v.numpy() for v in single.models.g_variables]
        images = np.stack([x for x, _ in real])  # [M, B, R, R, 3]
        labels = np.stack([y for _, y in real])  # [M, B]
        single_metrics = single.train_step(tf.constant(images), tf.constant(labels))

        def per_replica(batch):  # replica r gets examples [2r, 2r + 2) of every micro-batch
            return mirrored_strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(batch[:, ctx.replica_id_in_sync_group * 2 :][:, :2])
            )

        mirrored_metrics = mirrored.train_step(per_replica(images), per_replica(labels))
        for key in single_metrics:
            self.assertAllClose(mirrored_metrics[key], single_metrics[key], rtol=1e-4, atol=1e-6)
        after_single = _weights([single.generator, single.discriminator])
        after_mirrored = _weights([mirrored.generator, mirrored.discriminator])
        self.assertLen(after_mirrored, len(after_single))
        for a, b in zip(after_single, after_mirrored):
            self.assertAllClose(a, b, atol=1e-5, rtol=1e-5)
        # The step moved G's trained variables, so the comparison is not vacuous.
        moved = [
            np.max(np.abs(v.numpy() - w)) for v, w in zip(single.models.g_variables, initial_g)
        ]
        # (Conv biases in front of a batch norm have exactly zero gradient.)
        still = [
            v.name
            for v, m in zip(single.models.g_variables, moved)
            if m <= 1e-7 and not v.name.endswith("/bias:0")
        ]
        self.assertEqual(still, [])
        return single_metrics

    def test_kp_bn_step(self):
        metrics = self._run("kp_bn", num_d_steps=2, grad_accumulation=2)
        self.assertGreater(metrics["l1"], 0.0)

    def test_finetune_step(self):
        self._run("finetune", num_d_steps=1, grad_accumulation=1)


if __name__ == "__main__":
    tf.test.main()


class PoisonedTrainer(trainer.Trainer):
    """Sets one D weight to NaN right after restoring, so the next step's loss is NaN."""

    def restore(self):
        step = super().restore()
        kernel = self.discriminator.linear.kernel
        kernel.assign(tf.fill(kernel.shape, float("nan")))
        return step


class LoopTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = tf.compat.v1.test.get_temp_dir()
        cls.source = os.path.join(root, "loop_source")
        model_fixtures.make_source(cls.source, shared=True, with_d=True)
        cls.folder = model_fixtures.write_image_folder(os.path.join(root, "loop_images"))
        cls.data = data.DataConfig(
            dataset="folder", image_folder=cls.folder, resolution=RESOLUTION, seed=5
        )

    def _config(self, model_dir, **overrides):
        base = dict(train_steps=4, checkpoint_every=2, ema_decay=0.9, deterministic=True)
        base.update(overrides)
        return tiny_config(model_dir, self.source, self.data, **base)

    def _final(self, run):
        return [
            v.numpy()
            for m in (run.generator, run.discriminator, run.ema_generator)
            for v in m.variables
        ] + [run.g_optimizer.iterations.numpy()]

    def test_resumed_run_equals_uninterrupted_run(self):
        straight = trainer.Trainer(self._config(self.create_tempdir().full_path))
        straight.train()
        model_dir = self.create_tempdir().full_path
        first = trainer.Trainer(self._config(model_dir, train_steps=2))
        first.train()
        self.assertEqual(int(first.step.numpy()), 2)
        resumed = trainer.Trainer(self._config(model_dir))  # a new process would do this
        self.assertEqual(resumed.restore(), 2)
        resumed.train()
        self.assertEqual(int(resumed.step.numpy()), 4)
        for a, b in zip(self._final(straight), self._final(resumed)):
            self.assertAllEqual(a, b)
        self.assertEqual(
            sorted(os.listdir(os.path.join(model_dir, "ckpt"))),
            sorted(os.listdir(os.path.join(straight.config.model_dir, "ckpt"))),
        )
        for name in ("models", "models_ema"):
            g, _ = biggan.restore_models(os.path.join(model_dir, name))
            self.assertEqual(g.num_classes, 3)

    def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(self):
        model_dir = self.create_tempdir().full_path
        trainer.Trainer(self._config(model_dir, train_steps=2, ema_decay=0.0)).train()
        run = PoisonedTrainer(self._config(model_dir, train_steps=4, ema_decay=0.0))
        with self.assertRaisesRegex(
            trainer.TrainingError,
            r"Non-finite .*at step 3 .*the last good checkpoint is .*ckpt-2",
        ):
            run.train()
        self.assertEqual(os.path.basename(run.manager.latest_checkpoint), "ckpt-2")
        # The models saved by the first (good) run were not replaced by poisoned ones.
        _, d = biggan.restore_models(os.path.join(model_dir, "models"))
        self.assertTrue(np.all(np.isfinite(d.linear.kernel.numpy())))

    def test_samples_are_written(self):
        model_dir = self.create_tempdir().full_path
        run = trainer.Trainer(
            self._config(
                model_dir, train_steps=1, sample_every=1, ema_decay=0.0, deterministic=False
            )
        )
        run.train()
        sheet = tf.io.decode_png(
            tf.io.read_file(os.path.join(model_dir, "samples", "step_0000001.png"))
        )
        self.assertEqual(sheet.shape, [3 * 34 + 2, 4 * 34 + 2, 3])


class PeriodicEvaluationTest(tf.test.TestCase):
    def test_evaluates_and_keeps_the_best_by_fid(self):
        root = self.create_tempdir().full_path
        source = os.path.join(root, "source")
        model_fixtures.make_source(source, shared=True, with_d=True)
        folder = model_fixtures.write_image_folder(os.path.join(root, "images"))
        classifier = os.path.join(root, "classifier")
        fake_inception.write_tf2_module(classifier)
        model_dir = os.path.join(root, "run")
        config = tiny_config(
            model_dir,
            source,
            data.DataConfig(dataset="folder", image_folder=folder, resolution=RESOLUTION),
            train_steps=2,
            eval_every=1,
            eval_num_images=8,
            eval_batch_size=4,
            classifier=classifier,
        )
        run = trainer.Trainer(config)
        run.train()
        for step in (1, 2):
            with open(os.path.join(model_dir, "eval", f"step_{step:07d}.json")) as f:
                results = json.load(f)
            self.assertEqual(results["step"], step)
            self.assertGreater(results["fid"], 0.0)
            self.assertIn("kid", results)
            self.assertLen(results["per_class_fid"], 3)
        with open(os.path.join(model_dir, "best", "metrics.json")) as f:
            best = json.load(f)
        self.assertAllClose(best["fid"], float(run.best_fid.numpy()))
        g, d = biggan.restore_models(os.path.join(model_dir, "best"))
        self.assertEqual((g.num_classes, d.num_classes), (3, 3))
        # The real statistics were computed once and cached.
        self.assertLen(glob.glob(os.path.join(model_dir, "eval_cache", "real_*.npz")), 1)

    def test_missing_classifier_fails_before_training(self):
        root = self.create_tempdir().full_path
        config = tiny_config(
            os.path.join(root, "run"),
            None,
            data.DataConfig(dataset="folder", image_folder=root, resolution=RESOLUTION),
            method="scratch",
            eval_every=1,
            classifier=os.path.join(root, "no_such_model"),
        )
        with self.assertRaises(evaluate.ClassifierError):
            trainer.Trainer(config, num_classes=2)
