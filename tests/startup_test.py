"""Tests of tf_cgan_transfer.startup: the command lines start without TF's C++ noise.

The argument parsing is tested in-process; two subprocesses run a real command line
(`sample --helpshort`, which imports TensorFlow and exits before any work) with and
without the user's own TF_CPP_MIN_LOG_LEVEL.
"""

import re
import sys

import tensorflow as tf

from tests import commands
from tf_cgan_transfer import startup

PYTHON = "/usr/bin/python3"
# Known start-up lines of TF 2.15 on a CPU machine, and the C++ log prefix of any line.
NOISE = ("cuda_dnn", "TF-TRT", "cpu_feature_guard", "Could not find cuda drivers", "oneDNN")
CPP_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] ", re.MULTILINE)


class ArgvTest(tf.test.TestCase):
    def test_module_and_args_of_python_dash_m(self):
        for argv, expected in (
            (
                [PYTHON, "-m", "tf_cgan_transfer.train", "--a=1"],
                ("tf_cgan_transfer.train", ["--a=1"]),
            ),
            (
                [PYTHON, "-u", "-X", "dev", "-m", "tf_cgan_transfer.sample"],
                ("tf_cgan_transfer.sample", []),
            ),
            (
                [PYTHON, "-mtf_cgan_transfer.export", "-v", "1"],
                ("tf_cgan_transfer.export", ["-v", "1"]),
            ),
            ([PYTHON, "script.py", "-m", "tf_cgan_transfer.train"], None),  # a script's args
            ([PYTHON, "-c", "import tf_cgan_transfer", "-m", "x"], None),
            ([PYTHON, "-m"], None),
            ([PYTHON], None),
        ):
            self.assertEqual(startup.module_and_args(argv), expected, argv)

    def test_asks_for_logs_with_verbosity_of_one_or_more(self):
        for args, expected in (
            ([], False),
            (["--verbosity=1"], True),
            (["--verbosity", "2"], True),
            (["-v=1"], True),
            (["-v", "1"], True),
            (["--v=3"], True),
            (["-verbosity=1"], True),
            (["--verbosity=0"], False),
            (["--verbosity=-1"], False),
            (["--verbosity=1", "--verbosity=0"], False),  # absl: the last one counts
            (["--verbosity=debug"], False),  # not an integer: absl refuses it
            (["--", "--verbosity=1"], False),  # positional after --
            (["--verbose=1", "--vv=1"], False),  # other flags
        ):
            self.assertEqual(startup.asks_for_logs(args), expected, args)

    def test_quiet_command_line_sets_the_level_only_when_nothing_was_asked(self):
        cli = [PYTHON, "-m", "tf_cgan_transfer.evaluate", "--run_dir=r"]
        environ = {"HOME": "/root"}
        self.assertTrue(startup.quiet_command_line(cli, environ))
        self.assertEqual(environ, {"HOME": "/root", "TF_CPP_MIN_LOG_LEVEL": "3"})
        for argv, environ in (
            (cli, {"TF_CPP_MIN_LOG_LEVEL": "0"}),  # the user's own setting stays
            (cli + ["--verbosity=1"], {}),
            ([PYTHON, "-m", "pytest", "tests"], {}),  # library use: tests
            ([PYTHON, "my_script.py"], {}),  # library use: a script importing the package
            ([PYTHON, "-m", "benchmarks.flops"], {}),  # not the package's command lines
        ):
            before = dict(environ)
            self.assertFalse(startup.quiet_command_line(argv, environ), argv)
            self.assertEqual(environ, before)


class CommandLineTest(tf.test.TestCase):
    def _helpshort(self, tf_log_level):
        result = commands.run(
            [sys.executable, "-m", "tf_cgan_transfer.sample", "--helpshort"],
            tf_log_level=tf_log_level,
            cwd=commands.REPO_ROOT,
        )
        # The command line's own output is there either way.
        self.assertIn("--samples_per_class: Columns of a sheet", result.stdout)
        return result.stderr

    def test_quiet_by_default_and_noisy_when_the_user_asks(self):
        quiet = self._helpshort(tf_log_level=None)
        for noise in NOISE:
            self.assertNotIn(noise, quiet)
        self.assertIsNone(CPP_LOG_LINE.search(quiet), quiet)
        asked = self._helpshort(tf_log_level="0")
        self.assertTrue(any(noise in asked for noise in NOISE), asked)
        self.assertIsNotNone(CPP_LOG_LINE.search(asked), asked)
