"""A quiet start for the command lines: TensorFlow's C++ start-up logs off unless asked.

On a CPU machine `import tensorflow` prints a dozen C++ log lines (CUDA drivers, cuDNN /
cuFFT / cuBLAS factories, TensorRT, CPU features, oneDNN). TensorFlow reads
`TF_CPP_MIN_LOG_LEVEL` once, when it first logs, during that import; and every command
line imports TensorFlow when its module is imported, before absl parses any flag. So the
package's `__init__` calls `quiet_command_line` before any submodule is imported: when
the process is one of the package's command lines (`python -m tf_cgan_transfer.<name>`,
read from `sys.orig_argv`) and the user asked for nothing else, it sets
`TF_CPP_MIN_LOG_LEVEL=3`.

The user asks for the logs with `--verbosity=1` (or `-v 1`, any value >= 1, absl's debug
levels) on the command line, or by setting `TF_CPP_MIN_LOG_LEVEL` themselves (any value,
kept as is). A `--verbosity` inside a `--flagfile` is not seen: it is read after the
import. Library use (`import tf_cgan_transfer.biggan` from a script, a notebook or the
tests) is left alone. Level 3 also hides C++ error logs; the errors that stop a run still
reach Python as exceptions and print.

This module imports nothing heavy: it runs before TensorFlow is imported.
"""

import re

PACKAGE = "tf_cgan_transfer"
ENV_VAR = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LEVEL = "3"  # the cuDNN/cuFFT/cuBLAS registration lines are ERROR-level logs
# Interpreter options that take the next argument as their value (python -X dev -m ...).
_OPTIONS_WITH_VALUE = ("-X", "-W", "--check-hash-based-pycs")
_VERBOSITY = re.compile(r"^--?(verbosity|v)(=(.*))?$")


def module_and_args(argv):
    """`(module, its arguments)` of `python [options] -m module args...`, else None.

    Args:
      argv: the interpreter's whole command line (`sys.orig_argv`).
    """
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return (argv[i + 1], list(argv[i + 2 :])) if i + 1 < len(argv) else None
        if arg.startswith("-m"):  # python -mtf_cgan_transfer.train
            return arg[2:], list(argv[i + 1 :])
        if arg == "-c" or arg == "-" or not arg.startswith("-"):  # -c code, stdin, a script
            return None
        i += 2 if arg in _OPTIONS_WITH_VALUE else 1
    return None


def asks_for_logs(args):
    """True when `args` set absl's `--verbosity` (`-v`) to 1 or more (the last one counts).

    Args:
      args: a command line's own arguments, as absl will parse them.
    """
    verbosity = None
    for i, arg in enumerate(args):
        if arg == "--":  # absl reads what follows as positional arguments
            break
        match = _VERBOSITY.match(arg)
        if not match:
            continue
        value = match.group(3) if match.group(2) else (args[i + 1] if i + 1 < len(args) else "")
        try:
            verbosity = int(value)
        except ValueError:
            pass  # absl rejects it with its own message
    return verbosity is not None and verbosity >= 1


def quiet_command_line(argv, environ):
    """Sets `environ[TF_CPP_MIN_LOG_LEVEL] = "3"` for a command line that asked for no logs.

    Args:
      argv: the interpreter's whole command line (`sys.orig_argv`).
      environ: the environment to change (`os.environ`).

    Returns:
      True when it set the variable: a `python -m tf_cgan_transfer.<name>` process, no
      `TF_CPP_MIN_LOG_LEVEL` in `environ`, and no `--verbosity` of 1 or more.
    """
    found = module_and_args(argv)
    if found is None or ENV_VAR in environ:
        return False
    module, args = found
    if not module.startswith(PACKAGE + ".") or asks_for_logs(args):
        return False
    environ[ENV_VAR] = QUIET_LEVEL
    return True
