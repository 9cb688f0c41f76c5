"""Every metric of one evaluation, from the `Activations` of its image sets.

Three sets take part: the *real* set (what FID, KID, KMMD, precision/recall and
density/coverage compare against), the *generated* set, and optionally the *training*
set (the images the generator learned from). The memorisation score needs training
images and held-out ones: real images that are not training images. Which real images
are training images is found by exact equality of their small pixel copies, so the
check holds for any real set (a held-out split, an .npz, the training data itself) and
costs no extra classifier pass. When every real image is a training image, the real
set *is* the training data: FID & co. then reward copying, which `score` says in its
result (`real_is_training_data`).
"""

import numpy as np

from tf_cgan_transfer import metrics


def training_overlap(real, training):
    """Boolean `[len(real)]`: which real images are (pixel-for-pixel) training images."""
    seen = {row.tobytes() for row in training.pixels}
    return np.array([row.tobytes() in seen for row in real.pixels], dtype=bool)


def memorisation(generated, training, held_out):
    """Feature- and pixel-space `metrics.memorisation` (pixel keys prefixed `pixel_`).

    NaN where a set is missing (None) or too small (no training image, fewer than 2
    held-out images or no generated image).
    """
    if training is None or len(training) < 1 or len(held_out) < 2 or len(generated) < 1:
        return {**metrics.nan_memorisation(), **metrics.nan_memorisation("pixel_")}
    features = metrics.memorisation(generated.pool, training.pool, held_out.pool)
    pixels = metrics.memorisation(
        generated.pixel_vectors(), training.pixel_vectors(), held_out.pixel_vectors()
    )
    return {**features, **{"pixel_" + key: value for key, value in pixels.items()}}


def _memorisation_note(training, num_held_out):
    if training is None:
        return (
            "no training images were given: the memorisation score compares generated "
            "images with the training images and with held-out ones."
        )
    if num_held_out == 0:
        return (
            "the real set is the training data: evaluate against held-out images "
            "(--eval_split, --eval_image_folder or --real_images_npz) for FID that does "
            "not reward copying, and for the memorisation score."
        )
    if num_held_out < 2:
        return f"only {num_held_out} real image is not a training image; it needs 2."
    return None


def score(real, generated, num_classes, training=None, class_map=None, seed=0, per_class=True):
    """The evaluation's metrics.

    Args:
      real, generated: `activations.Activations` of the real and generated images.
      num_classes: the generator's class count.
      training: `Activations` of the training images, or None (no memorisation score).
      class_map: classifier index of each generator class (`class_map[y]`), or None:
        no class accuracy (the classifier does not know the generator's classes).
      seed: KID's shuffling seed.
      per_class: also the per-class metrics.

    Returns:
      A dict: `fid`, `kid`, `kid_std`, `inception_score`, `kmmd`, `precision`,
      `recall`, `density`, `coverage`; the memorisation score in feature space
      (`memorisation_ratio`, `copy_share`, `copy_threshold`) and pixel space (the same
      keys prefixed `pixel_`), NaN when unavailable with `memorisation_note` saying why
      (else None); `num_training`, `num_held_out` (real images that are not training
      images), `real_training_overlap` (their complement's share; NaN without training
      images) and `real_is_training_data` (True, False or None: unknown); with a
      class map `class_accuracy` and `real_class_accuracy`; with per_class
      `per_class_fid`, `mean_per_class_fid` and `per_class` ({class: the
      nearest-neighbour, memorisation and accuracy metrics of that class}).
    """
    metrics.warn_if_too_few(len(real), len(generated), real.pool.shape[1])
    kid, kid_std = metrics.kernel_distance(real.pool, generated.pool, seed=seed)
    results = dict(
        fid=metrics.frechet_distance(real.pool, generated.pool),
        kid=kid,
        kid_std=kid_std,
        inception_score=metrics.inception_score(generated.logits),
        kmmd=metrics.kernel_mmd(real.pool, generated.pool),
        **metrics.manifold_metrics(real.pool, generated.pool),
    )
    if training is None:
        held_out = None
        results.update(real_training_overlap=float("nan"), real_is_training_data=None)
        results.update(memorisation(generated, None, None))
    else:
        in_training = training_overlap(real, training)
        held_out = real.select(~in_training)
        results.update(
            real_training_overlap=float(np.mean(in_training)),
            real_is_training_data=bool(in_training.all()),
        )
        results.update(memorisation(generated, training, held_out))
    num_held_out = None if held_out is None else len(held_out)
    results.update(
        num_training=0 if training is None else len(training),
        num_held_out=num_held_out,
        memorisation_note=_memorisation_note(training, num_held_out),
    )
    if class_map is not None:
        results["class_accuracy"] = metrics.class_accuracy(
            generated.logits, generated.labels, class_map
        )
        results["real_class_accuracy"] = metrics.class_accuracy(real.logits, real.labels, class_map)
    if per_class:
        results.update(_per_class(real, generated, num_classes, training, held_out, class_map))
    return results


def _per_class(real, generated, num_classes, training, held_out, class_map):
    fid = metrics.per_class_frechet_distance(
        real.pool, real.labels, generated.pool, generated.labels, num_classes
    )
    finite = [v for v in fid.values() if np.isfinite(v)]
    per_class = {}
    for c in range(num_classes):
        real_c, generated_c = real.of_class(c), generated.of_class(c)
        entry = metrics.manifold_metrics(real_c.pool, generated_c.pool)
        if training is None:
            entry.update(memorisation(generated_c, None, None))
        else:
            entry.update(memorisation(generated_c, training.of_class(c), held_out.of_class(c)))
        for key in ("copy_threshold", "pixel_copy_threshold"):
            del entry[key]
        if class_map is not None:
            entry["class_accuracy"] = metrics.class_accuracy(
                generated_c.logits, generated_c.labels, class_map
            )
        per_class[c] = entry
    return dict(
        per_class_fid=fid,
        mean_per_class_fid=float(np.mean(finite)) if finite else float("nan"),
        per_class=per_class,
    )
