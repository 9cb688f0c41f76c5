"""Tests of the precision policies: names, `auto` resolution, scoping."""

import os

import tensorflow as tf

from tf_cgan_transfer import precision


class PrecisionTest(tf.test.TestCase):
    def _cpuinfo(self, flags):
        path = os.path.join(self.create_tempdir().full_path, "cpuinfo")
        with open(path, "w") as f:
            f.write(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n\nprocessor\t: 1\n")
        return path

    def test_cpu_flags(self):
        self.assertTrue(precision.cpu_has_bf16(self._cpuinfo("avx512f amx_bf16 amx_tile")))
        self.assertTrue(precision.cpu_has_bf16(self._cpuinfo("avx512f avx512_bf16")))
        self.assertFalse(precision.cpu_has_bf16(self._cpuinfo("avx512f avx512_vnni")))
        self.assertFalse(precision.cpu_has_bf16("/nonexistent/cpuinfo"))

    def test_auto(self):
        self.assertEqual(precision.resolve("auto", cpu_bf16=True), "mixed_bfloat16")
        self.assertEqual(precision.resolve("auto", tpu=True, cpu_bf16=False), "mixed_bfloat16")
        self.assertEqual(precision.resolve("auto", cpu_bf16=False), "float32")
        # A GPU decides over the CPU.
        self.assertEqual(precision.resolve("auto", cpu_bf16=True, gpu_bf16=False), "float32")
        self.assertEqual(precision.resolve("auto", cpu_bf16=False, gpu_bf16=True), "mixed_bfloat16")
        for name in precision.POLICIES:
            self.assertEqual(precision.resolve(name, cpu_bf16=False), name)

    def test_unknown_name(self):
        with self.assertRaisesRegex(ValueError, "'fp8'.*float32, mixed_bfloat16, mixed_float16"):
            precision.resolve("fp8")
        self.assertTrue(precision.needs_loss_scaling("mixed_float16"))
        self.assertFalse(precision.needs_loss_scaling("mixed_bfloat16"))

    def test_policy_scope_builds_and_restores(self):
        with precision.policy_scope("mixed_bfloat16"):
            inside = tf.keras.layers.Dense(2)
        outside = tf.keras.layers.Dense(2)
        self.assertEqual(inside.compute_dtype, "bfloat16")
        self.assertEqual(inside.dtype, "float32")  # variables stay float32
        self.assertEqual(outside.compute_dtype, "float32")
        with self.assertRaises(RuntimeError):
            with precision.policy_scope("mixed_float16"):
                raise RuntimeError("fails inside")
        self.assertEqual(tf.keras.mixed_precision.global_policy().name, "float32")
