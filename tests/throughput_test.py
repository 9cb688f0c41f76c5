"""End-to-end test of benchmarks/throughput.py on the demo preset (one run of each part)."""

import math
import os

from absl import flags
import tensorflow as tf

from benchmarks import throughput


def finite_positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


class ThroughputTest(tf.test.TestCase):
    def test_demo_end_to_end(self):
        tmp = self.create_tempdir().full_path
        output = os.path.join(tmp, "results", "throughput.md")
        os.makedirs(os.path.dirname(output))
        with open(output, "w") as f:
            f.write("# earlier results\n")
        fv = flags.FlagValues()
        throughput.define_flags(fv)
        fv(
            [
                "throughput",
                "--preset=demo",
                "--runs=1",
                "--min_run_seconds=0",
                # One method: a second one only repeats the trace and timing code paths.
                "--methods=kp_bn",
                f"--profile_dir={os.path.join(tmp, 'profile')}",
                f"--output={output}",
                "--append",
            ]
        )
        command = "python -m benchmarks.throughput --preset=demo --runs=1"
        result = throughput.run_from_flags(fv, command)

        names = [m["name"] for m in result["measurements"]]
        self.assertEqual(
            names, ["sample", "train kp_bn", "export serving_default", "input"]
        )
        for m in result["measurements"]:
            for key in ("seconds", "images_per_second"):
                self.assertTrue(finite_positive(m[key]), f"{m['name']} {key}={m[key]}")
            if m["name"] != "input":
                self.assertTrue(finite_positive(m["gflops"]), m["name"])
        train = result["measurements"][1]
        self.assertEqual(train["iteration_flops"]["iteration"], train["flops_per_call"])
        self.assertTrue(finite_positive(train["iterations_per_second"]))
        for rate in result["matmul_before"] + result["matmul_after"]:
            self.assertTrue(finite_positive(rate["gflops"]), rate)
        self.assertTrue(finite_positive(throughput.export_share(result)))
        (verdict,) = throughput.input_verdicts(result)  # one per measured train step
        self.assertEqual(verdict[0], "kp_bn")
        self.assertTrue(finite_positive(verdict[1]) and finite_positive(verdict[2]))
        profile = result["profile"]
        self.assertTrue(os.path.exists(profile["trace"]))
        if profile["top_ops"] is not None:
            self.assertNotEmpty(profile["top_ops"])
            self.assertTrue(all(seconds >= 0 for _, seconds, _ in profile["top_ops"]))

        with open(output) as f:
            text = f.read()
        self.assertStartsWith(text, "# earlier results\n## demo, float32, no XLA")
        self.assertIn(f"`{command}`", text)
        self.assertIn("| measurement | batch | median s/call |", text)
        for name in names:
            self.assertIn(f"| {name} | 32 |", text)
        self.assertIn("reaches", text)


if __name__ == "__main__":
    tf.test.main()
