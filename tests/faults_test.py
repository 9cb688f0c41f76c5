"""Faults a user's machine inflicts, each survived (the README's "Faults" table).

Every fault strikes at an exact instant (`run_safety.fault_point`, driven by
TF_CGAN_TRANSFER_FAULT). SIGKILLs hit real `train` processes: one chain of them on one
run directory ends with the weights of an uninterrupted run of the same command.
SIGTERM, SIGINT (real signals, sent by the process to itself at the instant), a full
disk and a damaged checkpoint strike one `Trainer` of the same configuration in this
process, traced once (a process per fault would trace the step again each time). Both
run once, in `setUpClass`, overlapping; each test checks what one fault left behind.
"""

import errno
import glob
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from unittest import mock

from absl import flags
from absl import logging as absl_logging
import tensorflow as tf

from tests import commands
from tests import model_fixtures
from tf_cgan_transfer import biggan
from tf_cgan_transfer import export
from tf_cgan_transfer import model_io
from tf_cgan_transfer import run_safety
from tf_cgan_transfer import serving
from tf_cgan_transfer import train as train_cli
from tf_cgan_transfer import trainer

STEPS = 4
# The smallest real run: 32 px, ch 8, no attention, float32, deterministic ops; a
# checkpoint and a sample sheet every 2 steps.
TRAIN_FLAGS = [
    "--method=scratch",
    "--dataset=folder",
    "--resolution=32",
    "--ch=8",
    "--attention_resolution=0",
    "--batch_size=4",
    f"--train_steps={STEPS}",
    "--checkpoint_every=2",
    "--sample_every=2",
    "--samples_per_class=1",
    "--standing_stats_batches=1",
    "--log_every=1",
    "--deterministic",
    "--mixed_precision=float32",
]
TIMEOUT = 240


def _env(fault=None):
    env = dict(os.environ, PYTHONPATH=commands.REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop(run_safety.FAULT_ENV, None)
    if fault:
        env[run_safety.FAULT_ENV] = fault
    return env


class Process:
    """A command line run in the background, its output in a log file."""

    def __init__(self, args, log, fault=None):
        self.log = log
        with open(log, "w") as out:
            self.popen = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=_env(fault), cwd=commands.REPO_ROOT
            )
        self.pid = self.popen.pid

    def output(self):
        with open(self.log) as f:
            return f.read()

    def wait_for_fault_point(self, name):
        """Blocks until the process holds still at fault point `name`."""
        deadline = time.time() + TIMEOUT
        marker = f"FAULT_POINT {name} pid={self.pid}"
        while marker not in self.output():
            if self.popen.poll() is not None or time.time() > deadline:
                self.popen.kill()
                raise AssertionError(f"never reached {name}:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def signal(self, signum):
        os.kill(self.pid, signum)
        return self.wait()

    def wait(self):
        self.popen.wait(timeout=TIMEOUT)
        return self.popen.returncode


def _wait_for(condition, process=None):
    deadline = time.time() + TIMEOUT
    while not condition():
        if time.time() > deadline or (process and process.popen.poll() is not None):
            if process:
                process.popen.kill()
            raise AssertionError(f"never happened:\n{process and process.output()[-3000:]}")
        time.sleep(0.05)


def _tree_digest(root):
    """`{relative path: sha256}` of every file under `root`."""
    digest = {}
    for path in sorted(glob.glob(os.path.join(root, "**"), recursive=True)):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                digest[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return digest


def _checkpoint_values(prefix):
    """Every tensor of a checkpoint but the save counter (it counts the saves)."""
    reader = tf.train.load_checkpoint(prefix)
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if not name.startswith("save_counter")
    }


class _Records(logging.Handler):
    """Keeps the text of every absl log record."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _in_process_trainer(model_dir, folder):
    """A `Trainer` of exactly the configuration `train` builds from TRAIN_FLAGS."""
    fv = flags.FlagValues()
    train_cli.define_flags(fv)
    fv(["train", *TRAIN_FLAGS, f"--model_dir={model_dir}", f"--image_folder={folder}"])
    return trainer.Trainer(train_cli.config_from_flags(fv))


class TrainingFaultsTest(tf.test.TestCase):
    """SIGKILL chain (processes) and signal/disk/damage faults (in process), once."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="faults_test_")
        folder = model_fixtures.write_image_folder(os.path.join(cls.root, "images"))
        cls.run_dir = os.path.join(cls.root, "run")
        cls.straight_dir = os.path.join(cls.root, "straight")
        cls.facts = facts = {}

        def train(model_dir, name, fault=None):
            args = [sys.executable, "-m", "tf_cgan_transfer.train", *TRAIN_FLAGS]
            args += [f"--model_dir={model_dir}", f"--image_folder={folder}"]
            return Process(args, os.path.join(cls.root, f"{name}.log"), fault)

        layout = model_io.RunLayout(cls.run_dir)
        latest = layout.latest_checkpoint
        # Alongside the chain: the uninterrupted run, and an export to kill mid-write.
        straight = train(cls.straight_dir, "straight")
        cls.export_model = os.path.join(cls.root, "model")
        tf.keras.utils.set_random_seed(0)
        generator = biggan.Generator(32, ch=8, num_classes=3, shared_dim=8, dim_z=8)
        model_io.save_models(cls.export_model, generator.build_weights())
        cls.export_root = os.path.join(cls.root, "exports")
        shutil.copytree(cls.export_model, os.path.join(cls.export_root, "tiny", "1"))
        args = [sys.executable, "-m", "tf_cgan_transfer.export", f"--model={cls.export_model}"]
        args += ["--name=tiny", f"--export_root={cls.export_root}", "--standing_stats_batches=1"]
        exporter = Process(args, os.path.join(cls.root, "export.log"), "pause:export_write")

        # 1. SIGKILL in a checkpoint save: ckpt-4's files are written, not yet recorded.
        #    Meanwhile (as soon as it holds the lock) a second run must refuse to start.
        p = train(cls.run_dir, "kill_in_checkpoint_save", "pause:checkpoint_save@2")
        facts["first_pid"] = p.pid
        _wait_for(lambda: os.path.exists(layout.lock_file), p)
        second = train(cls.run_dir, "second_run")
        # While those run: the in-process faults.
        cls._in_process_faults(folder)
        facts["second_code"], facts["second_log"] = second.wait(), second.output()
        p.wait_for_fault_point("checkpoint_save")
        facts["ckpt4_files_before_record"] = os.path.exists(layout.checkpoint_path(4) + ".index")
        p.signal(signal.SIGKILL)
        facts["after_kill_1"] = latest()

        # 2. SIGKILL in a sample-sheet write (step 4's, after resuming from ckpt-2).
        p = train(cls.run_dir, "kill_in_sample_write", "pause:sample_write@1")
        p.wait_for_fault_point("sample_write")
        facts["partial_png"] = os.path.exists(layout.sample_file(4) + ".partial")
        p.signal(signal.SIGKILL)
        facts["kill_2_log"] = p.output()
        exporter.wait_for_fault_point("export_write")
        exporter.signal(signal.SIGKILL)
        cls.dead_export = exporter.pid

        # 3. SIGKILL while the final models are written (models/ done, not the rest).
        p = train(cls.run_dir, "kill_in_final_models", "pause:final_models")
        p.wait_for_fault_point("final_models")
        p.signal(signal.SIGKILL)

        # 4. The same command, untouched, finishes the run.
        p = train(cls.run_dir, "final")
        facts["final_code"], facts["final_log"] = p.wait(), p.output()
        facts["straight_code"], facts["straight_log"] = straight.wait(), straight.output()

    @classmethod
    def _in_process_faults(cls, folder):
        """SIGTERM, a full disk, a damaged checkpoint and SIGINT on one Trainer."""
        facts = cls.facts
        cls.inproc_dir = os.path.join(cls.root, "inproc")
        layout = model_io.RunLayout(cls.inproc_dir)
        records = _Records()
        absl_logging.get_absl_logger().addHandler(records)
        verbosity = absl_logging.get_verbosity()
        absl_logging.set_verbosity(absl_logging.INFO)
        run = _in_process_trainer(cls.inproc_dir, folder)

        def train(fault):
            with mock.patch.dict(os.environ, {run_safety.FAULT_ENV: fault}):
                run_safety._fault_counts.clear()
                del records.lines[:]
                try:
                    run.train()
                except trainer.TrainingError as e:
                    return str(e), list(records.lines)
            return None, list(records.lines)

        try:
            # SIGTERM at the end of step 3: a checkpoint of step 3, then TrainingStopped.
            facts["sigterm"] = train("sigterm:step_end@3")
            facts["after_sigterm"] = layout.latest_checkpoint()
            # The disk fills in ckpt-4's save, with best/ and an export next to the run.
            shutil.copytree(cls.export_model, layout.best_dir)
            kept = [layout.best_dir, os.path.join(cls.export_root, "tiny", "1")]
            facts["kept_before_enospc"] = {d: _tree_digest(d) for d in kept}
            facts["ckpt3_before_enospc"] = _checkpoint_values(layout.checkpoint_path(3))
            facts["enospc"] = train("enospc:checkpoint_save@1")
            facts["after_enospc"] = layout.latest_checkpoint()
            facts["kept_after_enospc"] = {d: _tree_digest(d) for d in kept}
            facts["ckpt3_after_enospc"] = _checkpoint_values(layout.checkpoint_path(3))
            # A crashed copy truncated ckpt-3's data (the latest); then SIGINT at the end
            # of step 4 (ckpt-4 was just written).
            data_file = layout.checkpoint_path(3) + ".data-00000-of-00001"
            with open(data_file, "r+b") as f:
                f.truncate(os.path.getsize(data_file) // 2)
            facts["damaged_size"] = os.path.getsize(data_file)
            facts["sigint"] = train("sigint:step_end@2")
            facts["after_sigint"] = layout.latest_checkpoint()
        finally:
            absl_logging.get_absl_logger().removeHandler(records)
            absl_logging.set_verbosity(verbosity)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def test_sigkill_at_three_points_then_rerun_equals_an_uninterrupted_run(self):
        facts = self.facts
        self.assertEqual(facts["straight_code"], 0, facts["straight_log"][-3000:])
        self.assertEqual(facts["final_code"], 0, facts["final_log"][-3000:])
        # Killed in ckpt-4's save after its files were written: TF records a checkpoint
        # only after writing it, so ckpt-2 stayed the latest.
        self.assertTrue(facts["ckpt4_files_before_record"])
        self.assertEqual(os.path.basename(facts["after_kill_1"]), "ckpt-2")
        self.assertRegex(facts["kill_2_log"], r"Resumed from .*ckpt-2 at step 2")
        # Sample sheets are written to .partial and renamed: no truncated PNG.
        self.assertTrue(facts["partial_png"])
        straight, run = model_io.RunLayout(self.straight_dir), model_io.RunLayout(self.run_dir)
        expected = _checkpoint_values(straight.checkpoint_path(STEPS))
        got = _checkpoint_values(run.checkpoint_path(STEPS))
        self.assertEqual(sorted(got), sorted(expected))
        self.assertGreater(len(expected), 20)
        for name in expected:
            self.assertAllEqual(got[name], expected[name], msg=name)
        for name in ("models", "samples"):
            self.assertEqual(
                _tree_digest(os.path.join(self.run_dir, name)),
                _tree_digest(os.path.join(self.straight_dir, name)),
                name,
            )
        partial = glob.glob(os.path.join(self.run_dir, "**", "*.partial"), recursive=True)
        self.assertEqual(partial, [])
        self.assertFalse(os.path.exists(run.lock_file))  # released on exit

    def test_sigterm_and_sigint_stop_with_a_checkpoint_of_the_current_step(self):
        facts = self.facts
        for name, step in (("sigterm", 3), ("sigint", 4)):
            message, lines = facts[name]
            self.assertRegex(
                message,
                rf"^Stopped by {name.upper()} at step {step}/4; saved .*ckpt-{step}\. Rerun "
                "the same command to continue from it\.$",
            )
            received = f"Received {name.upper()}: stopping after the current step"
            self.assertTrue(any(line.startswith(received) for line in lines), lines)
            self.assertEqual(os.path.basename(facts[f"after_{name}"]), f"ckpt-{step}")
        # The next run continued from the stop's checkpoint.
        self.assertIn("Resumed from %s at step %d" % (
            model_io.RunLayout(self.inproc_dir).checkpoint_path(3), 3), facts["enospc"][1])

    def test_ctrl_c_twice_aborts(self):
        if threading.current_thread() is not threading.main_thread():
            self.skipTest("signals reach the main thread only")
        before = signal.getsignal(signal.SIGINT)
        with run_safety.StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            _wait_for(lambda: stop.requested)
            self.assertEqual(stop.requested, "SIGINT")
            with self.assertRaises(KeyboardInterrupt):  # the second one, at once
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
        self.assertIsNone(stop.requested)
        self.assertIs(signal.getsignal(signal.SIGINT), before)

    def test_damaged_latest_checkpoint_is_moved_aside_and_the_previous_resumed(self):
        lines = "\n".join(self.facts["sigint"][1])
        self.assertRegex(lines, r"ckpt-3\.data-00000-of-00001 is damaged \(.*\); moved to .*damaged")
        self.assertRegex(lines, r"Resuming from .*ckpt-2, the newest intact checkpoint")
        self.assertRegex(lines, r"Resumed from .*ckpt-2 at step 2")
        # Never deleted: the damaged files are kept, byte for byte, in ckpt/damaged/.
        damaged = os.path.join(self.inproc_dir, "ckpt", "damaged", "*")
        (moved,) = glob.glob(os.path.join(damaged, "ckpt-3.data-*"))
        self.assertEqual(os.path.getsize(moved), self.facts["damaged_size"])
        self.assertLen(glob.glob(os.path.join(damaged, "ckpt-3.index")), 1)

    def test_every_checkpoint_damaged_refuses_and_deletes_nothing(self):
        ckpt_dir = os.path.join(self.create_tempdir().full_path, "ckpt")
        shutil.copytree(model_io.RunLayout(self.straight_dir).ckpt_dir, ckpt_dir)
        for data_file in glob.glob(os.path.join(ckpt_dir, "*.data-*")):
            with open(data_file, "r+b") as f:  # one flipped byte: the CRC32C catches it
                f.seek(os.path.getsize(data_file) // 2)
                byte = f.read(1)
                f.seek(-1, os.SEEK_CUR)
                f.write(bytes([byte[0] ^ 0xFF]))
        before = _tree_digest(ckpt_dir)
        with self.assertRaisesRegex(
            trainer.TrainingError,
            r"Every checkpoint in .*ckpt is damaged \(.*ckpt-4\.data-00000-of-00001: .*\); "
            r"nothing was deleted.*move .*ckpt away to start the run over",
        ):
            run_safety.check_checkpoints(ckpt_dir, trainer.TrainingError)
        self.assertEqual(_tree_digest(ckpt_dir), before)

    def test_disk_full_stops_and_keeps_checkpoints_best_and_exports(self):
        facts = self.facts
        message = facts["enospc"][0]
        self.assertRegex(
            message,
            r"^The disk is full \(No space left on device.*\)\. Stopped; kept intact: "
            r".*ckpt-3\. Free space",
        )
        self.assertEqual(os.path.basename(facts["after_enospc"]), "ckpt-3")
        self.assertEqual(facts["kept_after_enospc"], facts["kept_before_enospc"])
        self.assertEqual(sorted(facts["ckpt3_after_enospc"]), sorted(facts["ckpt3_before_enospc"]))
        for name, value in facts["ckpt3_before_enospc"].items():
            self.assertAllEqual(facts["ckpt3_after_enospc"][name], value)
        # What a real full disk raises, through Python and through TensorFlow's writers.
        with self.assertRaises(OSError) as python_error:
            with open("/dev/full", "wb") as f:
                f.write(b"x")
        self.assertTrue(run_safety.is_disk_full(python_error.exception))
        with self.assertRaises(tf.errors.OpError) as tf_error:
            tf.io.write_file("/dev/full", b"x" * 100000)
        self.assertTrue(run_safety.is_disk_full(tf_error.exception))
        self.assertFalse(run_safety.is_disk_full(OSError(errno.EACCES, "denied")))

    def test_second_run_on_a_held_model_dir_refuses_and_a_dead_holder_is_taken_over(self):
        facts = self.facts
        self.assertEqual(facts["second_code"], 2, facts["second_log"][-3000:])
        self.assertRegex(
            facts["second_log"],
            rf"error: .*run is in use by the training run with pid {facts['first_pid']} on host "
            rf"\S+ \(lock .*\.lock\)\. Wait for it to finish, stop it \(kill -TERM",
        )
        self.assertNotIn("Traceback", facts["second_log"])
        self.assertRegex(
            facts["kill_2_log"],
            rf"Taking over .*\.lock: its last holder \(pid {facts['first_pid']} on \S+\) is no "
            "longer running",
        )

    def test_run_lock_is_exclusive_and_released(self):
        path = os.path.join(self.create_tempdir().full_path, ".lock")
        with run_safety.RunLock(path):
            # flock is per open file: a second lock in this very process is refused too.
            with self.assertRaisesRegex(
                run_safety.RunLockedError, rf"in use by the training run with pid {os.getpid()}"
            ):
                run_safety.RunLock(path).acquire()
        self.assertFalse(os.path.exists(path))
        with run_safety.RunLock(path):
            pass

    def test_export_killed_mid_write_leaves_no_version_and_the_next_takes_the_next_free(self):
        base = os.path.join(self.export_root, "tiny")
        # Only the hidden directory is left: TF Serving loads integer names only.
        hidden = f".tmp-export-{socket.gethostname()}-{self.dead_export}"
        self.assertEqual(sorted(os.listdir(base)), [hidden, "1"])
        self.assertEqual(serving.list_versions(base), [1])
        # The next export's publishing step (its SavedModel write is export_test's):
        # the dead export's directory goes, and the version is the next free one.
        export._remove_dead_exports(base)
        self.assertEqual(sorted(os.listdir(base)), ["1"])
        staged = os.path.join(base, ".tmp-export-next")
        shutil.copytree(os.path.join(base, "1"), staged)
        version_dir = export._publish(staged, base, None)
        self.assertEqual(version_dir, os.path.join(base, "2"))
        self.assertEqual(sorted(os.listdir(base)), ["1", "2"])


class ModelsDirectoryTest(tf.test.TestCase):
    """`best/` and exports: interrupted at each instant of their update."""

    def _generator(self, seed):
        tf.keras.utils.set_random_seed(seed)
        return biggan.Generator(32, ch=8, num_classes=3, shared_dim=8, dim_z=8).build_weights()

    def test_best_is_replaced_atomically(self):
        best = os.path.join(self.create_tempdir().full_path, "best")
        models = {fid: self._generator(fid) for fid in (1, 2, 3)}
        kernels = {fid: g.variables[0].numpy() for fid, g in models.items()}

        def update(fid, fault=None, exchange=True):
            """Replaces best/ by models[fid], stopped at `fault` (the hook's exception
            stops the update there with no clean-up code on the way: the files are as a
            kill there leaves them)."""
            env = {run_safety.FAULT_ENV: f"raise:{fault}"} if fault else {}
            run_safety._fault_counts.clear()
            real = run_safety._exchange
            with mock.patch.dict(os.environ, env), mock.patch.object(
                run_safety, "_exchange", side_effect=real if exchange else lambda a, b: False
            ):
                model_io.replace_models(best, models[fid], json_files={"m.json": {"fid": fid}})

        def assert_best(fid):
            g, _ = model_io.restore_models(best)
            self.assertAllEqual(g.variables[0].numpy(), kernels[fid])
            self.assertEqual(model_io.read_config(best, "m.json")["fid"], fid)

        update(2)
        assert_best(2)
        # Stopped after the new models are staged: the old best/ stands, whole.
        with self.assertRaises(run_safety.FaultInjected):
            update(1, "replace_models")
        assert_best(2)
        run_safety.recover_dir(best)
        assert_best(2)
        self.assertEqual(os.listdir(os.path.dirname(best)), ["best"])
        # Stopped right after the swap (one renameat2 exchange): the new one, whole.
        with self.assertRaises(run_safety.FaultInjected):
            update(1, "replace_dir")
        assert_best(1)
        run_safety.recover_dir(best)
        assert_best(1)
        self.assertEqual(os.listdir(os.path.dirname(best)), ["best"])
        # Without renameat2, between the two renames best/ is missing for an instant;
        # the old one is complete in best.old and the next start puts it back.
        with self.assertRaises(run_safety.FaultInjected):
            update(3, "replace_dir", exchange=False)
        self.assertFalse(os.path.exists(best))
        run_safety.recover_dir(best)
        assert_best(1)
        self.assertEqual(os.listdir(os.path.dirname(best)), ["best"])
        update(3, exchange=False)
        assert_best(3)


if __name__ == "__main__":
    tf.test.main()
