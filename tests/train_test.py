"""Tests of the train.py command line: flagfiles, validation, an end-to-end run."""

import dataclasses
import glob
import json
import os
import subprocess
import sys

from absl import flags
import tensorflow as tf

from tests import model_fixtures
from tests import pytorch_biggan
from tf_cgan_transfer import precision
from tf_cgan_transfer.limited_data import DEFAULT_POLICY
from tf_cgan_transfer import train

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(*args):
    """Fresh FlagValues with the training flags, parsed from `args` (cwd = repo root)."""
    fv = flags.FlagValues()
    train.define_flags(fv)
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        fv(["train", *args])
    finally:
        os.chdir(cwd)
    return fv


class FlagfileTest(tf.test.TestCase):
    def test_every_config_parses_and_validates(self):
        paths = sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "*.flags")))
        self.assertGreaterEqual(len(paths), 8)
        for path in paths:
            with self.subTest(config=os.path.basename(path)):
                with open(path) as f:
                    first = f.readline()
                # Each flagfile starts with the command that runs it.
                self.assertRegex(first, r"^# python -m tf_cgan_transfer\.train --flagfile=configs/")
                fv = parse(f"--flagfile={os.path.relpath(path, REPO_ROOT)}")
                config = train.config_from_flags(fv)
                self.assertIn(config.data.resolution, (32, 128))
                self.assertTrue(config.model_dir.startswith("runs/"))
                # Each reproduces a paper or README setting, trained without augmentation
                # although train's default is DiffAugment, and (kp_bn) from the
                # reference's orthogonal mixtures although train's default is auto.
                self.assertEqual(config.augment, "none")
                if config.method == "kp_bn":
                    self.assertEqual(config.mixture_init, "orthogonal")

    def test_flags_after_the_flagfile_override_it(self):
        fv = parse("--flagfile=configs/flowers.flags", "--train_steps=7", "--model_dir=/tmp/x")
        config = train.config_from_flags(fv)
        self.assertEqual(config.train_steps, 7)
        self.assertEqual(config.model_dir, "/tmp/x")
        self.assertEqual(config.data.resolution, 128)  # from the hub handle's name
        self.assertEqual(config.grad_accumulation, 8)
        # Default: bfloat16 where the hardware runs it (benchmarks/results/throughput.md).
        self.assertEqual(config.mixed_precision, precision.resolve("auto"))

    def test_ft_flagfile_resumes_from_the_bn_run(self):
        config = train.config_from_flags(parse("--flagfile=configs/flowers_ft.flags"))
        self.assertEqual((config.method, config.stage), ("kp_bn", "ft"))
        self.assertEqual(config.bn_checkpoint, "runs/flowers_bn")

    def test_minegan_stages(self):
        fv = parse("--flagfile=configs/flowers.flags", "--method=minegan", "--stage=miner")
        config = train.config_from_flags(fv)
        self.assertEqual((config.method, config.resolved_stage), ("minegan", "miner"))
        ft = ["--flagfile=configs/flowers.flags", "--method=minegan", "--stage=ft"]
        config = train.config_from_flags(parse(*ft, "--bn_checkpoint=runs/flowers_miner"))
        self.assertEqual(config.bn_checkpoint, "runs/flowers_miner")
        with self.assertRaisesRegex(
            Exception, r"--stage=ft of minegan needs --bn_checkpoint \(the miner stage's"
        ):
            train.config_from_flags(parse(*ft))
        # flowers.flags says --stage=bn, which is kp_bn's; miner is minegan's only.
        for method, stage in (("minegan", "bn"), ("kp_bn", "miner")):
            fv = parse("--flagfile=configs/flowers.flags", f"--method={method}", f"--stage={stage}")
            with self.assertRaisesRegex(Exception, f"Method '{method}' has no stage '{stage}'"):
                train.config_from_flags(fv)

    def test_bad_flags_fail_before_any_work(self):
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "value should be one of"):
            parse("--model_dir=/tmp/x", "--dataset=cifar100", "--method=kpbn")
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "--source is required unless"):
            parse("--model_dir=/tmp/x", "--dataset=cifar100", "--method=kp_bn")
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "--batch_size must be >= 1"):
            parse("--flagfile=configs/flowers.flags", "--batch_size=0")
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "--image_folder goes with"):
            parse("--flagfile=configs/flowers.flags", "--image_folder=/data")
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "distinct non-negative integers"):
            parse("--flagfile=configs/flowers.flags", "--classes=1,1")
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "model_dir"):
            parse("--dataset=cifar100", "--source=deepmind/biggan-128/2")
        fv = parse("--flagfile=configs/flowers.flags", "--stage=ft")
        with self.assertRaisesRegex(Exception, "needs --bn_checkpoint"):
            train.config_from_flags(fv)
        fv = parse("--flagfile=configs/flowers.flags", "--method=finetune")
        with self.assertRaisesRegex(Exception, "Method 'finetune' has no stage 'bn'"):
            train.config_from_flags(fv)

    def test_biggan_pytorch_source(self):
        weights = self.create_tempdir().full_path
        pytorch_biggan.write_weights_dir(weights)
        fv = parse(
            "--model_dir=/tmp/x", "--dataset=cifar100", f"--source={weights}", "--source_ema"
        )
        config = train.config_from_flags(fv)
        self.assertTrue(config.source_ema)
        self.assertEqual(config.data.resolution, 32)  # read from G.pth's shapes
        self.assertFalse(
            train.config_from_flags(parse("--flagfile=configs/flowers.flags")).source_ema
        )
        fv = parse("--flagfile=configs/flowers.flags", "--source_ema")  # a TF-Hub source
        with self.assertRaisesRegex(
            Exception, "--source_ema chooses G_ema.pth of a BigGAN-PyTorch"
        ):
            train.config_from_flags(fv)

    def test_mixture_flags(self):
        config = train.config_from_flags(
            parse("--flagfile=configs/flowers.flags", "--mixture_init=uniform")
        )
        self.assertEqual((config.mixture_init, config.mixture_spectral_norm), ("uniform", True))
        self.assertEqual(config.transfer_config(5).mixture_init, "uniform")
        config = train.config_from_flags(
            parse(
                "--flagfile=configs/flowers.flags",
                "--mixture_init=zeros",
                "--nomixture_spectral_norm",
            )
        )
        self.assertFalse(config.transfer_config(5).mixture_spectral_norm)
        fv = parse("--flagfile=configs/flowers.flags", "--a_lr_scale=10", "--p_lr_scale=0")
        scales = train.config_from_flags(fv).optimizer.lr_scales()
        self.assertEqual(scales, dict(a=10.0, r=1.0, p=0.0))
        self.assertTrue(train.config_from_flags(fv).optimizer.fused_updates)  # the default
        fv = parse("--flagfile=configs/flowers.flags", "--nofused_updates")
        self.assertFalse(train.config_from_flags(fv).optimizer.fused_updates)
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "r_lr_scale"):
            parse("--flagfile=configs/flowers.flags", "--r_lr_scale=-1")
        fv = parse("--flagfile=configs/flowers.flags", "--mixture_init=zeros")
        with self.assertRaisesRegex(Exception, "--nomixture_spectral_norm"):
            train.config_from_flags(fv)
        fv = parse("--flagfile=configs/flowers.flags", "--mixture_init=prior")  # TF-Hub: no D
        with self.assertRaisesRegex(Exception, "--mixture_init=prior .* TF-Hub BigGAN has none"):
            train.config_from_flags(fv)

    def test_limited_data_flags(self):
        # The command line's default is DiffAugment (measured on the demo transfer)...
        fv = parse("--model_dir=/x", "--dataset=cifar100", "--method=scratch", "--resolution=32")
        self.assertEqual((fv.augment, fv.augment_policy), ("diffaugment", list(DEFAULT_POLICY)))
        self.assertEqual(fv.lecam_weight, 0.0)  # LeCam made kp_bn worse there: off
        self.assertIn("the default", fv["augment"].help)
        # ... and the paper-reproduction configs train as the paper did.
        config = train.config_from_flags(parse("--flagfile=configs/flowers.flags"))
        self.assertEqual((config.augment, config.lecam_weight), ("none", 0.0))
        fv = parse(
            "--flagfile=configs/flowers.flags",
            "--augment=diffaugment",
            "--augment_policy=translation, cutout",
            "--lecam_weight=0.3",
        )
        config = train.config_from_flags(fv)
        self.assertEqual(config.augment, "diffaugment")
        self.assertEqual(config.augment_policy, ("translation", "cutout"))
        self.assertEqual((config.lecam_weight, config.lecam_decay), (0.3, 0.99))
        self.assertEqual(train.config_from_flags(parse(*train.flag_lines(fv))), config)
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "--lecam_weight must be >= 0"):
            parse("--flagfile=configs/flowers.flags", "--lecam_weight=-0.1")
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "--lecam_decay must be in"):
            parse("--flagfile=configs/flowers.flags", "--lecam_decay=1")
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "value should be one of"):
            parse("--flagfile=configs/flowers.flags", "--augment=ada")
        # A typo in the policy fails at start-up, even while augmentation is off.
        fv = parse("--flagfile=configs/flowers.flags", "--augment_policy=colour")
        with self.assertRaisesRegex(ValueError, "Unknown augmentation 'colour'.*choose from"):
            train.config_from_flags(fv)

    def test_evaluation_flags(self):
        config = train.config_from_flags(parse("--flagfile=configs/flowers.flags"))
        self.assertEqual((config.eval_data, config.best_metric), (None, "fid"))
        self.assertIsNone(config.classifier_classes)
        fv = parse(
            "--flagfile=configs/flowers.flags",
            "--split=train",
            "--images_per_class=10",
            "--eval_split=test",
            "--best_metric=kid",
            "--classifier_classes=same",
        )
        config = train.config_from_flags(fv)
        self.assertEqual(
            config.eval_data,
            dataclasses.replace(config.data, split="test", images_per_class=None, flip=False),
        )
        self.assertEqual((config.best_metric, config.classifier_classes), ("kid", "same"))
        self.assertEqual(train.config_from_flags(parse(*train.flag_lines(fv))), config)
        fv = parse(
            "--flagfile=configs/flowers.flags",
            "--classes=3,4",
            "--eval_image_folder=/data/held_out",
            "--eval_classes=1,0",
            "--classifier_classes=7,9",
        )
        config = train.config_from_flags(fv)
        self.assertEqual(
            (config.eval_data.dataset, config.eval_data.image_folder, config.eval_data.classes),
            ("folder", "/data/held_out", (1, 0)),
        )
        self.assertEqual(config.classifier_classes, (7, 9))
        for extra, message in (
            (["--best_metric=is"], "value should be one of <fid|kid|mean_per_class_fid>"),
            (["--eval_split=test", "--eval_image_folder=/x"], "one of --eval_split or"),
            (["--classifier_classes=same,3"], "--classifier_classes must be 'same' or"),
            (["--eval_classes=1,1"], "--eval_classes must be a list of distinct"),
        ):
            with self.assertRaisesRegex(flags.IllegalFlagValueError, message):
                parse("--flagfile=configs/flowers.flags", *extra)

    def test_class_names_flags(self):
        names = os.path.join(self.create_tempdir().full_path, "names.txt")
        with open(names, "w") as f:
            f.write("tulip\nrose\n")
        fv = parse(
            "--flagfile=configs/flowers.flags",
            f"--class_names={names}",
            f"--source_class_names={names}",
        )
        config = train.config_from_flags(fv)
        self.assertEqual((config.class_names, config.source_class_names), (names, names))
        self.assertIn(f"--class_names={names}", train.flag_lines(fv))
        for flag in ("class_names", "source_class_names"):
            with self.assertRaisesRegex(
                flags.IllegalFlagValueError, f"--{flag} must be an existing text file"
            ):
                parse("--flagfile=configs/flowers.flags", f"--{flag}=/no/such/names.txt")

    def test_resolved_flags_round_trip(self):
        fv = parse("--flagfile=configs/cifar100.flags", "--model_dir=/tmp/run")
        lines = train.flag_lines(fv)
        self.assertIn("--model_dir=/tmp/run", lines)
        self.assertIn("--method=kp_bn", lines)
        again = train.config_from_flags(parse(*lines))
        self.assertEqual(again, train.config_from_flags(fv))


class CommandLineTest(tf.test.TestCase):
    """`python -m tf_cgan_transfer.train` end to end, and its one-line user errors."""

    def _train(self, *args):
        return subprocess.run(
            [sys.executable, "-m", "tf_cgan_transfer.train", *args],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=600,
        )

    def test_scratch_run_writes_its_run_directory(self):
        root = self.create_tempdir().full_path
        folder = model_fixtures.write_image_folder(os.path.join(root, "images"))
        model_dir = os.path.join(root, "run")
        args = [
            f"--model_dir={model_dir}",
            "--method=scratch",
            "--dataset=folder",
            f"--image_folder={folder}",
            "--resolution=32",
            "--ch=8",
            "--attention_resolution=0",
            "--batch_size=4",
            "--train_steps=2",
            "--sample_every=0",
            "--mixed_precision=float32",
        ]
        result = self._train(*args)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("Finished 2 steps", result.stdout)
        for name in ("flags.txt", "config.json", "generator_config.json", "models/models.index"):
            self.assertTrue(os.path.exists(os.path.join(model_dir, name)), name)
        with open(os.path.join(model_dir, "config.json")) as f:
            self.assertEqual(json.load(f)["data"]["image_folder"], folder)
        with open(os.path.join(model_dir, "flags.txt")) as f:
            lines = f.read().split()
        # The shared data flags are in the resolved flagfile too.
        self.assertIn(f"--image_folder={folder}", lines)
        self.assertIn("--dataset=folder", lines)
        # --noresume refuses an existing run: one line, exit code 2, nothing touched.
        result = self._train(*args, "--noresume")
        self.assertEqual(result.returncode, 2)
        self.assertRegex(result.stderr, r"error: .*ckpt already holds checkpoints and --noresume")
        self.assertNotIn("Traceback", result.stderr)

    def test_bad_data_is_one_line_and_exit_code_2(self):
        root = self.create_tempdir().full_path
        result = self._train(
            f"--model_dir={os.path.join(root, 'run')}",
            "--method=scratch",
            "--dataset=folder",
            f"--image_folder={os.path.join(root, 'missing')}",
            "--resolution=32",
        )
        self.assertEqual(result.returncode, 2)
        self.assertIn("error: Image folder", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
