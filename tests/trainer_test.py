"""Tests of the training loop: distribution equivalence, resume, NaN stop, checkpoints."""

import dataclasses
import glob
import json
import os
import shutil
from unittest import mock

import numpy as np
import tensorflow as tf

from tests import distribution
from tests import fake_inception
from tests import model_fixtures
from tests import pytorch_biggan
from tf_cgan_transfer import affinity
from tf_cgan_transfer import class_names
from tf_cgan_transfer import data
from tf_cgan_transfer import data_sources
from tf_cgan_transfer import classifier as classifier_lib
from tf_cgan_transfer import font
from tf_cgan_transfer import layers
from tf_cgan_transfer import mixture_stats
from tf_cgan_transfer import model_io
from tf_cgan_transfer import sheets
from tf_cgan_transfer import train_config
from tf_cgan_transfer import trainer
from tf_cgan_transfer import transfer

RESOLUTION = 32
# DiffAugment and LeCam, for the tests that check the loop's guarantees hold with them on.
AIDS = dict(augment="diffaugment", lecam_weight=0.3, lecam_decay=0.9)


def tiny_config(model_dir, source, data_config, **overrides):
    config = train_config.TrainConfig(
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

    def _run(
        self,
        method,
        num_d_steps,
        grad_accumulation,
        prepare=None,
        eager_reference=False,
        eager_mirrored=False,
        source=None,
        steps=1,
        **overrides,
    ):
        """Runs the step both ways and compares; `prepare(trainer)` may first change the
        single-device trainer's weights (the mirrored one copies them). With
        `eager_reference` the single-device step runs eagerly (the same Python step
        function, without its ~30 s trace); the 2-replica step is the traced one unless
        `eager_mirrored` (its trace with accumulation and two D updates costs ~2.5 min).
        `source`: the pretrained source (None: `model_fixtures.make_source`'s). With
        `steps` > 1 the 2-replica side runs them in one compiled call
        (`GANStep.train_steps`), drawing from a distributed iterator as the trainer's."""
        source_dir = source
        if source_dir is None:
            source_dir = self.create_tempdir().full_path
            model_fixtures.make_source(source_dir, shared=True, with_d=True)
        data_config = data.DataConfig(dataset="folder", image_folder="unused", resolution=32)
        # Adam with a large epsilon behaves like SGD: its first step divides the gradient
        # by its own magnitude, which would turn float noise in near-zero gradients
        # (different summation orders on 1 vs 2 replicas) into full-size updates.
        optimizer = train_config.OptimizerConfig(g_lr=0.01, d_lr=0.01, epsilon=1.0)
        config = tiny_config(
            self.create_tempdir().full_path,
            source_dir,
            data_config,
            method=method,
            optimizer=optimizer,
            num_d_steps=num_d_steps,
            grad_accumulation=grad_accumulation,
            **overrides,
        )
        rng = np.random.default_rng(0)
        real = [
            (
                rng.uniform(-1, 1, [4, 32, 32, 3]).astype(np.float32),
                rng.integers(0, 3, [4]).astype(np.int32),
            )
            for _ in range(steps * num_d_steps * grad_accumulation)
        ]

        single = trainer.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"), num_classes=3)
        mirrored_strategy = distribution.two_replica_strategy()
        mirrored = trainer.Trainer(config, mirrored_strategy, num_classes=3)
        if prepare is not None:
            prepare(single)
        # Same starting point (fresh parameters such as A are random).
        for a, b in (
            (single.generator, mirrored.generator),
            (single.discriminator, mirrored.discriminator),
        ):
            b.set_weights(a.get_weights())

        initial_g = [v.numpy() for v in single.models.g_variables]
        micro = num_d_steps * grad_accumulation
        images = np.stack([x for x, _ in real]).reshape([steps, micro, 4, 32, 32, 3])
        labels = np.stack([y for _, y in real]).reshape([steps, micro, 4])
        single_step = single.steps._train_step if eager_reference else single.train_step
        for t in range(steps):
            single_metrics = single_step(tf.constant(images[t]), tf.constant(labels[t]))

        def per_replica(batch):  # replica r gets examples [2r, 2r + 2) of every micro-batch
            return mirrored_strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(batch[:, ctx.replica_id_in_sync_group * 2 :][:, :2])
            )

        if steps == 1:
            mirrored_step = mirrored.steps._train_step if eager_mirrored else mirrored.train_step
            mirrored_metrics = mirrored_step(per_replica(images[0]), per_replica(labels[0]))
        else:
            # One worker's dataset feeds its replicas in turn: element 2t + r is replica
            # r's slice of step t (as `Trainer.make_iterator`'s per-replica batches).
            slices = lambda x: np.stack([x[:, :, 2 * r : 2 * r + 2] for r in (0, 1)], 1)
            flat = lambda x: x.reshape([2 * steps, *x.shape[2:]])  # noqa: E731
            per_step = (flat(slices(images)), flat(slices(labels)))
            iterator = iter(
                mirrored_strategy.distribute_datasets_from_function(
                    lambda ctx: tf.data.Dataset.from_tensor_slices(per_step)
                )
            )
            mirrored_metrics = mirrored.steps.train_steps(iterator, tf.constant(steps))
            self.assertEqual(int(mirrored.step.numpy()), steps)
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

    def test_kp_bn_step_with_diffaugment_and_lecam(self):
        # Two D updates of two micro-batches each. Each replica augments its slice of the
        # global draws; LeCam's averages are updated from the cross-replica means,
        # between the two D updates too. (Which variables a method trains is
        # FrozenVariablesTest's; the cross-replica machinery is the same for every method.)
        # The source is the paper's kind: BigGAN-PyTorch G.pth and D.pth (legacy
        # container), so G and the D body carry the author's SN and BN conventions
        # through the step (which weights reach the models is transfer_test's).
        # Both steps run eagerly (MirroredStrategy runs each replica in a thread of its
        # own, with the same cross-replica sums): the traced 2-replica step is the
        # minegan test's, and the multi-worker test's (a traced run of `train`).
        source = self.create_tempdir().full_path
        pytorch_biggan.write_weights_dir(source, num_classes=model_fixtures.OLD_CLASSES)
        metrics = self._run(
            "kp_bn",
            num_d_steps=2,
            grad_accumulation=2,
            eager_reference=True,
            eager_mirrored=True,
            source=source,
            **AIDS,
        )
        self.assertGreater(metrics["l1"], 0.0)
        self.assertGreater(metrics["lecam"], 0.0)

    def test_minegan_miner_steps_in_one_call(self):
        # The miner stage: G's gradient reaches only the miner, through the frozen G and
        # its cross-replica BNs. One D update, no accumulation (that machinery is the
        # kp_bn test's). Two steps in one traced call on 2 replicas (the multi-step loop
        # of --steps_per_call) equal two single-device steps. The miner's zero output
        # layer would leave its hidden layers without gradient at step 0, so it starts
        # from small random weights here.
        def trained_miner(run):
            miner = run.generator.miner
            rng = np.random.default_rng(1)
            miner.kernel_out.assign(0.1 * rng.normal(size=miner.kernel_out.shape))

        metrics = self._run(
            "minegan", 1, 1, prepare=trained_miner, eager_reference=True, steps=2
        )
        self.assertEqual((metrics["l1"], metrics["l2"]), (0.0, 0.0))  # no A, no R


class PoisonedTrainer(trainer.Trainer):
    """Sets one D weight to NaN right after restoring, so the next step's loss is NaN."""

    def restore(self):
        step = super().restore()
        kernel = self.discriminator.linear.kernel
        kernel.assign(tf.fill(kernel.shape, float("nan")))
        return step


def _copy_run_as_of_step(source_dir, model_dir, step):
    """Copies a run directory without what its steps after `step` wrote: later
    checkpoints, sample sheets and the final models."""
    shutil.copytree(source_dir, model_dir, dirs_exist_ok=True)
    for name in ("models", "models_ema"):
        shutil.rmtree(os.path.join(model_dir, name), ignore_errors=True)
    for path in glob.glob(os.path.join(model_dir, "samples", "step_*.png")):
        if int(os.path.basename(path)[5:-4]) > step:
            os.remove(path)
    ckpt = os.path.join(model_dir, "ckpt")
    for path in glob.glob(os.path.join(ckpt, "ckpt-*")):
        if int(os.path.basename(path).split(".")[0][5:]) > step:
            os.remove(path)
    kept = os.path.join(ckpt, f"ckpt-{step}")
    tf.compat.v1.train.update_checkpoint_state(ckpt, kept, all_model_checkpoint_paths=[kept])


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
        # One uninterrupted run that the resume and fault tests start from or compare with.
        cls.straight = trainer.Trainer(cls._config(os.path.join(root, "loop_straight")))
        cls.straight.train()

    @classmethod
    def _config(cls, model_dir, **overrides):
        # Both limited-data aids on, so their draws and the LeCam state are covered too.
        base = dict(
            train_steps=4,
            checkpoint_every=2,
            ema_decay=0.9,
            deterministic=True,
            sample_every=4,
            **AIDS,
        )
        base.update(overrides)
        return tiny_config(model_dir, cls.source, cls.data, **base)

    def _final(self, run):
        lecam = [run.lecam] if run.lecam is not None else []
        return [
            v.numpy()
            for m in (run.generator, run.discriminator, run.ema_generator, *lecam)
            for v in m.variables
        ] + [run.g_optimizer.iterations.numpy()]

    def test_resumed_run_equals_uninterrupted_run(self):
        straight = self.straight
        model_dir = self.create_tempdir().full_path
        # A run that stopped after its step-2 checkpoint: the uninterrupted run's
        # directory as it was then (its checkpoint of step 2 and what came before).
        _copy_run_as_of_step(straight.config.model_dir, model_dir, 2)
        # A new process would do this.
        resumed = trainer.Trainer(self._config(model_dir))
        self.assertEqual(resumed.restore(), 2)
        resumed.train()
        self.assertEqual(int(resumed.step.numpy()), 4)
        for a, b in zip(self._final(straight), self._final(resumed)):
            self.assertAllEqual(a, b)
        self.assertEqual(int(resumed.lecam.updates.numpy()), 4)  # restored 2, then 2 more
        self.assertEqual(
            sorted(os.listdir(os.path.join(model_dir, "ckpt"))),
            sorted(os.listdir(os.path.join(straight.config.model_dir, "ckpt"))),
        )
        for name in ("models", "models_ema"):
            g, _ = model_io.restore_models(os.path.join(model_dir, name))
            self.assertEqual(g.num_classes, 3)
        # The sample sheet of the last step: rows = classes, columns = samples per class,
        # each row named at its left after its image folder.
        sheet = tf.io.decode_png(
            tf.io.read_file(os.path.join(model_dir, "samples", "step_0000004.png"))
        ).numpy()
        label_width = font.text_width("class_0") + 4
        self.assertEqual(sheet.shape, (3 * 34 + 2, label_width + 4 * 34 + 2, 3))
        self.assertTrue(np.any(sheet[2:34, :label_width] == sheets.INK))
        # Resuming without the LeCam state the checkpoint holds is one clear error.
        run = trainer.Trainer(self._config(model_dir, lecam_weight=0.0))
        with self.assertRaisesRegex(trainer.TrainingError, "does not match.*--lecam_weight"):
            run.restore()

    def test_calls_of_several_steps_resume_and_equal_single_steps(self):
        # Resumed at step 2 with calls of up to 3 steps: one call runs steps 3 and 4
        # (cut at the checkpoint, sample sheet and log due at 4).
        model_dir = self.create_tempdir().full_path
        _copy_run_as_of_step(self.straight.config.model_dir, model_dir, 2)
        resumed = trainer.Trainer(self._config(model_dir, steps_per_call=3, log_every=4))
        self.assertEqual(resumed.call_length(2), 2)
        calls = []
        original = resumed.steps.train_steps
        resumed.steps.train_steps = lambda it, n: calls.append(int(n)) or original(it, n)
        resumed.train()
        self.assertEqual(calls, [2])
        self.assertEqual(int(resumed.step.numpy()), 4)
        for a, b in zip(self._final(self.straight), self._final(resumed)):
            self.assertAllEqual(a, b)
        self.assertTrue(os.path.exists(os.path.join(model_dir, "ckpt", "ckpt-4.index")))

    def test_call_length_stops_where_a_hook_is_due(self):
        config = dataclasses.replace(
            self.straight.config,
            steps_per_call=100,
            train_steps=1000,
            log_every=50,
            sample_every=0,
            eval_every=30,
            checkpoint_every=500,
        )
        run = mock.Mock(config=config)
        lengths = [trainer.Trainer.call_length(run, s) for s in (0, 29, 30, 45, 50, 980)]
        self.assertEqual(lengths, [30, 1, 20, 5, 10, 10])
        self.assertEqual(
            trainer.Trainer.call_length(
                mock.Mock(config=dataclasses.replace(config, steps_per_call=7, eval_every=0)), 0
            ),
            7,
        )
        with self.assertRaisesRegex(trainer.TrainingError, "steps_per_call=0 must be >= 1"):
            trainer.Trainer(dataclasses.replace(config, steps_per_call=0), num_classes=3)

    def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(self):
        # Calls of up to 3 steps: the call from step 4 stops after the first poisoned
        # step (5), not at the call's end (6).
        model_dir = self.create_tempdir().full_path
        shutil.copytree(self.straight.config.model_dir, model_dir, dirs_exist_ok=True)
        run = PoisonedTrainer(
            self._config(model_dir, train_steps=6, steps_per_call=3, log_every=6)
        )
        with self.assertRaisesRegex(
            trainer.TrainingError,
            r"Non-finite .*at step 5 .*the last good checkpoint is .*ckpt-4",
        ):
            run.train()
        self.assertEqual(os.path.basename(run.manager.latest_checkpoint), "ckpt-4")
        # The models saved by the good run were not replaced by poisoned ones.
        _, d = model_io.restore_models(os.path.join(model_dir, "models"))
        self.assertTrue(np.all(np.isfinite(d.linear.kernel.numpy())))


class ClassNamesTest(tf.test.TestCase):
    def test_names_file_wins_and_a_wrong_count_fails_before_building(self):
        root = self.create_tempdir().full_path
        folder = model_fixtures.write_image_folder(os.path.join(root, "images"), per_class=1)
        data_config = data.DataConfig("folder", RESOLUTION, image_folder=folder)
        names = os.path.join(root, "names.txt")
        with open(names, "w") as f:
            f.write("tulip\nrose\n")
        config = tiny_config(os.path.join(root, "run"), "unused", data_config, class_names=names)
        with mock.patch.object(transfer, "build") as build:
            with self.assertRaisesRegex(
                class_names.ClassNamesError, f"{names} lists 2 class names, but the model has 3"
            ):
                trainer.Trainer(config)
        build.assert_not_called()


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
        # The labels are read once, into the plan that training and evaluation share.
        with mock.patch.object(
            data_sources, "read_labels", wraps=data_sources.read_labels
        ) as read_labels:
            run = trainer.Trainer(config, plan=data.validate(config.data))
            run.train()
        self.assertEqual(read_labels.call_count, 1)
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
        self.assertEqual(best["best_metric"], "fid")
        g, d = model_io.restore_models(os.path.join(model_dir, "best"))
        self.assertEqual((g.num_classes, d.num_classes), (3, 3))
        # The real statistics were computed once and cached.
        self.assertLen(glob.glob(os.path.join(model_dir, "eval_cache", "real_*.npz")), 1)
        # A kp_bn run reports its class affinities next to its final models.
        with open(os.path.join(model_dir, "class_affinity.json")) as f:
            report = json.load(f)
        self.assertEqual(report["num_new_classes"], 3)
        self.assertEqual([c["name"] for c in report["classes"]], ["class_0", "class_1", "class_2"])
        self.assertTrue(os.path.exists(os.path.join(model_dir, "class_affinity.txt")))
        # ... its heat map as a PNG, and as an image in the run's TensorBoard events.
        picture = tf.io.decode_png(
            tf.io.read_file(os.path.join(model_dir, affinity.PICTURE_FILE))
        ).numpy()
        self.assertAllEqual(picture, affinity.heatmap_picture(report))
        events = glob.glob(os.path.join(model_dir, "events.out.tfevents.*"))
        tags = {
            (v.tag, e.step)
            for path in events
            for e in tf.compat.v1.train.summary_iterator(path)
            for v in e.summary.value
        }
        self.assertIn((affinity.SUMMARY_TAG, 2), tags)
        # ... and how far the mixtures moved from the ones recorded before step 1.
        initial = mixture_stats.load_initial(os.path.join(model_dir, mixture_stats.INITIAL_FILE))
        final = mixture_stats.mixtures(model_io.load_generator(os.path.join(model_dir, "models")))
        expected = mixture_stats.diagnostics(final, initial)["overall"]
        self.assertAllClose(report["diagnostics"]["overall"], expected)
        self.assertGreater(expected["relative_change"], 0.0)
        self.assertIn(("mixtures/relative_change", 2), tags)

    def test_eval_data_replaces_the_capped_training_data_as_real_images(self):
        root = self.create_tempdir().full_path
        folder = model_fixtures.write_image_folder(os.path.join(root, "images"))  # 3 x 6
        classifier = os.path.join(root, "classifier")
        fake_inception.write_tf2_module(classifier)
        capped = data.DataConfig(
            dataset="folder", image_folder=folder, resolution=RESOLUTION, images_per_class=2
        )
        config = tiny_config(
            os.path.join(root, "run"),
            None,
            capped,
            method="scratch",
            architecture=transfer.ArchitectureConfig(ch=8, attention_resolution=0),
            eval_every=1,
            eval_num_images=18,
            eval_batch_size=6,
            classifier=classifier,
        )
        for eval_data, distinct in (
            (None, 6),
            (dataclasses.replace(capped, images_per_class=None), 18),
        ):
            run = trainer.Trainer(dataclasses.replace(config, eval_data=eval_data))
            real = run.evaluator.real_activations()
            self.assertLen(real, 18)
            self.assertLen(np.unique(real.pool, axis=0), distinct)  # the capped 6, repeated
            self.assertAllEqual(np.bincount(real.labels), [6, 6, 6])
            # The training images take part too: the capped 6, once each.
            training = run.evaluator.training_activations()
            self.assertLen(np.unique(training.pool, axis=0), 6)
            self.assertLen(training, 6)

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
        with self.assertRaises(classifier_lib.ClassifierError):
            trainer.Trainer(config, num_classes=2)


class PrecisionAndCompilationTest(tf.test.TestCase):
    """`mixed_precision` and `jit_compile` compute the float32 step, faster (with DiffAugment
    and LeCam on, so they are covered under every precision and XLA too)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = tf.compat.v1.test.get_temp_dir()
        cls.source_dir = os.path.join(root, "precision_source")
        model_fixtures.make_source(cls.source_dir, shared=True, with_d=True)
        rng = np.random.default_rng(0)
        cls.images = tf.constant(rng.uniform(-1, 1, [1, 4, 32, 32, 3]).astype(np.float32))
        cls.labels = tf.constant(rng.integers(0, 3, [1, 4]).astype(np.int32))
        # The float32 reference: its starting weights (A, R and D's embedding are fresh)
        # and the metrics and weights of its first two steps.
        reference = cls._trainer(os.path.join(root, "precision_reference"))
        cls.initial = (reference.generator.get_weights(), reference.discriminator.get_weights())
        cls.expected = [cls._step(reference) for _ in range(2)]
        cls.expected_g = reference.generator.get_weights()
        cls.reference_traces = reference.train_step.experimental_get_tracing_count()

    @classmethod
    def _trainer(cls, model_dir, initial=None, **overrides):
        data_config = data.DataConfig(dataset="folder", image_folder="unused", resolution=32)
        # SGD-like Adam (large epsilon): the first Adam step would turn rounding noise in
        # near-zero gradients into full-size updates and make G's loss incomparable. A
        # small learning rate too: G's loss is measured after D's update, and with 1e-2
        # that update amplifies bfloat16 rounding in D's gradients into a 7% change of
        # the loss for some latents (measured over seeds 3-6), which says nothing about
        # the precision of the step itself; with 1e-3 every seed agrees within 3%.
        optimizer = train_config.OptimizerConfig(g_lr=1e-3, d_lr=1e-3, epsilon=1.0)
        config = tiny_config(
            model_dir, cls.source_dir, data_config, optimizer=optimizer, **{**AIDS, **overrides}
        )
        run = trainer.Trainer(config, num_classes=3)
        if initial is not None:
            run.generator.set_weights(initial[0])
            run.discriminator.set_weights(initial[1])
        return run

    @classmethod
    def _step(cls, run):
        return {k: float(v) for k, v in run.train_step(cls.images, cls.labels).items()}

    def _variant(self, **overrides):
        return self._trainer(self.create_tempdir().full_path, self.initial, **overrides)

    def test_mixed_bfloat16_matches_float32(self):
        run = self._variant(mixed_precision="mixed_bfloat16")
        g, d = run.generator, run.discriminator
        self.assertEqual(g.blocks[0].conv0.compute_dtype, "bfloat16")
        self.assertEqual(d.blocks[0].conv1.compute_dtype, "bfloat16")
        # Variables, the conditioning path and D's projection head stay float32.
        self.assertEqual({v.dtype for v in g.variables + d.variables}, {tf.float32})
        self.assertEqual(g.conditional_batch_norms()[0].A_gamma.compute_dtype, "float32")
        self.assertEqual(d.linear.compute_dtype, "float32")
        got = self._step(run)
        for key, value in self.expected[0].items():
            self.assertAllClose(got[key], value, rtol=3e-2, atol=3e-2, msg=key)
        # The policy was scoped to the build: what is built next is float32 again.
        self.assertEqual(tf.keras.mixed_precision.global_policy().name, "float32")

    def test_mixed_float16_scales_the_loss(self):
        run = self._variant(mixed_precision="mixed_float16")
        for optimizer in (run.g_optimizer, run.d_optimizer):
            self.assertIsInstance(optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
        self.assertEqual(run.generator.blocks[0].conv0.compute_dtype, "float16")
        d_before = [v.numpy() for v in run.models.d_variables]
        got = self._step(run)
        # D's losses come before any update: the float32 ones up to float16 rounding.
        for key in ("d_loss_real", "d_loss_fake"):
            self.assertAllClose(got[key], self.expected[0][key], rtol=3e-2, atol=3e-2, msg=key)
        # Dynamic scaling: an update whose scaled float16 gradients overflowed is skipped
        # and the scale halved; otherwise it is applied at the starting scale.
        scale = float(run.d_optimizer.loss_scale)
        moved = any(np.any(v.numpy() != w) for v, w in zip(run.models.d_variables, d_before))
        self.assertEqual(moved, scale == 2.0**15, msg=f"scale {scale}")

    def test_jit_compile_matches_and_traces_once(self):
        run = self._variant(jit_compile=True)
        for expected in self.expected:
            got = self._step(run)
            for key, value in expected.items():
                self.assertAllClose(got[key], value, rtol=1e-4, atol=1e-5, msg=key)
        for a, b in zip(self.expected_g, run.generator.get_weights()):
            self.assertAllClose(a, b, rtol=1e-4, atol=1e-5)
        # Fixed shapes: one trace for every step (the slots exist before the first one).
        self.assertEqual(run.train_step.experimental_get_tracing_count(), 1)
        self.assertEqual(self.reference_traces, 1)

    def test_jit_compile_with_two_replicas_is_rejected(self):
        config = tiny_config(
            self.create_tempdir().full_path,
            self.source_dir,
            data.DataConfig(dataset="folder", image_folder="unused", resolution=32),
            jit_compile=True,
        )
        with self.assertRaisesRegex(ValueError, "jit_compile with 2 replicas.*all-reduce"):
            trainer.Trainer(config, distribution.two_replica_strategy(), num_classes=3)

    def test_unknown_policy_is_rejected(self):
        with self.assertRaisesRegex(ValueError, "mixed_bfloat16"):
            self._variant(mixed_precision="bfloat16")


class FrozenVariablesTest(tf.test.TestCase):
    """A step computes no weight gradient for a frozen variable.

    Read off each step's graph as TensorFlow runs it: a function keeps only the ops its
    outputs and stateful ops depend on, so a kernel gradient nothing consumes is never
    computed. The test counts the `Conv2DBackpropFilter` ops that remain.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source_dir = os.path.join(tf.compat.v1.test.get_temp_dir(), "frozen_source")
        model_fixtures.make_source(cls.source_dir, shared=True, with_d=True)

    def _kernel_gradients(self, method, **overrides):
        """`{"d": (computed, trained), "g": (...)}`: per step, the kernel gradients the
        pruned graph computes and the conv kernels the step's variable list trains
        (and `"run"`: the trainer)."""
        data_config = data.DataConfig(dataset="folder", image_folder="unused", resolution=32)
        config = tiny_config(
            self.create_tempdir().full_path,
            self.source_dir,
            data_config,
            method=method,
            **overrides,
        )
        run = trainer.Trainer(config, num_classes=3)
        convs = [
            layer
            for model in (run.generator, run.discriminator)
            for layer in model.submodules
            if isinstance(layer, layers.SNConv2D)
        ]

        def trained(variables):
            ids = {id(v) for v in variables}
            return sum(id(c.kernel) in ids for c in convs)

        def computed(fn, *args):
            graph = tf.function(fn).get_concrete_function(*args).graph
            live, stack = set(), [t.op for t in graph.outputs] + list(graph.control_outputs)
            while stack:  # the ops the outputs and stateful ops depend on
                op = stack.pop()
                if op.name not in live:
                    live.add(op.name)
                    stack.extend(t.op for t in op.inputs)
                    stack.extend(op.control_inputs)
            return sum(
                op.type == "Conv2DBackpropFilter" and op.name in live
                for op in graph.get_operations()
            )

        z = tf.zeros([4, run.generator.dim_z])
        labels = tf.constant([0, 1, 2, 0])
        images = tf.zeros([4, 32, 32, 3])
        # D sees real and fake images in one call: one gradient per trained kernel.
        return dict(
            d=(
                computed(run.steps.d_micro_step, images, labels, z, labels),
                trained(run.models.d_variables),
            ),
            g=(computed(run.steps.g_micro_step, z, labels), trained(run.models.g_variables)),
            run=run,
        )

    def test_kp_bn_bn_stage_computes_no_generator_kernel_gradients(self):
        counts = self._kernel_gradients("kp_bn")
        self.assertEqual(counts["g"], (0, 0))  # every conv of G is frozen in the BN stage
        self.assertGreater(counts["d"][1], 0)
        self.assertEqual(counts["d"][0], counts["d"][1])

    def test_minegan_miner_stage_computes_gradients_of_the_miner_only(self):
        counts = self._kernel_gradients("minegan")
        self.assertEqual(counts["g"], (0, 0))  # G's body is frozen in the miner stage
        self.assertEqual(counts["d"][0], counts["d"][1])
        run = counts["run"]
        self.assertEqual(
            [id(v) for v in run.models.g_variables],
            [id(v) for v in run.generator.miner.trainable_variables],
        )
        # Every miner variable gets a gradient (through the whole frozen G).
        z = tf.random.normal([4, run.generator.dim_z])
        grads = run.steps.g_micro_step(z, tf.constant([0, 1, 2, 0]))[0]
        self.assertNotIn(None, grads)
        miner = run.generator.miner
        by_variable = {id(v): g for v, g in zip(run.models.g_variables, grads)}
        # Before training only the output layer and the class logits move (z' = z).
        for v in (miner.kernel_out, miner.class_logits):
            self.assertGreater(float(tf.reduce_max(tf.abs(by_variable[id(v)]))), 0.0, v.name)

    def test_finetune_and_freeze_d_compute_exactly_the_trained_kernels(self):
        counts = self._kernel_gradients("finetune")
        self.assertGreater(counts["g"][1], 0)
        self.assertEqual(counts["g"][0], counts["g"][1])
        self.assertEqual(counts["d"][0], counts["d"][1])
        frozen_d = self._kernel_gradients("freeze_d", freeze_d_blocks=2)["d"]
        self.assertLess(frozen_d[1], counts["d"][1])
        self.assertEqual(frozen_d[0], frozen_d[1])


if __name__ == "__main__":
    tf.test.main()
