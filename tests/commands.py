"""Running the project's command lines and tools in a subprocess, as a user would."""

import os
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, timeout=120, **kwargs):
    """`subprocess.run(args)` with text output captured, quiet TF logs, the repo importable."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, **kwargs)
