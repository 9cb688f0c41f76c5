"""Tests of tf_cgan_transfer.optimizers: Adam with per-group learning-rate multipliers."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from tests import model_fixtures
from tests import distribution
from tf_cgan_transfer import data
from tf_cgan_transfer import optimizers
from tf_cgan_transfer import train_config
from tf_cgan_transfer import trainer
from tf_cgan_transfer import transfer


def _numpy_adam(x, grads, lr, beta2=0.999, eps=1e-6):
    """Adam with beta1 = 0 (BigGAN's), in float64, from its definition."""
    x, v = np.array(x, np.float64), np.zeros_like(x, np.float64)
    for t, g in enumerate(grads, start=1):
        v = beta2 * v + (1 - beta2) * g**2
        x = x - lr * np.sqrt(1 - beta2**t) * g / (np.sqrt(v) + eps)
    return x


class ScaledAdamTest(tf.test.TestCase):
    def _run(self, strategy):
        grads = [np.array([0.3, -0.5]), np.array([-0.1, 0.2]), np.array([0.4, 0.4])]
        with strategy.scope():
            scaled, plain = tf.Variable([1.0, 2.0]), tf.Variable([1.0, 2.0])
            opt = optimizers.make(1e-2, 0.0, 0.999, 1e-6, lr_scales=[(scaled, 10.0)])

        @tf.function
        def step(g):
            def replica_fn():
                # Each replica's gradient is g / replicas: the all-reduce sums them to g.
                share = g / strategy.num_replicas_in_sync
                opt.apply_gradients([(share, scaled), (share, plain)])

            strategy.run(replica_fn)

        for g in grads:
            step(tf.constant(g, tf.float32))
        self.assertAllClose(scaled, _numpy_adam([1.0, 2.0], grads, 1e-1), atol=1e-5)
        self.assertAllClose(plain, _numpy_adam([1.0, 2.0], grads, 1e-2), atol=1e-6)

    def test_a_multiplier_is_adam_at_the_multiplied_rate(self):
        self._run(tf.distribute.get_strategy())

    def test_on_two_replicas(self):
        self._run(distribution.two_replica_strategy())

    def test_groups_at_zero_are_frozen_and_at_one_left_alone(self):
        a, r, p, other = (tf.Variable(0.0) for _ in range(4))
        groups = dict(a=[a], r=[r], p=[p])
        pairs, kept = optimizers.scaled_groups(groups, [a, r, p, other], dict(a=5.0, r=1.0, p=0))
        self.assertEqual([(v is a, s) for v, s in pairs], [(True, 5.0)])
        self.assertEqual([id(v) for v in kept], [id(a), id(r), id(other)])
        self.assertEqual(
            optimizers.scaled_groups(groups, [other], dict(a=5.0, r=1, p=1)), (None, [other])
        )


def _numpy_adam_full(x, grads, lr, beta1, beta2=0.999, eps=1e-6):
    """Adam with momentum, in float64, from its definition (Keras' epsilon-hat form)."""
    x = np.array(x, np.float64)
    m, v = np.zeros_like(x), np.zeros_like(x)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        x = x - lr * np.sqrt(1 - beta2**t) / (1 - beta1**t) * m / (np.sqrt(v) + eps)
    return x


class FusedAdamTest(tf.test.TestCase):
    SHAPES = ([3], [2, 4], [1, 1, 2, 3])

    def _run(self, strategy, fused, xla, steps=4):
        rng = np.random.default_rng(1)
        grads = [[rng.normal(size=s).astype(np.float32) for s in self.SHAPES] for _ in range(steps)]
        start = [rng.normal(size=s).astype(np.float32) for s in self.SHAPES]
        with strategy.scope():
            variables = [tf.Variable(x) for x in start]
            opt = optimizers.make(
                1e-2, 0.5, 0.999, 1e-6, lr_scales=[(variables[1], 10.0)], xla_updates=xla,
                fused=fused,
            )

        @tf.function
        def step(gs):
            def replica_fn():
                share = [g / strategy.num_replicas_in_sync for g in gs]
                opt.apply_gradients(zip(share, variables))

            strategy.run(replica_fn)

        for gs in grads:
            step([tf.constant(g) for g in gs])
        return opt, variables, start, grads

    def _check(self, strategy):
        results = {}
        for fused in (True, False):
            for xla in (True, False):
                opt, variables, start, grads = self._run(strategy, fused, xla)
                self.assertEqual(isinstance(opt, optimizers.FusedAdam), fused)
                self.assertEqual(int(opt.iterations.numpy()), len(grads))
                results[fused, xla] = [v.numpy() for v in variables]
        for i, scale in enumerate((1.0, 10.0, 1.0)):
            expected = _numpy_adam_full(start[i], [g[i] for g in grads], 1e-2 * scale, 0.5)
            for key, values in results.items():
                self.assertAllClose(values[i], expected, atol=1e-5, msg=str(key))
        # Without XLA the fused update runs Keras' own ops in Keras' order.
        for a, b in zip(results[True, False][::2], results[False, False][::2]):
            self.assertAllEqual(a, b)

    def test_fused_equals_keras_adam_and_numpy(self):
        self._check(tf.distribute.get_strategy())

    def test_fused_on_two_replicas(self):
        self._check(distribution.two_replica_strategy())

    def test_embedding_gradients_and_checkpoints_are_interchangeable(self):
        table = tf.Variable(tf.reshape(tf.range(12, dtype=tf.float32), [4, 3]))
        fused = optimizers.make(1e-2, 0.5, 0.999, 1e-6, xla_updates=False)
        keras = optimizers.make(1e-2, 0.5, 0.999, 1e-6, xla_updates=False, fused=False)
        twin = tf.Variable(table)
        for opt, var in ((fused, table), (keras, twin)):
            with tf.GradientTape() as tape:
                rows = tf.gather(var, [1, 3, 1])  # IndexedSlices gradient, a repeated row
                loss = tf.reduce_sum(rows * [[1.0, 2.0, 3.0]])
            grad = tape.gradient(loss, var)
            self.assertIsInstance(grad, tf.IndexedSlices)
            opt.apply_gradients([(grad, var)])
        self.assertAllClose(table, twin, atol=1e-6)
        self.assertAllClose(table[0], [0.0, 1.0, 2.0])  # rows without gradient stay
        # The slots are Keras' own: a checkpoint of one restores into the other.
        prefix = os.path.join(self.create_tempdir().full_path, "c")
        path = tf.train.Checkpoint(opt=fused, var=table).save(prefix)
        restored = optimizers.make(1e-2, 0.5, 0.999, 1e-6, fused=False)
        other = tf.Variable(tf.zeros([4, 3]))
        restored.build([other])
        tf.train.Checkpoint(opt=restored, var=other).restore(path).assert_consumed()
        self.assertAllClose(restored.variables[2], fused.variables[2])  # m
        self.assertEqual(int(restored.iterations), 1)


class XlaUpdatesTest(tf.test.TestCase):
    def test_compiled_updates_from_the_parameter_threshold_on(self):
        n = optimizers.XLA_UPDATE_MIN_PARAMETERS
        # Counted over all the variables: a vector and a matrix just below, then at it.
        below = [tf.Variable(tf.zeros([n // 2 - 1])), tf.Variable(tf.zeros([2, n // 4]))]
        self.assertFalse(optimizers.xla_updates_pay(below))
        self.assertTrue(optimizers.xla_updates_pay(below + [tf.Variable(tf.zeros([1]))]))
        self.assertFalse(optimizers.xla_updates_pay([]))
        self.assertFalse(optimizers.make(1e-3, 0.0, 0.999, 1e-6, xla_updates=False).jit_compile)
        self.assertTrue(optimizers.make(1e-3, 0.0, 0.999, 1e-6).jit_compile)


class TrainerScalesTest(tf.test.TestCase):
    def test_kp_bn_with_frozen_p_and_faster_a(self):
        source = os.path.join(self.create_tempdir().full_path, "source")
        model_fixtures.make_source(source, with_d=True)
        config = train_config.TrainConfig(
            model_dir=self.create_tempdir().full_path,
            data=data.DataConfig(dataset="folder", image_folder="unused", resolution=32),
            source=source,
            optimizer=train_config.OptimizerConfig(a_lr_scale=5.0, p_lr_scale=0.0),
            batch_size=4,
            sample_every=0,
        )
        run = trainer.Trainer(config, num_classes=3)
        groups = transfer.bn_parameter_groups(run.generator)
        trained = {id(v) for v in run.models.g_variables}
        self.assertFalse(trained & {id(v) for v in groups["p"]})
        self.assertTrue({id(v) for v in groups["a"] + groups["r"]} <= trained)
        # The optimiser scales A's steps (and R keeps g_lr): the update itself is tested
        # against NumPy above.
        self.assertIsInstance(run.g_optimizer, optimizers.ScaledAdam)
        scaled = set(run.g_optimizer._lr_scales.values())
        self.assertEqual(scaled, {5.0})
        self.assertLen(run.g_optimizer._lr_scales, len(groups["a"]))
        # A tiny model's updates are not XLA-compiled (optimizers.xla_updates_pay).
        self.assertFalse(run.g_optimizer.jit_compile or run.d_optimizer.jit_compile)
        # Fused updates by default; --nofused_updates gives Keras' per-variable update.
        self.assertIsInstance(run.g_optimizer, optimizers.FusedAdam)
        self.assertIsInstance(run.d_optimizer, optimizers.FusedAdam)
        per_variable = dataclasses.replace(
            config,
            model_dir=self.create_tempdir().full_path,
            optimizer=dataclasses.replace(config.optimizer, fused_updates=False),
        )
        keras_run = trainer.Trainer(per_variable, num_classes=3)
        self.assertIsInstance(keras_run.g_optimizer, optimizers.ScaledAdam)
        self.assertNotIsInstance(keras_run.g_optimizer, optimizers.FusedAdam)
        self.assertNotIsInstance(keras_run.d_optimizer, optimizers.ScaledAdam)
        # A methods without these groups: one clear error.
        finetune = dataclasses.replace(config, method="finetune")
        with self.assertRaisesRegex(trainer.TrainingError, "finetune .* trains none of them"):
            trainer.Trainer(finetune, num_classes=3)


if __name__ == "__main__":
    tf.test.main()
