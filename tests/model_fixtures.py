"""Small pretrained-like BigGANs for transfer and loss tests."""

import os

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import biggan_deep
from tf_cgan_transfer import conditional_bn
from tf_cgan_transfer import discriminator as discriminator_lib
from tf_cgan_transfer import discriminator_deep
from tf_cgan_transfer import model_io

OLD_CLASSES = 5
MAPPING = [3, 0, 4]  # new class n is set to copy old class MAPPING[n]


def _randomize_statistics(generator, seed):
    rng = np.random.default_rng(seed)
    for bn in generator.standing_batch_norms():
        c = bn.accumulated_mean.shape[0]
        bn.accumulated_mean.assign(rng.normal(0, 0.2, c).astype(np.float32))
        bn.accumulated_var.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))


def make_source(directory, shared=True, with_d=False, seed=0):
    """A small pretrained-like source saved as one of our model directories."""
    tf.keras.utils.set_random_seed(seed)
    if shared:
        g = biggan.Generator(32, ch=8, num_classes=OLD_CLASSES, shared_dim=8, dim_z=8)
    else:
        g = biggan.Generator(32, ch=8, num_classes=OLD_CLASSES, shared_dim=0, hierarchical_z=False)
    g.build_weights()
    _randomize_statistics(g, seed)
    rng = np.random.default_rng(seed + 1)
    if not shared:  # per-class tables start at zero: give the old classes distinct BNs
        for bn in g.conditional_batch_norms():
            for table in (bn.gamma.kernel, bn.beta.kernel):
                table.assign(rng.normal(0, 0.3, table.shape).astype(np.float32))
    d = (
        discriminator_lib.Discriminator(32, ch=8, num_classes=OLD_CLASSES).build_weights()
        if with_d
        else None
    )
    model_io.save_models(directory, g, d)
    return g, d


def set_one_hot_mixtures(generator, mapping):
    """A = one-hot(old class mapping[n]) (effective, after SN), bias 0, R = 0, in every
    knowledge-propagating layer (BigGAN-deep's class embedding too)."""
    one_hot = np.zeros([len(mapping), generator.num_source_classes], np.float32)
    one_hot[np.arange(len(mapping)), mapping] = 1.0
    for layer in conditional_bn.knowledge_propagating(generator):
        # Rows are orthonormal, so sigma(100 * one_hot) = 100 up to eps/100^2.
        for a in layer.mixtures():
            a.kernel.assign(100.0 * one_hot)
            a.bias.assign(tf.zeros_like(a.bias))
        for r in layer.residuals():
            r.assign(tf.zeros_like(r))


def make_deep_source(directory, resolution=32, with_d=False, seed=0, **kwargs):
    """A small pretrained-like BigGAN-deep source (ch 4, OLD_CLASSES classes, dim_z 8,
    embedding 8) saved as one of our model directories."""
    tf.keras.utils.set_random_seed(seed)
    args = dict(ch=4, num_classes=OLD_CLASSES, dim_z=8, shared_dim=8)
    args.update(kwargs)
    g = biggan_deep.DeepGenerator(resolution, **args).build_weights()
    _randomize_statistics(g, seed)
    d = None
    if with_d:
        d = discriminator_deep.DeepDiscriminator(resolution, ch=4, num_classes=OLD_CLASSES)
        d.build_weights()
    model_io.save_models(directory, g, d)
    return g, d


def write_image_folder(root, classes=3, per_class=6, seed=0):
    """A tiny image-folder data set: class c is a noisy image of a class colour."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = os.path.join(root, f"class_{c}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 60, size=[40, 36, 3]).astype(np.uint8)
            image[..., c % 3] += 150
            tf.io.write_file(os.path.join(folder, f"{i}.png"), tf.io.encode_png(image))
    return root


def tiny_generator(resolution=128, **kwargs):
    """An unbuilt small generator of the real architecture (ch 4, 3 classes)."""
    args = dict(ch=4, num_classes=3, shared_dim=8, dim_z=None)
    args.update(kwargs)
    if args["dim_z"] is None:
        args["dim_z"] = 2 * (len(biggan.G_CHANNELS[resolution]))  # chunks of 2
    return biggan.Generator(resolution, **args)
