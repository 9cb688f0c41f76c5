r"""Prints the trainable parameters of G and D per transfer method and stage.

  python -m benchmarks.trainable_params --resolution=128 --new_classes=5,20

The source is a full-size BigGAN with the TF-Hub architecture (biggan-128: ch 96, 1000
classes, shared embedding 128, hierarchical z) and random weights: counts depend only
on the architecture, so no download is needed. D is the fresh BigGAN D a hub source gets.
"""

import time

from absl import app
from absl import flags

from tf_cgan_transfer import biggan
from tf_cgan_transfer import transfer

_RESOLUTION = flags.DEFINE_enum("resolution", "128", ["128", "256", "512"], "Hub layout.")
_NEW_CLASSES = flags.DEFINE_list("new_classes", ["5", "20"], "Numbers of new classes N.")

ROWS = [
    ("kp_bn", "bn"),
    ("kp_bn", "ft"),
    ("bn_only", "bn"),
    ("finetune", "ft"),
    ("freeze_d", "ft"),
    ("minegan", "miner"),
    ("minegan", "ft"),
    ("scratch", "ft"),
]


def main(argv):
    del argv
    start = time.time()
    source = biggan.Generator(int(_RESOLUTION.value)).build_weights()
    print(
        f"| method | stage | N | G trainable | D trainable |  (biggan-{_RESOLUTION.value}, "
        f"G total {biggan.count_parameters(source):,})"
    )
    print("| --- | --- | --- | --- | --- |")
    for n in map(int, _NEW_CLASSES.value):
        built = {}
        for method, stage in ROWS:
            if transfer.resumes_from_first_stage(method, stage):
                # Same models as the first stage (ft resumes from them), another trainable set.
                models = built[method]
                config = transfer.TransferConfig(method, n, stage=stage)
                g_vars, d_vars = transfer.trainable_variables(
                    models.generator, models.discriminator, config
                )
            else:
                models = transfer.build(
                    transfer.TransferConfig(method, n, stage=stage), source=source
                )
                built[method] = models
                g_vars, d_vars = models.g_variables, models.d_variables
            print(
                f"| {method} | {stage} | {n} | {biggan.count_parameters(g_vars):,} | "
                f"{biggan.count_parameters(d_vars):,} |"
            )
    print(f"\n({time.time() - start:.0f} s)")


if __name__ == "__main__":
    app.run(main)
