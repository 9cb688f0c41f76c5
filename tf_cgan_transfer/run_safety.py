"""What keeps a run directory usable when the machine is harsh: lock, signals, damage, disk.

A training run is killed at any instant (OOM killer, preemption), interrupted (Ctrl-C,
SIGTERM), runs out of disk, is started twice on one directory, or finds a checkpoint
truncated by a crashed copy. TensorFlow's `CheckpointManager` already writes a
checkpoint's files before it records it in `ckpt/checkpoint` (itself written to a
temporary file and renamed), so a kill mid-save leaves the previous checkpoint the
latest. This module closes the rest; the README's "Faults" table lists each case and the
test (tests/faults_test.py) that proves it.

* `RunLock`: `model_dir/.lock`, flock'ed by the live run and naming its pid and host; a
  second run refuses to start, and a lock whose process is gone is taken over (and said
  so).
* `StopSignals`: the first SIGINT or SIGTERM asks the loop to stop after the current
  step with a checkpoint of it; a second SIGINT aborts at once (Ctrl-C twice).
* `check_checkpoints`: reads every tensor of the latest checkpoint (their CRC32C sums
  are checked on read); a damaged one is moved to `ckpt/damaged/` (never deleted) and
  the run resumes from the newest intact one, or refuses when there is none.
* `disk_full`: turns "No space left on device" from Python or TensorFlow writes into
  one `errors.UserError` saying what was kept.
* `replace_dir`: swaps a fully written directory into place in one rename (`best/`).
* `fault_point`: a test hook, inert unless `TF_CGAN_TRANSFER_FAULT` is set.
"""

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time

from absl import logging
import tensorflow as tf

from tf_cgan_transfer import errors

# ---- Fault hook (tests only) ---------------------------------------------------------

# `pause:POINT[@N]` blocks the N-th (default first) time POINT is reached until a stop
# signal arrives (so a test can SIGKILL, SIGTERM or SIGINT the process exactly there);
# `raise:POINT[@N]` raises `FaultInjected` there, leaving the files as a kill would
# (the write paths have no cleanup code to run); `enospc:POINT[@N]` raises the OSError
# of a full disk there; `sigterm:POINT[@N]` and `sigint:POINT[@N]` send the process that
# signal there (only while `StopSignals` handles it). Unset: nothing happens.
FAULT_ENV = "TF_CGAN_TRANSFER_FAULT"
_fault_counts = {}


class FaultInjected(BaseException):
    """Raised by a `raise:` fault hook; a BaseException so no `except Exception` eats it."""


def write_atomically(path, write, suffix=".partial", fault=None):
    """Calls `write(partial)` to write `path + suffix`, then renames it to `path` (parent
    directories created): a kill mid-write leaves `path` absent or whole, never truncated.
    `fault`: a `fault_point` between the write and the rename. (np.savez appends `.npz`
    to a name without it: its caller passes `.partial.npz`.)"""
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    partial = path + suffix
    write(partial)
    if fault:
        fault_point(fault)
    tf.io.gfile.rename(partial, path, overwrite=True)


def fault_point(name):
    """The named instant of a write that tests interrupt (see `FAULT_ENV`)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    action, _, target = spec.partition(":")
    target, _, nth = target.partition("@")
    if target != name:
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] != int(nth or 1):
        return
    if action == "raise":
        raise FaultInjected(name)
    if action == "enospc":  # what a write on a full disk raises
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
    if action in ("sigterm", "sigint"):
        if not _handling:  # the default action would end the process (a test runner)
            raise FaultInjected(f"{action} outside StopSignals")
        os.kill(os.getpid(), getattr(signal, action.upper()))
    if action == "pause":
        # One line the test waits for, then hold still until killed or signalled.
        print(f"FAULT_POINT {name} pid={os.getpid()}", file=sys.stderr, flush=True)
        while _stop_requested is None:
            time.sleep(0.05)


# ---- Lock ----------------------------------------------------------------------------

LOCK_FILE = ".lock"


class RunLockedError(errors.UserError, RuntimeError):
    """Another live process holds the run directory."""


def process_alive(pid):
    """True when a process `pid` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """An exclusive lock of a run directory: `model_dir/.lock`, flock'ed, holding the
    holder's {pid, host, started}.

    The kernel drops a flock when its process dies however it dies, so a lock is free
    exactly when its holder is gone (a recycled pid cannot keep it); the pid in the file
    names the holder in the refusal, and the last holder when one is taken over. (On NFS,
    flock works through the server's lock manager.)
    """

    def __init__(self, path):
        self.path = path
        self._fd = None

    def acquire(self):
        if "://" in self.path:  # gs:// and the like have no file locks
            logging.warning("No run lock on %s: not a local file system.", self.path)
            return self
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_json(fd)
                os.close(fd)
                self._refuse(holder)
            # A releasing holder unlinks the file: lock the one that is at the path.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_json(fd)
        if previous and previous.get("pid") != os.getpid():
            logging.warning(
                "Taking over %s: its last holder (pid %s on %s) is no longer running.",
                self.path,
                previous.get("pid"),
                previous.get("host"),
            )
        me = dict(pid=os.getpid(), host=socket.gethostname(), started=time.time())
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fd = fd
        return self

    def _refuse(self, holder):
        pid, host = (holder or {}).get("pid", "?"), (holder or {}).get("host", "?")
        raise RunLockedError(
            f"{os.path.dirname(self.path)} is in use by the training run with pid {pid} on "
            f"host {host} (lock {self.path}). Wait for it to finish, stop it (kill -TERM "
            f"{pid} writes a checkpoint and exits), or pass another --model_dir."
        )

    def release(self):
        if self._fd is not None:
            os.remove(self.path)  # before the unlock: a waiter then retries the new file
            os.close(self._fd)  # drops the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_json(fd):
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "null")
    except ValueError:
        return None  # being written by its holder


# ---- Stop signals --------------------------------------------------------------------

_stop_requested = None  # the signal number once one arrived (read by `fault_point`)
_handling = False  # StopSignals' handlers are installed


class StopSignals:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current step.

    `requested` is then the signal's name. The default SIGINT handler comes back after
    the first signal, so a second Ctrl-C aborts at once. Inert outside the main thread
    (Python delivers signals only there).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self._previous = {}

    @property
    def requested(self):
        return signal.Signals(_stop_requested).name if _stop_requested else None

    def _handle(self, signum, frame):
        global _stop_requested
        del frame
        _stop_requested = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)
        logging.warning(
            "Received %s: stopping after the current step with a checkpoint of it "
            "(Ctrl-C again aborts without one).",
            signal.Signals(signum).name,
        )

    def __enter__(self):
        global _stop_requested, _handling
        _stop_requested = None
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
            _handling = True
        return self

    def __exit__(self, *exc):
        global _stop_requested, _handling
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
        _stop_requested, _handling = None, False


# ---- Damaged checkpoints -------------------------------------------------------------

DAMAGED_DIR = "damaged"


def checkpoint_damage(prefix):
    """None when every tensor of checkpoint `prefix` reads back, else `(file, reason)`."""
    index = prefix + ".index"
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        return index, str(e).splitlines()[0]
    try:
        for name in sorted(reader.get_variable_to_shape_map()):
            reader.get_tensor(name)  # the CRC32C of each tensor is checked on read
    except (tf.errors.OpError, ValueError, IndexError) as e:  # IndexError: truncated
        data = tf.io.gfile.glob(prefix + ".data-*")
        return (", ".join(sorted(data)) or prefix + ".data-*"), str(e).splitlines()[0]
    return None


def check_checkpoints(ckpt_dir, error_class):
    """Makes the latest recorded checkpoint in `ckpt_dir` an intact one.

    Damaged checkpoints (newest first, until an intact one) are moved to
    `ckpt_dir/damaged/` and `ckpt_dir/checkpoint` is rewritten to list the rest.

    Returns:
      The prefixes moved aside (empty when the latest was intact or there is none).

    Raises:
      error_class: checkpoints are recorded but none is intact (nothing is moved).
    """
    state = tf.train.get_checkpoint_state(ckpt_dir)
    if state is None or not state.model_checkpoint_path:
        return []
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    if state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    paths = [p if os.path.isabs(p) else os.path.join(ckpt_dir, p) for p in paths]
    damaged = []
    for prefix in reversed(paths):
        found = checkpoint_damage(prefix)
        if found is None:
            break
        damaged.append((prefix, *found))
    else:
        listing = "; ".join(f"{f}: {why}" for _, f, why in damaged)
        raise error_class(
            f"Every checkpoint in {ckpt_dir} is damaged ({listing}); nothing was deleted or "
            "overwritten. Copy intact checkpoints back from a backup, or move "
            f"{ckpt_dir} away to start the run over (or pass another --model_dir)."
        )
    if not damaged:
        return []
    quarantine = os.path.join(ckpt_dir, DAMAGED_DIR, time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(quarantine, exist_ok=True)
    for prefix, damaged_file, why in damaged:
        for path in tf.io.gfile.glob(prefix + ".*"):
            os.replace(path, os.path.join(quarantine, os.path.basename(path)))
        logging.error("%s is damaged (%s); moved to %s.", damaged_file, why, quarantine)
    # Then the record (a kill in between leaves it naming moved files, which the next
    # start finds missing and skips the same way; the other order could leave damaged
    # files unrecorded in ckpt/, where a later save of their step would overwrite them).
    kept = paths[: len(paths) - len(damaged)]
    tf.compat.v1.train.update_checkpoint_state(
        ckpt_dir, model_checkpoint_path=kept[-1], all_model_checkpoint_paths=kept
    )
    logging.warning("Resuming from %s, the newest intact checkpoint.", kept[-1])
    return [prefix for prefix, _, _ in damaged]


# ---- Disk full -----------------------------------------------------------------------


def is_disk_full(error):
    """True for "No space left on device" from Python (OSError) or TensorFlow writes."""
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    if isinstance(error, tf.errors.OpError):
        # TensorFlow maps ENOSPC to RESOURCE_EXHAUSTED and keeps strerror's text.
        return "No space left on device" in str(error)
    return False


@contextlib.contextmanager
def disk_full(error_class, kept):
    """Re-raises a disk-full error as `error_class`, naming what `kept()` says is intact."""
    try:
        yield
    except (OSError, tf.errors.OpError) as e:
        if not is_disk_full(e):
            raise
        raise error_class(
            f"The disk is full (No space left on device: {str(e).splitlines()[0]}). "
            f"Stopped; kept intact: {kept()}. Free space (old exports, eval_cache/, "
            "ckpt/*_temp) and rerun the same command to resume."
        ) from e


# ---- Atomic directory replacement ----------------------------------------------------

_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a, b):
    """Swaps two paths in one step (Linux renameat2); False when unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def staging_dir(directory):
    """Where the next version of `directory` is written before `replace_dir`."""
    return directory.rstrip("/") + ".partial"


def _old_dir(directory):
    return directory.rstrip("/") + ".old"


def recover_dir(directory):
    """Finishes or undoes an interrupted `replace_dir`: afterwards `directory` is the
    complete old or new version and no `.partial`/`.old` sibling is left."""
    if "://" in directory:
        return
    old, partial = _old_dir(directory), staging_dir(directory)
    if not os.path.exists(directory) and os.path.exists(old):
        os.replace(old, directory)  # killed between the two renames: the old one stands
        logging.warning("Restored %s from %s (an interrupted update).", directory, old)
    for leftover in (old, partial):
        if os.path.exists(leftover):
            shutil.rmtree(leftover)


def replace_dir(directory):
    """Puts the complete `staging_dir(directory)` in place of `directory`.

    Where the kernel supports it, one renameat2(RENAME_EXCHANGE) swaps them, so every
    reader sees the old or the new version whole; elsewhere the old one is renamed to
    `.old` first, and `recover_dir` puts it back if a kill lands between the renames.
    """
    partial, old = staging_dir(directory), _old_dir(directory)
    if not os.path.exists(directory):
        os.replace(partial, directory)
        return
    if _exchange(partial, directory):
        fault_point("replace_dir")
        shutil.rmtree(partial)  # now the old version
        return
    os.replace(directory, old)
    fault_point("replace_dir")
    os.replace(partial, directory)
    shutil.rmtree(old)
