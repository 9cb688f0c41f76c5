r"""How long importing a full-size BigGAN-PyTorch checkpoint takes.

  python -m benchmarks.pytorch_import_time [--work_dir=/tmp/pt_import] [--legacy]

The author's ImageNet checkpoint (BigGAN_ch96_bs256x8_138k: 128 px, ch 96, 1,000
classes, shared embedding 128, dim_z 120 in six chunks of 20, attention at 64 px) cannot
be downloaded here, so the script writes files of exactly its key set and shapes
(`tests.pytorch_biggan`'s layouts, random values, 70,433,988 G and 87,982,370 D
parameters) as `G.pth`, `G_ema.pth` and `D.pth`, then times what a user waits for:
`pytorch_import.load_models` (torch.load of each file, building our Keras G and D, the
layout transforms and assignments) and `pytorch_convert`'s save of the models directory.
Prints one table; `--legacy` writes the pre-1.6 container the released files use.
"""

import os
import shutil
import time

from absl import app
from absl import flags
import tensorflow as tf

from benchmarks import machine
from tests import pytorch_biggan
from tf_cgan_transfer import biggan
from tf_cgan_transfer import model_io
from tf_cgan_transfer import pytorch_import

FLAGS = flags.FLAGS
flags.DEFINE_string("work_dir", "/tmp/pytorch_import_time", "Where the fake checkpoint goes.")
flags.DEFINE_bool("legacy", True, "Write the pre-1.6 torch container (as the released files).")
flags.DEFINE_integer("repeats", 2, "Timed imports (the first also pays TF's start-up).")


def write_checkpoint(directory, legacy):
    """The full-size file set; returns (G, D) parameter counts from the layouts."""
    g_layout = pytorch_biggan.g_layout(128, 96, 1000, 128, 20, attention_block=3)
    d_layout = pytorch_biggan.d_layout(128, 96, 1000, attention_block=0)
    for stem, layout, seed in (("G", g_layout, 0), ("G_ema", g_layout, 1), ("D", d_layout, 2)):
        state = pytorch_biggan.random_state(layout, seed)
        pytorch_biggan.write(state, os.path.join(directory, f"{stem}.pth"), legacy=legacy)
        del state
    return pytorch_biggan.parameter_count(g_layout), pytorch_biggan.parameter_count(d_layout)


def main(argv):
    del argv
    weights = os.path.join(FLAGS.work_dir, "weights")
    shutil.rmtree(FLAGS.work_dir, ignore_errors=True)
    start = time.perf_counter()
    g_count, d_count = write_checkpoint(weights, FLAGS.legacy)
    write_seconds = time.perf_counter() - start
    sizes = {f: os.path.getsize(os.path.join(weights, f)) for f in sorted(os.listdir(weights))}
    rows = []
    for i in range(FLAGS.repeats):
        tf.keras.backend.clear_session()
        start = time.perf_counter()
        generator, discriminator, _ = pytorch_import.load_models(weights)
        load = time.perf_counter() - start
        start = time.perf_counter()
        model_io.save_models(os.path.join(FLAGS.work_dir, f"models{i}"), generator, discriminator)
        save = time.perf_counter() - start
        counts = (biggan.count_parameters(generator), biggan.count_parameters(discriminator))
        rows.append((i, load, save))
    info = machine.machine_info()
    print(
        f"# Import of a full-size BigGAN-PyTorch checkpoint ({info['cpu']}, "
        f"{info['usable_cores']} cores, TF {info['tensorflow']}, {info['date']})"
    )
    print(
        f"files: {', '.join(f'{k} {v / 2**20:.0f} MiB' for k, v in sizes.items())} "
        f"({'legacy' if FLAGS.legacy else 'zip'} container), written in {write_seconds:.0f} s; "
        f"layout parameters G {g_count:,}, D {d_count:,}; imported trainable G {counts[0]:,}, "
        f"D {counts[1]:,}"
    )
    print("| import | load_models (G.pth + D.pth -> Keras G, D) s | save models dir s |")
    print("| --- | ---: | ---: |")
    for i, load, save in rows:
        print(f"| {i + 1}{' (first in process)' if i == 0 else ''} | {load:.1f} | {save:.1f} |")
    shutil.rmtree(FLAGS.work_dir, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
