"""Two worker processes on localhost train with MultiWorkerMirroredStrategy."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tests import model_fixtures
from tf_cgan_transfer import model_io

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class MultiWorkerTest(tf.test.TestCase):
    def test_two_workers_end_with_identical_weights(self):
        root = self.create_tempdir().full_path
        source = os.path.join(root, "source")
        model_fixtures.make_source(source, shared=True, with_d=True)
        folder = model_fixtures.write_image_folder(os.path.join(root, "images"))
        model_dir = os.path.join(root, "run")
        workers = [f"localhost:{p}" for p in _free_ports(2)]
        args = [
            sys.executable,
            "-m",
            "tf_cgan_transfer.train",
            f"--model_dir={model_dir}",
            f"--source={source}",
            "--method=kp_bn",
            "--dataset=folder",
            f"--image_folder={folder}",
            "--resolution=32",
            "--batch_size=4",
            "--train_steps=3",
            "--checkpoint_every=2",
            "--log_every=1",
            "--sample_every=0",
            "--strategy=multi_worker",
            "--seed=1",
        ]
        processes = []
        for index in range(2):
            tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            env = dict(
                os.environ,
                TF_CONFIG=json.dumps(tf_config),
                PYTHONPATH=REPO_ROOT,
                TF_CPP_MIN_LOG_LEVEL="2",
            )
            processes.append(
                subprocess.Popen(
                    args,
                    cwd=REPO_ROOT,
                    env=env,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
        outputs = []
        for p in processes:
            try:
                out, _ = p.communicate(timeout=400)
            except subprocess.TimeoutExpired:
                for q in processes:
                    q.kill()
                raise
            outputs.append(out)
            self.assertEqual(p.returncode, 0, out[-3000:])
        self.assertIn("Finished 3 steps", outputs[0])
        chief_g, chief_d = model_io.restore_models(os.path.join(model_dir, "models"))
        worker_dir = os.path.join(model_dir, "workertemp_worker_1", "models")
        worker_g, worker_d = model_io.restore_models(worker_dir)
        for a, b in zip(
            chief_g.variables + chief_d.variables, worker_g.variables + worker_d.variables
        ):
            self.assertAllEqual(a, b)
        # Both trained: the weights moved away from the source's.
        source_g, _ = model_io.restore_models(source)
        self.assertFalse(
            np.allclose(chief_g.blocks[0].conv0.u.numpy(), source_g.blocks[0].conv0.u.numpy())
        )
        self.assertTrue(tf.io.gfile.exists(os.path.join(model_dir, "ckpt", "checkpoint")))
