"""Tests of benchmarks/machine.py: timing, busy detection and profiler-trace parsing."""

import glob
import math
import os

import tensorflow as tf

from benchmarks import machine


def rate(dtype, gflops):
    return dict(dtype=dtype, gflops=gflops)


QUIET = dict(
    load_before=(0.1, 0.1, 0.1),
    load_after=(1.9, 0.5, 0.2),  # this run's own load
    matmul_before=[rate("float32", 280), rate("bfloat16", 1500)],
    matmul_after=[rate("float32", 270), rate("bfloat16", 1450)],
    other_cores=0.1,
)


class TimingTest(tf.test.TestCase):
    def test_time_calls_repeats_short_calls(self):
        calls = []
        timing = machine.time_calls(lambda: calls.append(1), runs=3, min_run_seconds=0.01)
        self.assertLen(timing["times"], 3)
        self.assertGreater(timing["repeats"], 1)
        self.assertLen(calls, 2 + 3 * timing["repeats"])  # warm-up, calibration, runs
        self.assertGreater(timing["seconds"], 0)

    def test_matmul_rate(self):
        result = machine.matmul_rate(tf.float32, runs=1, size=256, min_run_seconds=0.01)
        self.assertEqual(result["dtype"], "float32")
        self.assertTrue(math.isfinite(result["gflops"]) and result["gflops"] > 0)

    def test_machine_info_and_cpu_use(self):
        info = machine.machine_info()
        self.assertEqual(info["tensorflow"], tf.__version__)
        self.assertGreaterEqual(info["cores"], info["usable_cores"])
        before = machine.cpu_snapshot()
        after = machine.cpu_snapshot()
        self.assertGreaterEqual(machine.other_cores(before, after), 0.0)


class BusyWarningsTest(tf.test.TestCase):
    def test_quiet(self):
        self.assertEqual(machine.busy_warnings(QUIET), [])

    def test_load_matmul_drop_and_other_processes(self):
        busy = dict(QUIET, load_before=(0.9, 0.5, 0.2), other_cores=1.2)
        busy["matmul_after"] = [rate("float32", 200), rate("bfloat16", 1450)]
        warnings = machine.busy_warnings(busy)
        self.assertLen(warnings, 3)
        self.assertIn("machine was busy (load 0.90 before starting)", warnings[0])
        self.assertIn("float32 matmul dropped from 280 to 200 GFLOP/s", warnings[1])
        self.assertIn("other processes used 1.20 cores", warnings[2])


class TopOpsTest(tf.test.TestCase):
    def test_profile_of_a_small_function(self):
        logdir = self.create_tempdir().full_path
        a = tf.random.normal([256, 256])
        step = tf.function(lambda: tf.reduce_sum(tf.nn.relu(tf.matmul(a, a))))
        step()
        tf.profiler.experimental.start(logdir)
        for _ in range(5):
            step()
        tf.profiler.experimental.stop()
        (trace,) = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
        ops = machine.top_ops(trace, top=3)
        self.assertLen(ops, 3)
        names = [op for op, _, _ in ops]
        self.assertTrue(any("MatMul" in name for name in names), names)
        matmul = [o for o in ops if "MatMul" in o[0]][0]
        self.assertEqual(matmul[2], 5)  # one per call
        seconds = [s for _, s, _ in ops]
        self.assertEqual(seconds, sorted(seconds, reverse=True))
        self.assertGreater(seconds[0], 0)


if __name__ == "__main__":
    tf.test.main()
