"""GAN losses and the transfer regularisers (docs/method.md §4).

Losses take per-example logits and reduce by `global_batch_size` when given (sum / global
batch, the right scaling inside `strategy.run`, where gradients are summed across
replicas) or by the local mean otherwise.
"""

import tensorflow as tf

from tf_cgan_transfer import conditional_bn


def _reduce(per_example, global_batch_size):
    if global_batch_size is None:
        return tf.reduce_mean(per_example)
    return tf.reduce_sum(per_example) / tf.cast(global_batch_size, per_example.dtype)


def discriminator_hinge_loss(real_logits, fake_logits, global_batch_size=None):
    """`(loss_real, loss_fake)`: mean relu(1 - D(x)) and mean relu(1 + D(G(z)))."""
    real = tf.nn.relu(1.0 - tf.cast(real_logits, tf.float32))
    fake = tf.nn.relu(1.0 + tf.cast(fake_logits, tf.float32))
    return _reduce(real, global_batch_size), _reduce(fake, global_batch_size)


def generator_hinge_loss(fake_logits, global_batch_size=None):
    """-mean D(G(z))."""
    return _reduce(-tf.cast(fake_logits, tf.float32), global_batch_size)


def mixture_l1(generator):
    """Sum over every A (gain and bias mixtures, all layers) of mean|kernel| + mean|bias|.

    Like the reference code, this regularises A's stored parameters (the kernel before
    spectral normalisation, and the bias).
    """
    terms = [
        tf.reduce_mean(tf.abs(v))
        for layer in conditional_bn.knowledge_propagating(generator)
        for a in layer.mixtures()
        for v in (a.kernel, a.bias)
    ]
    return tf.add_n(terms) if terms else tf.constant(0.0)


def residual_l2(generator):
    """Sum over every residual R (gain and bias, all layers) of mean(R^2)."""
    terms = [
        tf.reduce_mean(tf.square(r))
        for layer in conditional_bn.knowledge_propagating(generator)
        for r in layer.residuals()
    ]
    return tf.add_n(terms) if terms else tf.constant(0.0)


def transfer_regularizer(generator, l1_scale, l2_scale):
    """`(l1_scale * mixture_l1 + l2_scale * residual_l2, {"l1": ..., "l2": ...})`.

    Added once per G step to G's loss (divide by the number of replicas inside
    `strategy.run`, since every replica adds it and gradients are summed).
    """
    l1, l2 = mixture_l1(generator), residual_l2(generator)
    return l1_scale * l1 + l2_scale * l2, {"l1": l1, "l2": l2}
