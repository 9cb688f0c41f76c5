"""Transfer of pretrained BigGAN generators to new classes (README.md).

Importing the package runs one thing before any submodule imports TensorFlow: for its
command lines (`python -m tf_cgan_transfer.<name>`) TensorFlow's C++ start-up logs are
silenced unless asked for (`startup`). Library imports are not affected.
"""

import os
import sys

from tf_cgan_transfer import startup

startup.quiet_command_line(sys.orig_argv, os.environ)
