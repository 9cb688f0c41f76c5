"""Evaluation during training: a run's `Evaluator`, its records, and the best models.

Every `eval_every` steps the trainer hands the sampling generator to `PeriodicEvaluation`,
which scores it (`evaluator.Evaluator`: the real set is `eval_data`, else the training
data; the training images always take part, for the memorisation score), writes
`eval/step_*.json` and TensorBoard `eval/*`, and keeps the models with the lowest
`best_metric` in `best/`. The best value lives in the trainer's checkpoint (key
`best_fid`, whatever the metric: old checkpoints stay readable) and `best/metrics.json`
names the metric, so a run cannot be resumed to select by another one.
"""

import json
import math
import os

from absl import logging
import tensorflow as tf

from tf_cgan_transfer import classifier as classifier_lib
from tf_cgan_transfer import data
from tf_cgan_transfer import evaluator as evaluator_lib
from tf_cgan_transfer import metrics
from tf_cgan_transfer import model_io
from tf_cgan_transfer import real_data
from tf_cgan_transfer import run_safety
from tf_cgan_transfer.real_data import EvaluationError

# Metrics `best/` can be selected by; lower is better for each.
BEST_METRICS = ("fid", "kid", "mean_per_class_fid")
DEFAULT_BEST_METRIC = "fid"


def check_best_metric(name):
    """Raises an `EvaluationError` unless `name` is one of `BEST_METRICS`."""
    if name not in BEST_METRICS:
        raise EvaluationError(
            f"best_metric={name!r} is not one of {', '.join(BEST_METRICS)} (lower is better "
            "for each; --best_metric on the command line)."
        )


def recorded_best_metric(layout):
    """The metric `best/` of the run was selected by, or None when it has no best models.

    Runs from before the choice existed were selected by FID.
    """
    if not tf.io.gfile.exists(layout.best_metrics_file):
        return None
    with tf.io.gfile.GFile(layout.best_metrics_file) as f:
        return json.load(f).get("best_metric", DEFAULT_BEST_METRIC)


class PeriodicEvaluation:
    """A run's periodic evaluation.

    Args:
      config: the run's `train_config.TrainConfig` (its eval_* fields, data, classifier,
        best_metric, seed).
      data_plan: returns the validated `data.DataPlan` of the training data; called after
        the classifier loads, so a missing classifier fails before the data is read.
      layout: the `model_io.RunLayout` the chief writes to.
      best: the scalar `tf.Variable` holding the best value so far (checkpointed).

    Raises:
      EvaluationError: an unknown best_metric, a run whose `best/` was selected by
        another metric, held-out images with another class count, or a bad class map.
      data.DataError: the held-out images cannot be read as configured.
      classifier.ClassifierError: the classifier cannot be loaded (before any training).
    """

    def __init__(self, config, data_plan, layout, best):
        check_best_metric(config.best_metric)
        run_safety.recover_dir(layout.best_dir)  # after a kill mid-update: old or new, whole
        recorded = recorded_best_metric(layout)
        if recorded not in (None, config.best_metric):
            raise EvaluationError(
                f"{layout.best_dir} holds the best models by {recorded}; resume with "
                f"--best_metric={recorded}, or pass a new --model_dir (nothing was changed)."
            )
        self.config, self.layout, self.best = config, layout, best
        # The classifier first: a missing one is the likelier, and cheaper, failure.
        classifier = classifier_lib.load_classifier(
            config.classifier or classifier_lib.INCEPTION_HANDLE
        )
        plan = data_plan()
        training = real_data.from_data_config(config.data, config.eval_batch_size, plan)
        if config.eval_data is None:  # the training data, repeated up to eval_num_images
            real = training
            logging.warning(
                "Periodic evaluation compares with the training images (FID then rewards "
                "copying them): name held-out images with --eval_split, --eval_image_folder "
                "or --eval_classes."
            )
        else:
            eval_plan = data.validate(config.eval_data)
            if eval_plan.num_classes != plan.num_classes:
                raise EvaluationError(
                    f"The held-out images have {eval_plan.num_classes} classes and the "
                    f"training data {plan.num_classes}: name one held-out class per "
                    "generator class (--eval_classes)."
                )
            real = real_data.from_data_config(config.eval_data, config.eval_batch_size, eval_plan)
        self.evaluator = evaluator_lib.Evaluator(
            classifier,
            real.dataset_fn,
            real.cache_key,
            num_images=config.eval_num_images,
            batch_size=config.eval_batch_size,
            cache_dir=config.eval_cache_dir or layout.eval_cache_dir,
            seed=config.seed,
            training=training,
            class_map=config.classifier_classes,
        )
        self.evaluator.resolved_class_map(plan.num_classes)  # a bad map fails now

    def __call__(self, step, generator, discriminator, writer=None):
        """Scores `generator` at `step`; returns the results (also in eval/step_*.json)."""
        name = self.config.best_metric
        results = self.evaluator.evaluate(generator)
        results.update(step=step, best_metric=name)
        model_io.write_json(self.layout.eval_file(step), metrics.json_safe(results))
        if writer is not None:
            with writer.as_default(step=step):
                for key in metrics.HEADLINE_KEYS:
                    if key in results and math.isfinite(results[key]):
                        tf.summary.scalar(f"eval/{key}", results[key])
        logging.info("eval at step %d: %s", step, metrics.summary(results))
        value = results[name]
        if math.isfinite(value) and value < float(self.best.numpy()):
            # The models and metrics.json replace the old ones together, in one rename.
            metrics_file = os.path.basename(self.layout.best_metrics_file)
            model_io.replace_models(
                self.layout.best_dir,
                generator,
                discriminator,
                {metrics_file: metrics.json_safe(results)},
            )
            self.best.assign(value)
            logging.info(
                "New best %s %.5g at step %d: saved %s",
                name,
                value,
                step,
                os.path.relpath(self.layout.best_dir, self.layout.root),
            )
        return results
