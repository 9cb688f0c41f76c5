"""Tests of tf_cgan_transfer.model_io: run layout, save/restore, finding and loading."""

import os

import tensorflow as tf

from tests import model_fixtures
from tests.model_fixtures import tiny_generator
from tf_cgan_transfer import biggan
from tf_cgan_transfer import discriminator as discriminator_lib
from tf_cgan_transfer import model_io


class SaveRestoreTest(tf.test.TestCase):
    def test_save_and_restore(self):
        g = tiny_generator(64, dim_z=10).build_weights()
        d = discriminator_lib.Discriminator(64, ch=8, num_classes=3).build_weights()
        for bn in g.standing_batch_norms():  # non-trainable state must survive too
            bn.accumulated_mean.assign(tf.random.normal(bn.accumulated_mean.shape))
        directory = self.create_tempdir().full_path
        model_io.save_models(directory, g, d)
        restored_g, restored_d = model_io.restore_models(directory)
        z, y = biggan.sample_z(2, 10, seed=5), tf.constant([2, 0])
        self.assertAllEqual(restored_g((z, y)), g((z, y)))
        self.assertEqual(restored_g.get_config(), g.get_config())
        x = g((z, y))
        self.assertAllEqual(restored_d((x, y)), d((x, y)))

    def test_save_and_restore_generator_only(self):
        g = tiny_generator(32, ch=8, dim_z=8).build_weights()
        directory = self.create_tempdir().full_path
        model_io.save_models(directory, g)
        restored_g, restored_d = model_io.restore_models(directory)
        self.assertIsNone(restored_d)
        z, y = biggan.sample_z(2, 8, seed=6), tf.constant([1, 0])
        self.assertAllEqual(restored_g((z, y)), g((z, y)))

    def test_save_and_restore_minegan_generator(self):
        g = tiny_generator(
            32, ch=8, dim_z=8, conditioning="minegan", num_source_classes=5, miner_hidden_dim=6
        ).build_weights()
        for w in g.miner.weights:  # a trained miner: z' != z, class weights not uniform
            w.assign(tf.random.normal(w.shape))
        directory = self.create_tempdir().full_path
        model_io.save_models(directory, g)
        restored = model_io.load_generator(directory)
        self.assertEqual(restored.get_config(), g.get_config())
        self.assertEqual(restored.miner.hidden_dim, 6)
        z, y = biggan.sample_z(2, 8, seed=7), tf.constant([2, 0])
        self.assertAllEqual(restored((z, y)), g((z, y)))

    def test_find_models_dir_of_a_finished_run(self):
        run = self.create_tempdir().full_path
        self.assertIsNone(model_io.find_models_dir(run))
        g = tiny_generator(32, ch=8, dim_z=8).build_weights()
        model_io.save_models(os.path.join(run, "models"), g)
        self.assertEqual(model_io.find_models_dir(run), os.path.join(run, "models"))
        self.assertEqual(
            model_io.find_models_dir(run, prefer_ema=True), os.path.join(run, "models")
        )
        model_io.save_models(os.path.join(run, "models_ema"), g)
        self.assertEqual(model_io.find_models_dir(run), os.path.join(run, "models"))
        self.assertEqual(
            model_io.find_models_dir(run, prefer_ema=True), os.path.join(run, "models_ema")
        )
        models = os.path.join(run, "models")
        self.assertEqual(model_io.find_models_dir(models, prefer_ema=True), models)

    def test_restore_from_wrong_directory(self):
        directory = self.create_tempdir().full_path
        with self.assertRaisesRegex(model_io.ModelError, "generator_config.json not found"):
            model_io.restore_models(directory)


class RunLayoutTest(tf.test.TestCase):
    def test_every_path_of_a_run(self):
        layout = model_io.RunLayout("/runs/x")
        self.assertEqual(layout.ckpt_dir, "/runs/x/ckpt")
        self.assertEqual(layout.models_dir, "/runs/x/models")
        self.assertEqual(layout.ema_models_dir, "/runs/x/models_ema")
        self.assertEqual(layout.best_metrics_file, "/runs/x/best/metrics.json")
        self.assertEqual(layout.eval_file(7), "/runs/x/eval/step_0000007.json")
        self.assertEqual(layout.sample_file(12), "/runs/x/samples/step_0000012.png")
        self.assertEqual(layout.checkpoint_path(3), "/runs/x/ckpt/ckpt-3")
        self.assertEqual(layout.generator_config_file, "/runs/x/generator_config.json")
        self.assertEqual(layout.worker("worker", 1).root, "/runs/x/workertemp_worker_1")


class LoadTest(tf.test.TestCase):
    def _checkpoint_only_run(self, with_ema):
        """A run directory with ckpt/ and generator_config.json, as an unfinished run."""
        run = self.create_tempdir().full_path
        g = tiny_generator(32, ch=8, dim_z=8).build_weights()
        objects = {model_io.GENERATOR_KEY: g}
        ema = None
        if with_ema:
            ema = biggan.Generator.from_config(g.get_config()).build_weights()
            objects[model_io.EMA_GENERATOR_KEY] = ema
        manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**objects), model_io.RunLayout(run).ckpt_dir, max_to_keep=2
        )
        manager.save(checkpoint_number=5)
        model_io.write_json(model_io.RunLayout(run).generator_config_file, g.get_config())
        return run, g, ema

    def test_checkpoint_only_run_loads_the_ema_generator_first(self):
        z, y = biggan.sample_z(2, 8, seed=1), tf.constant([0, 2])
        run, g, ema = self._checkpoint_only_run(with_ema=True)
        self.assertAllEqual(model_io.load_generator(run)((z, y)), ema((z, y)))
        self.assertNotAllClose(ema((z, y)), g((z, y)))  # the two differ: the test can fail
        run, g, _ = self._checkpoint_only_run(with_ema=False)
        self.assertAllEqual(model_io.load_generator(run)((z, y)), g((z, y)))
        self.assertTrue(model_io.is_model_path(run))

    def test_finished_run_loads_models_ema_then_models(self):
        run = self.create_tempdir().full_path
        g = tiny_generator(32, ch=8, dim_z=8).build_weights()
        model_io.save_models(os.path.join(run, "models"), g)
        z, y = biggan.sample_z(2, 8, seed=2), tf.constant([1, 1])
        self.assertAllEqual(model_io.load_generator(run)((z, y)), g((z, y)))
        ema = biggan.Generator.from_config(g.get_config()).build_weights()
        model_io.save_models(os.path.join(run, "models_ema"), ema)
        self.assertAllEqual(model_io.load_generator(run)((z, y)), ema((z, y)))
        self.assertEqual(model_io.generator_config(run)["resolution"], 32)
        self.assertEqual(model_io.source_resolution(run), 32)

    def test_nothing_to_load_is_one_clear_error(self):
        empty = self.create_tempdir().full_path
        self.assertFalse(model_io.is_model_path(empty))
        self.assertIsNone(model_io.generator_config(empty))
        with self.assertRaisesRegex(model_io.ModelError, "neither a model directory"):
            model_io.load_generator(empty)
        with self.assertRaisesRegex(model_io.ModelError, "holds no saved models"):
            model_io.load_models(empty)

    def test_load_source_of_our_directory_keeps_the_discriminator(self):
        directory = self.create_tempdir().full_path
        model_fixtures.make_source(directory, shared=True, with_d=True)
        g, d = model_io.load_source(directory)
        self.assertIsInstance(d, discriminator_lib.Discriminator)
        self.assertEqual(g.num_classes, model_fixtures.OLD_CLASSES)

    def test_resolution_of_hub_handles_needs_no_network(self):
        self.assertEqual(model_io.source_resolution("deepmind/biggan-256/2"), 256)
        self.assertEqual(model_io.source_resolution("https://tfhub.dev/deepmind/biggan-512/2"), 512)
        self.assertIsNone(model_io.source_resolution("someone/model/1"))


if __name__ == "__main__":
    tf.test.main()
