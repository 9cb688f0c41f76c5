"""GAN metrics as pure functions of classifier activations: FID, KID, IS, KMMD, intra-FID,
precision and recall, density and coverage, and a memorisation score.

FID, KID and IS are TF-GAN's (`tensorflow_gan.eval`), fed float64 activations; KMMD is
the Gaussian-kernel MMD of the cGANTransfer paper's tables. The nearest-neighbour
metrics (`precision_recall`, `density_coverage`, `memorisation`) tell what FID cannot:
whether G covers the real images, stays on their manifold, or copies its training set.
None of these functions touches a model: `evaluator.Evaluator` computes the activations
and calls them. `json_safe` and `summary` turn a result dict into standard JSON and one
line of text.
"""

import math

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_gan as tfgan

MIN_STABLE_IMAGES = 2048  # fewer images per set give a visibly biased FID
KID_BLOCK_SIZE = 1024  # TF-GAN's default max_block_size


def _cross_gram_fid(real, generated):
    """FID from the singular values of the `n_r x n_g` cross-Gram matrix (float64).

    With R, G the centred rows over sqrt(n - 1), S_r = R^T R and S_g = G^T G; the
    non-zero eigenvalues of S_r S_g are the squared singular values of R G^T, so
    tr (S_r S_g)^(1/2) is the sum of those singular values: no D x D matrix and no
    matrix square root (whose iterations TF-GAN runs twice on D x D matrices).
    """
    mean_r, mean_g = real.mean(axis=0), generated.mean(axis=0)
    r = (real - mean_r) / np.sqrt(len(real) - 1)
    g = (generated - mean_g) / np.sqrt(len(generated) - 1)
    trace_root = np.linalg.svd(r @ g.T, compute_uv=False).sum()
    return float(np.sum((mean_r - mean_g) ** 2) + np.sum(r * r) + np.sum(g * g) - 2.0 * trace_root)


def cross_gram_pays(num_real, num_generated, dim):
    """Whether `_cross_gram_fid` is cheaper than TF-GAN's two D x D square roots.

    The cross-Gram route costs about n_r n_g (D + min(n_r, n_g)) operations, TF-GAN's
    a few D^3 (two SVD-based square roots of D x D matrices): the former wins while
    n_r n_g min(n_r, n_g) <= D^3, e.g. up to about 2,048 images a set for Inception's
    2,048-wide features, and for every per-class FID.
    """
    return num_real * num_generated * min(num_real, num_generated) <= dim**3


def frechet_distance(real, generated):
    """FID in float64: |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)), unbiased covariances.

    Large sets go through `tfgan.eval.frechet_classifier_distance_from_activations`; sets
    small next to the feature width (`cross_gram_pays`: a periodic evaluation's 1,000
    images, per-class FID) through the exactly equal cross-Gram form, `_cross_gram_fid`
    (the two agree to float64 rounding; tested): 0.3 s for 1,000 against 1,000
    2048-wide features, where TF-GAN's square roots take 12.5 s on 2 CPU cores
    (benchmarks/results/eval_cost.md).

    Returns NaN when a set has fewer than 2 points.
    """
    real = np.asarray(real, np.float64)
    generated = np.asarray(generated, np.float64)
    if len(real) < 2 or len(generated) < 2:
        return float("nan")
    if cross_gram_pays(len(real), len(generated), real.shape[1]):
        return _cross_gram_fid(real, generated)
    return float(
        tfgan.eval.frechet_classifier_distance_from_activations(
            tf.constant(real), tf.constant(generated)
        )
    )


def kernel_distance(real, generated, seed=0, max_block_size=KID_BLOCK_SIZE):
    """KID and its standard error: `tfgan.eval.kernel_classifier_distance_and_std_from_activations`.

    Unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3, averaged over blocks of at
    most `max_block_size`; std is NaN with one block. TF-GAN's blocks assume random
    order, so both sets are first shuffled with `seed` (real data is often class-sorted).
    """
    rng = np.random.default_rng(seed)
    real = np.asarray(real, np.float64)[rng.permutation(len(real))]
    generated = np.asarray(generated, np.float64)[rng.permutation(len(generated))]
    # TF-GAN needs tf.Tensor inputs here (it calls .shape.assert_has_rank).
    kid, std = tfgan.eval.kernel_classifier_distance_and_std_from_activations(
        tf.constant(real), tf.constant(generated), max_block_size=max_block_size
    )
    return float(kid), float(std)


def inception_score(logits):
    """IS = exp(E_x[KL(p(y|x) || p(y))]), `tfgan.eval.classifier_score_from_logits`.

    One split over all images, every logit (1008 for Inception), float64.
    """
    logits = tf.constant(np.asarray(logits, np.float64))
    return float(tfgan.eval.classifier_score_from_logits(logits))


def _squared_distance_chunks(a, b, chunk=1024):
    """|a_i - b_j|^2 for `chunk` rows of `a` at a time (`[<= chunk, len(b)]` each).

    Chunking bounds memory at `chunk x len(b)` floats whatever the set sizes.
    """
    b_norms = np.sum(b * b, axis=1)
    for start in range(0, len(a), chunk):
        rows = a[start : start + chunk]
        squared = np.sum(rows * rows, axis=1)[:, None] + b_norms[None, :] - 2.0 * rows @ b.T
        yield np.maximum(squared, 0.0)


def _mean_kernel(a, b, gamma):
    """Mean of exp(-gamma |a_i - b_j|^2) over all pairs."""
    total = sum(np.exp(-gamma * squared).sum() for squared in _squared_distance_chunks(a, b))
    return total / (len(a) * len(b))


def kernel_mmd(real, generated, sigma=1.0):
    """KMMD: Gaussian-kernel MMD^2 with squared distances normalised by the real data's.

    With real features r_1..r_n, generated g_1..g_m (float64):

        s        = 1/(n(n-1)) sum_{i != j} |r_i - r_j|^2   (= 2 tr of r's unbiased covariance)
        k(x, y)  = exp(-|x - y|^2 / (2 sigma^2 s))
        KMMD     = 1/n^2 sum_{i,j} k(r_i, r_j) + 1/m^2 sum_{i,j} k(g_i, g_j)
                   - 2/(nm) sum_{i,j} k(r_i, g_j)

    i.e. the biased (V-statistic, diagonals included) estimate of MMD^2, in [0, 2];
    sigma = 1 as in the cGANTransfer paper's tables. NaN when n < 2 or s = 0.
    """
    real = np.asarray(real, np.float64)
    generated = np.asarray(generated, np.float64)
    if len(real) < 2 or len(generated) < 1:
        return float("nan")
    scale = 2.0 * np.sum(np.var(real, axis=0, ddof=1))
    if not scale > 0:
        return float("nan")
    gamma = 1.0 / (2.0 * sigma**2 * scale)
    return float(
        _mean_kernel(real, real, gamma)
        + _mean_kernel(generated, generated, gamma)
        - 2.0 * _mean_kernel(real, generated, gamma)
    )


def per_class_frechet_distance(real, real_labels, generated, generated_labels, num_classes):
    """Intra-FID: `{c: FID(generated of class c, real of class c)}` for c < num_classes.

    A class with fewer than 2 real or generated images gets NaN (with a warning).
    """
    real_labels = np.asarray(real_labels)
    generated_labels = np.asarray(generated_labels)
    result, empty = {}, []
    for c in range(num_classes):
        r, g = real[real_labels == c], generated[generated_labels == c]
        if len(r) < 2 or len(g) < 2:
            empty.append(c)
        result[c] = frechet_distance(r, g)
    if empty:
        logging.warning(
            "Per-class FID is NaN for classes %s: fewer than 2 real or generated images "
            "(real labels must be the generator's class ids 0..%d).",
            empty,
            num_classes - 1,
        )
    return result


# ---- Nearest-neighbour metrics ------------------------------------------------------

PRECISION_RECALL_K = 3  # Kynkäänniemi et al. 2019
DENSITY_COVERAGE_K = 5  # Naeem et al. 2020
COPY_PERCENTILE = 5.0


def pairwise_distances(a, b):
    """Euclidean distances `[len(a), len(b)]` in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rows = [np.sqrt(squared) for squared in _squared_distance_chunks(a, b)]
    return np.concatenate(rows) if rows else np.zeros([0, len(b)])


def _self_distances(x):
    """`pairwise_distances(x, x)` with inf on the diagonal (a point is not its neighbour)."""
    distances = pairwise_distances(x, x)
    np.fill_diagonal(distances, np.inf)
    return distances


def _kth(self_distances, k):
    return np.partition(self_distances, k - 1, axis=1)[:, k - 1]


def knn_radii(x, k):
    """Distance of each point of `x` to its k-th nearest other point of `x`."""
    return _kth(_self_distances(x), k)


def _precision_recall(cross, real_radii, generated_radii):
    """From `cross [G, R]` distances and each set's k-NN radii."""
    precision = np.mean(np.any(cross <= real_radii[None, :], axis=1))
    recall = np.mean(np.any(cross.T <= generated_radii[None, :], axis=1))
    return float(precision), float(recall)


def _density_coverage(cross, real_radii, k):
    inside = cross <= real_radii[None, :]  # [G, R]
    return float(inside.sum() / (k * len(cross))), float(np.mean(np.any(inside, axis=0)))


def _check_k(name, k, *sets):
    if any(len(s) <= k for s in sets):
        raise ValueError(f"{name} with k={k} needs more than {k} points per set.")


def precision_recall(real, generated, k=PRECISION_RECALL_K):
    """Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019).

    Each set's manifold is the union of balls around its points with radius the distance
    to the point's k-th nearest neighbour in the same set. Precision: the share of
    generated points inside the real manifold (are the images realistic); recall: the
    share of real points inside the generated manifold (are the real images covered).

    Returns:
      `(precision, recall)`, each in [0, 1].
    """
    _check_k("precision_recall", k, real, generated)
    return _precision_recall(
        pairwise_distances(generated, real), knn_radii(real, k), knn_radii(generated, k)
    )


def density_coverage(real, generated, k=DENSITY_COVERAGE_K):
    """Density and coverage (Naeem et al., ICML 2020), from real k-NN balls only.

    density  = 1/(k M) sum_j #{i : g_j in B(r_i, NND_k(r_i))}  (≈ 1 for matching sets;
               above 1 when generated points crowd dense real regions)
    coverage = share of real points whose ball holds at least one generated point

    Returns:
      `(density, coverage)`.
    """
    _check_k("density_coverage", k, real)
    return _density_coverage(pairwise_distances(generated, real), knn_radii(real, k), k)


MANIFOLD_KEYS = ("precision", "recall", "density", "coverage")
# The scalars of an evaluation (TensorBoard's eval/*).
HEADLINE_KEYS = (
    "fid",
    "kid",
    "inception_score",
    "kmmd",
    "mean_per_class_fid",
    *MANIFOLD_KEYS,
    "memorisation_ratio",
    "copy_share",
    "pixel_memorisation_ratio",
    "pixel_copy_share",
    "class_accuracy",
)


def manifold_metrics(real, generated):
    """`{precision, recall, density, coverage}` with the default k's; NaN for sets too
    small for k (as per-class sets of a small evaluation can be). Each distance matrix
    is computed once for all four."""
    result = dict.fromkeys(MANIFOLD_KEYS, float("nan"))
    if len(generated) == 0 or len(real) <= min(PRECISION_RECALL_K, DENSITY_COVERAGE_K):
        return result
    cross = pairwise_distances(generated, real)
    real_self = _self_distances(real)
    if len(generated) > PRECISION_RECALL_K:
        result["precision"], result["recall"] = _precision_recall(
            cross,
            _kth(real_self, PRECISION_RECALL_K),
            knn_radii(generated, PRECISION_RECALL_K),
        )
    if len(real) > DENSITY_COVERAGE_K:
        result["density"], result["coverage"] = _density_coverage(
            cross, _kth(real_self, DENSITY_COVERAGE_K), DENSITY_COVERAGE_K
        )
    return result


def memorisation(generated, train, held_out, percentile=COPY_PERCENTILE):
    """How close generated images are to the training images, against held-out images.

    d(x) is the distance from x to its nearest training image. Held-out real images of
    the same classes show what d looks like for images that were not copied.

    Returns:
      A dict: `memorisation_ratio`, median d(generated) / median d(held-out) (≈ 1: no
      copying; → 0: copies); `copy_share`, the share of generated images with d below
      the `percentile`-th percentile of d(held-out) (≈ percentile / 100 without copying,
      → 1 for copies); and `copy_threshold`, that percentile.
    """
    if len(train) < 1 or len(held_out) < 2 or len(generated) < 1:
        raise ValueError("memorisation needs training, held-out (>= 2) and generated points.")
    generated_d = pairwise_distances(generated, train).min(axis=1)
    held_out_d = pairwise_distances(held_out, train).min(axis=1)
    threshold = float(np.percentile(held_out_d, percentile))
    return dict(
        memorisation_ratio=float(np.median(generated_d) / max(np.median(held_out_d), 1e-12)),
        copy_share=float(np.mean(generated_d < threshold)),
        copy_threshold=threshold,
    )


MEMORISATION_KEYS = ("memorisation_ratio", "copy_share", "copy_threshold")


def nan_memorisation(prefix=""):
    """The `memorisation` dict of NaNs (keys with `prefix`), for when it cannot be computed."""
    return {prefix + key: float("nan") for key in MEMORISATION_KEYS}


def class_accuracy(logits, labels, class_map):
    """Share of images whose top logit is the classifier class of their label.

    Args:
      logits: `[N, C]` classifier logits.
      labels: `[N]` the generator's class ids (the class each image was drawn for).
      class_map: `class_map[y]` is the classifier's index of generator class y.

    Returns:
      The accuracy in [0, 1]; NaN for no images.
    """
    if len(labels) == 0:
        return float("nan")
    expected = np.asarray(class_map)[np.asarray(labels)]
    return float(np.mean(np.argmax(logits, axis=1) == expected))


def warn_if_too_few(num_real, num_generated, feature_dim):
    """Logs a warning when FID/KID come from too few images to be stable."""
    needed = max(MIN_STABLE_IMAGES, feature_dim)
    if min(num_real, num_generated) < needed:
        logging.warning(
            "FID/KID computed from %d real and %d generated images (%d-dim features): "
            "fewer than %d per set gives a biased, unstable FID. Compare only numbers "
            "from equal image counts, or evaluate at least %d images.",
            num_real,
            num_generated,
            feature_dim,
            needed,
            needed,
        )


# ---- Reporting --------------------------------------------------------------------


def json_safe(value):
    """NaN/inf -> None and dict keys -> str, so the file is standard JSON.

    Args:
      value: a result dict (or any nest of dicts, lists, tuples and numbers); NumPy
        scalars become Python numbers.

    Returns:
      The same structure, accepted by `json.dumps(..., allow_nan=False)`.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def summary(results):
    """One line of the headline metrics, for the command line and logs.

    Args:
      results: a dict as `evaluator.Evaluator.evaluate` returns it.

    Returns:
      FID, KID, IS, KMMD and whichever of mean per-class FID, the nearest-neighbour
      metrics, the memorisation score and class accuracy are present; a mark when the
      real set is the training data; image counts and speed.
    """
    line = (
        f"FID {results['fid']:.3f}  KID {results['kid']:.5f}  IS {results['inception_score']:.3f}"
        f"  KMMD {results['kmmd']:.5f}"
    )
    if "mean_per_class_fid" in results:
        line += f"  mean per-class FID {results['mean_per_class_fid']:.3f}"
    if "precision" in results:
        line += "  " + "  ".join(f"{k} {results[k]:.3f}" for k in MANIFOLD_KEYS)
    if math.isfinite(results.get("memorisation_ratio", float("nan"))):
        line += (
            f"  memorisation {results['memorisation_ratio']:.3f}"
            f" (pixels {results['pixel_memorisation_ratio']:.3f})"
            f"  copies {results['copy_share']:.3f}"
        )
    if "class_accuracy" in results:
        line += f"  class accuracy {results['class_accuracy']:.3f}"
    if results.get("real_is_training_data"):
        line += "  [real set = training data]"
    return line + (
        f"  ({results['num_generated']} generated vs {results['num_real']} real images, "
        f"{results['images_per_second']:.1f} images/s, {results['seconds']:.1f} s)"
    )
