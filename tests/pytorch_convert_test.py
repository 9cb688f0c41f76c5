"""Tests of the pytorch_convert command line on a miniature BigGAN-PyTorch run."""

import json
import os
from unittest import mock

from absl import flags
import numpy as np
import tensorflow as tf

from tests import pytorch_biggan
from tf_cgan_transfer import model_io
from tf_cgan_transfer import pytorch_convert
from tf_cgan_transfer import sampling
from tf_cgan_transfer.pytorch_checkpoint import PytorchImportError


class PytorchConvertTest(tf.test.TestCase):
    def _main(self, *args):
        fv = flags.FlagValues()
        pytorch_convert.define_flags(fv)
        fv(["pytorch_convert", *args])
        # The sample sheet's generator calls run eagerly: the same function as the traced
        # one (sampling_test), without a ~10 s trace.
        eager = lambda generator: lambda z, y: generator((z, y), training=False)
        with mock.patch.object(sampling, "_inference_function", eager):
            pytorch_convert.main(fv)

    def test_converts_g_and_d_samples_and_refuses_to_overwrite(self):
        weights = self.create_tempdir().full_path
        states = pytorch_biggan.write_weights_dir(weights, num_classes=5)
        out = os.path.join(self.create_tempdir().full_path, "converted")
        args = [f"--weights={weights}", f"--output_dir={out}", "--class_ids=4,0"]
        self._main(*args, "--samples_per_class=3")

        g, d = model_io.restore_models(out)  # what train --source=<out> starts from
        rng = np.random.default_rng(0)
        z, y = rng.normal(size=[2, g.dim_z]).astype(np.float32), np.array([4, 1])
        expected = pytorch_biggan.generate(states["G"], z, y)  # G, not G_ema, by default
        self.assertAllClose(g((z, y)), expected, atol=1e-5, rtol=0)
        x = expected.astype(np.float32)
        logits = pytorch_biggan.discriminate(states["D"], x, y, pytorch_biggan.D_ARCH[32][1])
        self.assertAllClose(d((x, y)), logits, atol=1e-5, rtol=0)

        with open(os.path.join(out, "import_report.json")) as f:
            report = json.load(f)
        self.assertTrue(report["generator"]["path"].endswith("G.pth"))
        self.assertEqual(report["generator"]["config"]["sn_norm_style"], "clamp")
        self.assertIn("embed.sv0", report["discriminator"]["ignored_keys"])
        sheet = tf.io.decode_png(tf.io.read_file(os.path.join(out, "samples.png")))
        self.assertEqual(sheet.shape, [2 * 34 + 2, 3 * 34 + 2, 3])  # 2 rows x 3, 32 px + 2 pad

        with self.assertRaisesRegex(PytorchImportError, "already holds a converted generator"):
            self._main(*args)
        with self.assertRaisesRegex(PytorchImportError, r"--class_ids \[5\] out of range"):
            self._main(f"--weights={weights}", f"--output_dir={out}_2", "--class_ids=5")
        self.assertFalse(os.path.exists(f"{out}_2"))

    def test_ema_generator(self):
        weights = self.create_tempdir().full_path
        states = pytorch_biggan.write_weights_dir(weights, num_classes=3, legacy=False)
        out = self.create_tempdir().full_path
        self._main(
            f"--weights={weights}",
            f"--output_dir={out}",
            "--ema",
            "--class_ids=0",
            "--samples_per_class=0",
        )
        g = model_io.load_generator(out)
        z, y = np.random.default_rng(1).normal(size=[2, g.dim_z]).astype(np.float32), [2, 0]
        self.assertAllClose(g((z, y)), pytorch_biggan.generate(states["G_ema"], z, y), atol=1e-5)
        self.assertFalse(os.path.exists(os.path.join(out, "samples.png")))


if __name__ == "__main__":
    tf.test.main()
