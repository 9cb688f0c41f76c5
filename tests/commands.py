"""Running the project's command lines and tools in a subprocess, as a user would."""

import os
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, timeout=120, tf_log_level="2", **kwargs):
    """`subprocess.run(args)` with text output captured, quiet TF logs, the repo importable.

    `tf_log_level` is the TF_CPP_MIN_LOG_LEVEL the process gets (None: unset, as in a
    user's shell that never set it).
    """
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if tf_log_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = tf_log_level
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, **kwargs)
