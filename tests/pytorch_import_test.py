"""Tests of tf_cgan_transfer.pytorch_import and pytorch_checkpoint against a miniature
BigGAN-PyTorch (tests/pytorch_biggan.py: the author's layout and forward in raw torch)."""

import atexit
import functools
import os
import shutil
import sys
import tempfile
import types
from unittest import mock

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tests import pytorch_biggan
from tf_cgan_transfer import pytorch_checkpoint
from tf_cgan_transfer import pytorch_import
from tf_cgan_transfer.pytorch_checkpoint import PytorchImportError

# Parity bound of G's images and D's logits (float32 against the float64 reference;
# measured: G 1.3e-6, D 9e-7). Every importer bug below moves them by more than 3x it.
TOLERANCE = 1e-5
# The miniature: 64 px (the resolution where the author's D table differs from ours),
# G attention after its last block (64x64), D attention after block 0 (32x32).
CLASSES = 5
G_LAYOUT = dict(resolution=64, ch=4, num_classes=CLASSES, shared_dim=8, z_chunk=3)
G_ATTENTION_BLOCK, D_ATTENTION_BLOCK, D_CH = 3, 0, 8
DIM_Z = 3 * 5


def _numpy(state):
    return {k: v.numpy() for k, v in state.items()}


def _zero_memory(layout):
    """Arrays of the layout's shapes that allocate nothing (views of one scalar)."""
    return {k: np.broadcast_to(np.float32(0), s) for k, s in layout.items()}


@functools.lru_cache(maxsize=None)
def _fixture():
    """Genuine .pth files of a miniature G, G_ema and D, and their reference outputs.

    Built once per process: every class below reads the same files.
    """
    root = tempfile.mkdtemp(prefix="pytorch_import_test_")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    g_layout = pytorch_biggan.g_layout(**G_LAYOUT, attention_block=G_ATTENTION_BLOCK)
    d_layout = pytorch_biggan.d_layout(64, D_CH, CLASSES, D_ATTENTION_BLOCK)
    torch_states = {
        "G": pytorch_biggan.random_state(g_layout, seed=1),
        "G_ema": pytorch_biggan.random_state(g_layout, seed=2),
        "D": pytorch_biggan.random_state(d_layout, seed=3),
    }
    for name, state in torch_states.items():
        # The released files are probably legacy; newer runs write zip files.
        pytorch_biggan.write(state, os.path.join(root, "legacy", f"{name}.pth"), legacy=True)
        pytorch_biggan.write(state, os.path.join(root, "zip", f"{name}.pth"))
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=[2, DIM_Z]).astype(np.float32), np.array([4, 1])
    images = {n: pytorch_biggan.generate(torch_states[n], z, y) for n in ("G", "G_ema")}
    x = images["G"].astype(np.float32)
    downsample = pytorch_biggan.D_ARCH[64][1]
    return types.SimpleNamespace(
        root=root,
        states={name: _numpy(state) for name, state in torch_states.items()},
        z=z,
        y=y,
        images=images,
        x=x,
        logits=pytorch_biggan.discriminate(torch_states["D"], x, y, downsample),
    )


class _Fixture(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for name, value in vars(_fixture()).items():
            setattr(cls, name, value)

    def g_error(self, generator, name="G"):
        return float(np.max(np.abs(generator((self.z, self.y)).numpy() - self.images[name])))

    def d_error(self, discriminator):
        return float(np.max(np.abs(discriminator((self.x, self.y)).numpy() - self.logits)))


def _conv_kh_kw_swapped(w, **_):
    return np.transpose(w, (3, 2, 1, 0))


def _conv_reshaped(w, **_):
    return w.reshape(w.shape[2], w.shape[3], w.shape[1], w.shape[0])


def _fresh_u(w, **_):  # what a layer holds when the importer forgets u0
    return np.random.default_rng(0).normal(size=w.shape).astype(np.float32)


_T = pytorch_import.TRANSFORMS
_TRANSFORM_BUGS = {
    "conditioning_order": {"hyper_bn": (_T["hyper_bn"][0], lambda w, **_: w.T)},
    "first_linear_order": {
        "first_linear": (_T["first_linear"][0], lambda w, **_: w.T),
        "first_linear_vector": _T["as_is"],
        "first_linear_u": _T["as_is"],
    },
    "first_linear_u0_not_permuted": {"first_linear_u": _T["as_is"]},
    "conv_kh_kw_swapped": {"conv": (_T["conv"][0], _conv_kh_kw_swapped)},
    "conv_reshaped": {"conv": (_T["conv"][0], _conv_reshaped)},
    "sn_u0_not_imported": {"sn_u": (_T["sn_u"][0], _fresh_u)},
}
_CONVENTION_BUGS = {
    "bn_epsilon_of_the_hub": (dict(bn_epsilon=1e-4, final_bn_epsilon=1e-4), {}),
    # Checked on D (the more sensitive); the settings are the same in G (biggan_test).
    "sn_normalisation_of_the_hub": ({}, dict(sn_epsilon=1e-4, sn_norm_style="rsqrt")),
}


class ParityTest(_Fixture, parameterized.TestCase):
    """Our import against the author's forward; each importer bug of docs/pytorch_layout.md
    §7/§9 applied to the import fails the same check."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.g, cls.d, cls.reports = pytorch_import.load_models(os.path.join(cls.root, "legacy"))

    def test_both_containers_hold_the_same_state_dict(self):
        for name, state in self.states.items():
            for container in ("legacy", "zip"):
                path = os.path.join(self.root, container, f"{name}.pth")
                read = pytorch_checkpoint.read_state_dict(path)
                self.assertEqual(list(read), list(state))
                for key in state:
                    self.assertAllEqual(read[key], state[key])

    def test_generator_matches_the_author_forward_in_eval_mode(self):
        pytorch_import.import_state_dict(self.g, self.states["G"])
        self.assertLess(self.g_error(self.g), TOLERANCE)
        self.assertGreater(np.std(self.images["G"]), 0.1)  # not a saturated, trivial output
        report = self.reports[0]
        self.assertTrue(report.path.endswith(os.path.join("legacy", "G.pth")))
        self.assertEqual(
            {k: report.config[k] for k in ("resolution", "ch", "dim_z", "attention_resolution")},
            dict(resolution=64, ch=4, dim_z=DIM_Z, attention_resolution=64),
        )
        # Every sv0 (set to 123 in the files: never a sigma) and nothing else is ignored.
        self.assertEqual(report.ignored_keys, sorted(k for k in self.states["G"] if ".sv0" in k))
        self.assertLen(report.loaded_keys, len(self.states["G"]) - len(report.ignored_keys))

    def test_ema_generator_from_the_zip_container(self):
        files = pytorch_checkpoint.find_files(os.path.join(self.root, "zip"), ema=True)
        self.assertTrue(files.generator.endswith(os.path.join("zip", "G_ema.pth")))
        state = pytorch_checkpoint.read_state_dict(files.generator)
        pytorch_import.import_state_dict(self.g, state)
        self.assertLess(self.g_error(self.g, "G_ema"), TOLERANCE)
        self.assertGreater(self.g_error(self.g, "G"), 100 * TOLERANCE)

    def test_discriminator_matches_the_author_logits(self):
        pytorch_import.import_state_dict(self.d, self.states["D"])
        self.assertLess(self.d_error(self.d), TOLERANCE)
        # The author's 64-px multipliers (ours are (2, 4, 8, 16, 16)), attention at 32x32,
        # the projection embedding's u over the classes.
        self.assertEqual(self.d.channel_multipliers, (1, 2, 4, 8, 16))
        self.assertEqual(self.d.attention_index, 0)
        self.assertEqual(self.d.embedding.u.shape, [1, CLASSES])
        self.assertTrue(self.reports[1].path.endswith(os.path.join("legacy", "D.pth")))

    def test_missing_and_misshaped_keys_in_one_error(self):
        pytorch_import.import_state_dict(self.g, self.states["G"])
        before = self.g.blocks[1].conv1.kernel.numpy().tolist()
        state = {k: v + 1.0 for k, v in self.states["G"].items()}
        del state["blocks.1.0.conv2.weight"], state["output_layer.0.stored_var"]
        state["blocks.0.0.bn2.gain.weight"] = state["blocks.0.0.bn2.gain.weight"][:, :-1]
        with self.assertRaises(PytorchImportError) as caught:
            pytorch_import.import_state_dict(self.g, state, "G.pth")
        message = str(caught.exception)
        self.assertEqual(self.g.blocks[1].conv1.kernel.numpy().tolist(), before)  # untouched
        self.assertIn("G.pth does not fit a BigGAN-PyTorch generator (3 problem(s))", message)
        self.assertIn("missing key blocks.1.0.conv2.weight: expected shape [32, 32, 3, 3]", message)
        self.assertIn("missing key output_layer.0.stored_var: expected shape [8]", message)
        self.assertIn(
            "key blocks.0.0.bn2.gain.weight: expected shape [64, 11], found [64, 10]", message
        )
        with self.assertRaisesRegex(PytorchImportError, "discriminator state_dict"):
            pytorch_import.generator_from_state_dict(self.states["D"])
        with self.assertRaisesRegex(PytorchImportError, "generator state_dict"):
            pytorch_import.discriminator_from_state_dict(self.states["G"])

    def errors(self, g, d):
        return self.g_error(g), self.d_error(d) if d is not None else 0.0

    @parameterized.named_parameters(*_TRANSFORM_BUGS.items())
    def test_layout_bug_fails_parity(self, bug):
        touches_d = any(kind in bug for kind in ("conv", "sn_u"))  # the rest are G's only
        with mock.patch.dict(pytorch_import.TRANSFORMS, bug):
            pytorch_import.import_state_dict(self.g, self.states["G"])
            if touches_d:
                pytorch_import.import_state_dict(self.d, self.states["D"])
        g_error, d_error = self.errors(self.g, self.d if touches_d else None)
        self.assertGreater(max(g_error, d_error), 3 * TOLERANCE)

    @parameterized.named_parameters(*((name, *bugs) for name, bugs in _CONVENTION_BUGS.items()))
    def test_convention_bug_fails_parity(self, g_bug, d_bug):
        with mock.patch.dict(pytorch_import.G_CONVENTIONS, g_bug), mock.patch.dict(
            pytorch_import.D_CONVENTIONS, d_bug
        ):
            if g_bug:
                g, _ = pytorch_import.generator_from_state_dict(self.states["G"])
                self.assertGreater(self.g_error(g), 3 * TOLERANCE)
            if d_bug:
                d, _ = pytorch_import.discriminator_from_state_dict(self.states["D"])
                self.assertGreater(self.d_error(d), 3 * TOLERANCE)


class FilesAndErrorsTest(_Fixture):
    def test_weight_files_of_a_directory(self):
        directory = self.create_tempdir().full_path
        for name in ("G_copy0", "D_copy0", "G_ema_copy0", "G_best1", "G_optim_best1"):
            open(os.path.join(directory, f"{name}.pth"), "wb").close()
        files = pytorch_checkpoint.find_files(directory, suffix="copy0")
        self.assertEqual(files.generator, os.path.join(directory, "G_copy0.pth"))
        self.assertEqual(files.discriminator, os.path.join(directory, "D_copy0.pth"))
        ema = pytorch_checkpoint.find_files(directory, ema=True)  # the only G_ema save
        self.assertEqual(ema.generator, os.path.join(directory, "G_ema_copy0.pth"))
        best = pytorch_checkpoint.find_files(os.path.join(directory, "G_best1.pth"))
        self.assertIsNone(best.discriminator)  # no D_best1.pth beside it
        with self.assertRaisesRegex(PytorchImportError, "best1: G.*copy0: D/G/G_ema"):
            pytorch_checkpoint.find_files(directory)  # two saves with a G: which one?
        self.assertTrue(pytorch_checkpoint.is_weights_dir(directory))
        self.assertFalse(pytorch_checkpoint.is_weights_dir(self.create_tempdir().full_path))
        latest = pytorch_checkpoint.find_files(os.path.join(self.root, "zip"))
        self.assertEqual(latest.generator, os.path.join(self.root, "zip", "G.pth"))

    def test_files_that_are_no_weights(self):
        directory = self.create_tempdir()
        text = directory.create_file("G.pth", "not a checkpoint").full_path
        with self.assertRaisesRegex(PytorchImportError, "not a readable PyTorch checkpoint"):
            pytorch_checkpoint.read_state_dict(text)
        import torch

        optim = os.path.join(directory.full_path, "G_optim.pth")
        torch.save({"state": {}, "param_groups": []}, optim)
        with self.assertRaisesRegex(PytorchImportError, "rather than a model's state_dict"):
            pytorch_checkpoint.read_state_dict(optim)
        with self.assertRaisesRegex(PytorchImportError, "does not exist"):
            pytorch_checkpoint.find_files(os.path.join(directory.full_path, "nothing.pth"))

    def test_without_torch_one_line_says_how_to_install_it(self):
        with mock.patch.dict(sys.modules, {"torch": None}):
            with self.assertRaisesRegex(PytorchImportError, "^[^\n]*pip install torch$"):
                pytorch_checkpoint.read_state_dict(os.path.join(self.root, "zip", "G.pth"))


class FullSizeLayoutTest(tf.test.TestCase):
    """The released ImageNet-128 layout, by shapes only (nothing allocated)."""

    def test_released_128_checkpoint(self):
        g_layout = pytorch_biggan.g_layout(128, 96, 1000, 128, 20, attention_block=3)
        d_layout = pytorch_biggan.d_layout(128, 96, 1000, attention_block=0)
        self.assertLen(g_layout, 166)
        self.assertLen(d_layout, 88)
        self.assertEqual(pytorch_biggan.parameter_count(g_layout), 70_433_988)
        self.assertEqual(pytorch_biggan.parameter_count(d_layout), 87_982_370)
        g_config = pytorch_import.infer_generator_config(_zero_memory(g_layout))
        expected = dict(resolution=128, ch=96, num_classes=1000, dim_z=120, shared_dim=128)
        self.assertEqual({k: g_config[k] for k in expected}, expected)
        self.assertEqual(g_config["attention_resolution"], 64)
        self.assertEqual(g_config["sn_norm_style"], "clamp")
        d_config = pytorch_import.infer_discriminator_config(_zero_memory(d_layout))
        self.assertEqual(d_config["resolution"], 128)
        self.assertEqual(d_config["ch"], 96)
        self.assertIsNone(d_config["channel_multipliers"])  # our 128 table is the author's
        self.assertEqual(d_config["attention_resolution"], 64)

    def test_256_px_generator_keeps_the_rounded_latent(self):
        # dim_z 120 over 7 chunks is 7 x 17 = 119 in the author's code.
        layout = pytorch_biggan.g_layout(256, 96, 1000, 128, 17, attention_block=3)
        config = pytorch_import.infer_generator_config(_zero_memory(layout))
        self.assertEqual(config["dim_z"], 119)
        self.assertEqual(config["attention_resolution"], 64)  # the author's, not our 128
        self.assertEqual(pytorch_biggan.parameter_count(layout), 82_108_548)


if __name__ == "__main__":
    tf.test.main()
