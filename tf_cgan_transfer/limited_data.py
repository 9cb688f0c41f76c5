"""Training aids for few images: differentiable augmentation and LeCam (docs/method.md §8).

With a few hundred images the discriminator soon memorises them: its hinge losses reach
zero and G learns from a saturated critic. Two remedies, both applied to D's inputs and
outputs only (G, its conditioning and the transfer method are untouched):

* DiffAugment (Zhao et al., NeurIPS 2020): every image D sees, real or generated, in D's
  step and in G's step, goes through the same random, differentiable transformations, so
  G's gradient flows back through them. Each image of a batch draws its own parameters:

  - ``color``: brightness ``x + b`` with ``b ~ U[-0.5, 0.5)``; saturation
    ``m + (x - m) * s`` with ``m`` the pixel's channel mean and ``s ~ U[0, 2)``;
    contrast ``m + (x - m) * c`` with ``m`` the image's mean and ``c ~ U[0.5, 1.5)``
    (in this order; images are in [-1, 1]).
  - ``translation``: the image moves by whole pixels ``(dy, dx)``, each uniform in
    ``[-s, s]`` with ``s = round(R / 8)``; uncovered pixels are 0 (zero padding).
  - ``cutout``: a square of side ``round(R / 2)`` is set to 0; its centre row and column
    are uniform over the positions that keep the square symmetric about the image
    (``[0, R]`` for an even side, ``[0, R - 1]`` for an odd one), and the part outside
    the image is dropped.

* LeCam (Tseng et al., CVPR 2021): ``λ (mean (D(x) - α_F)² + mean (D(G(z)) - α_R)²)``
  is added to D's loss, with ``α_R`` and ``α_F`` exponential moving averages of D's mean
  output on real and on generated images. It keeps D's outputs on the two near each
  other's recent level, which bounds how far D can separate memorised images.

Parameters are drawn for the global batch from a stateless key (`draw`) and each replica
applies its slice (`replica_slice`), so a step is the same computation on any number of
replicas, and a resumed run draws what an uninterrupted one would.
"""

import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import errors

AUGMENTS = ("none", "diffaugment")
POLICIES = ("color", "translation", "cutout")
DEFAULT_POLICY = POLICIES  # DiffAugment's choice for BigGAN with limited data
TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2
LECAM_DECAY = 0.99
# What each draw is for; folded into the augmentation key (fixed per op, so dropping an
# op from the policy does not change the others' draws).
_DRAWS = dict(brightness=0, saturation=1, contrast=2, translation=3, cutout=4)


class LimitedDataError(errors.UserError, ValueError):
    """Bad augmentation or LeCam settings; says which and what is allowed."""


def parse_policy(policy):
    """The policy as a tuple of op names, from a comma string or a sequence.

    Raises:
      LimitedDataError: an unknown or repeated op, or no op at all.
    """
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise LimitedDataError(
            f"Unknown augmentation {', '.join(map(repr, unknown))} in --augment_policy; "
            f"choose from {', '.join(POLICIES)} (a comma list, e.g. color,translation,cutout)."
        )
    if len(set(names)) != len(names):
        raise LimitedDataError(f"--augment_policy lists an op twice: {','.join(names)}.")
    if not names:
        raise LimitedDataError(
            f"--augment_policy is empty; name at least one of {', '.join(POLICIES)}, or "
            "pass --augment=none."
        )
    return tuple(names)


def check(augment, policy, lecam_weight, lecam_decay):
    """Validates the settings; returns the parsed policy (empty without augmentation)."""
    if augment not in AUGMENTS:
        raise LimitedDataError(f"--augment={augment!r}: choose one of {', '.join(AUGMENTS)}.")
    if not lecam_weight >= 0.0:  # also rejects NaN
        raise LimitedDataError(f"--lecam_weight={lecam_weight} must be >= 0 (0 turns it off).")
    if not 0.0 <= lecam_decay < 1.0:
        raise LimitedDataError(f"--lecam_decay={lecam_decay} must be in [0, 1).")
    return parse_policy(policy) if augment == "diffaugment" else ()


def translation_shift(resolution):
    return int(resolution * TRANSLATION_RATIO + 0.5)


def cutout_size(resolution):
    return int(resolution * CUTOUT_RATIO + 0.5)


# ---- Drawing ---------------------------------------------------------------------------


def draw(key, batch_size, resolution, policy):
    """Per-image parameters of `policy` for a batch, from a `[2]` int64 stateless key.

    Returns a dict with, for ``color``, ``brightness``, ``saturation`` and ``contrast``
    (`[B]` float32); for ``translation``, ``translation`` (`[B, 2]` int32 ``(dy, dx)``);
    for ``cutout``, ``cutout`` (`[B, 2]` int32 centre ``(row, col)``). Empty for an empty
    policy.
    """

    def uniform(name, shape, low, high, dtype=tf.float32):
        sub = tf.random.experimental.stateless_fold_in(
            key, tf.constant(_DRAWS[name], tf.int64), alg=biggan.RNG_ALG
        )
        return tf.random.stateless_uniform(shape, sub, low, high, dtype, alg=biggan.RNG_ALG)

    params = {}
    if "color" in policy:
        params["brightness"] = uniform("brightness", [batch_size], -0.5, 0.5)
        params["saturation"] = uniform("saturation", [batch_size], 0.0, 2.0)
        params["contrast"] = uniform("contrast", [batch_size], 0.5, 1.5)
    if "translation" in policy:
        shift = translation_shift(resolution)
        params["translation"] = uniform("translation", [batch_size, 2], -shift, shift + 1, tf.int32)
    if "cutout" in policy:
        size = cutout_size(resolution)
        params["cutout"] = uniform(
            "cutout", [batch_size, 2], 0, resolution + 1 - size % 2, tf.int32
        )
    return params


def replica_slice(params, start, size):
    """Examples `[start, start + size)` of every parameter (a replica's share)."""
    return {name: value[start : start + size] for name, value in params.items()}


# ---- Applying --------------------------------------------------------------------------


def _per_image(factor, images):
    return tf.cast(factor, images.dtype)[:, None, None, None]


def adjust_brightness(images, offset):
    return images + _per_image(offset, images)


def adjust_saturation(images, factor):
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    return mean + (images - mean) * _per_image(factor, images)


def adjust_contrast(images, factor):
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return mean + (images - mean) * _per_image(factor, images)


def translate(images, shifts):
    """Moves image b by `shifts[b] = (dy, dx)` pixels: out[i, j] = in[i - dy, j - dx], 0
    where that falls outside."""
    height, width = images.shape[1], images.shape[2]
    # One pixel of zeros on each side; indices past the image land on it.
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    rows = tf.clip_by_value(tf.range(height)[None] - shifts[:, :1] + 1, 0, height + 1)
    cols = tf.clip_by_value(tf.range(width)[None] - shifts[:, 1:] + 1, 0, width + 1)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def cut_out(images, centres, size):
    """Sets a `size` x `size` square centred at `centres[b] = (row, col)` to 0."""
    height, width = images.shape[1], images.shape[2]

    def inside(length, centre):  # [B, length]: positions covered by the square
        start = centre[:, None] - size // 2
        position = tf.range(length)[None]
        return (position >= start) & (position < start + size)

    covered = inside(height, centres[:, 0])[:, :, None] & inside(width, centres[:, 1])[:, None]
    return images * tf.cast(~covered, images.dtype)[..., None]


def apply(images, params, policy):
    """`images [B, R, R, C]` augmented by `policy` (ops in the listed order) with
    per-image `params` (from `draw`); with an empty policy, `images` itself."""
    for op in policy:
        if op == "color":
            images = adjust_brightness(images, params["brightness"])
            images = adjust_saturation(images, params["saturation"])
            images = adjust_contrast(images, params["contrast"])
        elif op == "translation":
            images = translate(images, params["translation"])
        elif op == "cutout":
            images = cut_out(images, params["cutout"], cutout_size(images.shape[1]))
        else:
            raise LimitedDataError(f"Unknown augmentation {op!r}; choose from {POLICIES}.")
    return images


def describe(augment, policy, lecam_weight, lecam_decay=LECAM_DECAY):
    """One line for the log, e.g. 'diffaugment(color,cutout), LeCam 0.3 (decay 0.99)'."""
    parts = [f"diffaugment({','.join(policy)})" if augment == "diffaugment" else "no augmentation"]
    parts.append(f"LeCam {lecam_weight:g} (decay {lecam_decay:g})" if lecam_weight else "no LeCam")
    return ", ".join(parts)


# ---- LeCam -----------------------------------------------------------------------------


def lecam_penalty(real_logits, fake_logits, anchor_real, anchor_fake, global_batch_size=None):
    """mean (D(x) - α_F)² + mean (D(G(z)) - α_R)², unweighted, float32.

    Reduced like the GAN losses: sum / `global_batch_size` when given (inside
    `strategy.run`), else the mean.
    """
    real = tf.square(tf.cast(real_logits, tf.float32) - anchor_fake)
    fake = tf.square(tf.cast(fake_logits, tf.float32) - anchor_real)
    if global_batch_size is None:
        return tf.reduce_mean(real) + tf.reduce_mean(fake)
    return (tf.reduce_sum(real) + tf.reduce_sum(fake)) / float(global_batch_size)


class LeCamAverages(tf.Module):
    """α_R and α_F: moving averages of D's mean output on real and on generated images.

    `update(real_mean, fake_mean)` runs once per D update, after it, with that update's
    means over its whole (global, accumulated) batch. The first update sets the averages
    to the means (not a decay from 0, which would anchor D's outputs to 0 for the first
    few hundred steps), and the penalty is off until then. All three variables are
    checkpointed with the run.

    Args:
      decay: the averages' decay per update (0.99 in the LeCam paper).
    """

    def __init__(self, decay=LECAM_DECAY, name="lecam"):
        super().__init__(name=name)
        self.decay = float(decay)
        with self.name_scope:
            self.real = tf.Variable(0.0, trainable=False, name="anchor_real")
            self.fake = tf.Variable(0.0, trainable=False, name="anchor_fake")
            self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="updates")

    def anchors(self):
        """`(α_R, α_F, active)` as float32 tensors; `active` is 0 before the first update
        (no averages yet: the penalty is off for the first D update), else 1."""
        active = tf.cast(self.updates > 0, tf.float32)
        return tf.identity(self.real), tf.identity(self.fake), active

    def update(self, real_mean, fake_mean):
        decay = tf.where(self.updates > 0, self.decay, 0.0)
        self.real.assign(decay * self.real + (1.0 - decay) * real_mean)
        self.fake.assign(decay * self.fake + (1.0 - decay) * fake_mean)
        self.updates.assign_add(1)
