r"""Exports a generator as a TF Serving SavedModel: `EXPORT_ROOT/NAME/VERSION/`.

  python -m tf_cgan_transfer.export --model=runs/flowers_bn/models_ema --name=flowers \
      --export_root=exports --truncation=0.5 --class_names_file=flowers_classes.txt

Restores the generator, re-accumulates its standing BN statistics at --truncation (so
an image never depends on the other requests of its batch), and writes the next free
integer version (or --version, never overwriting one) with three signatures:

* `serving_default`: `label` int32 [N], `z` float32 [N, dim_z] -> `images` float32
  [N, R, R, 3] in [-1, 1].
* `sample`: `label` int32 [N], `seed` int64 [N], `truncation` float32 [N] -> `images`
  uint8 [N, R, R, 3] and `png_bytes` string [N]. Example i uses
  `z_i = biggan.sample_z(1, dim_z, truncation_i, seed_i)[0]` (`seeded_latents`), so one
  seed always gives the same image. The BN statistics are the export-time ones, exact
  for the exported truncation only: other truncations still run, slightly off.
* `label_for_name`: `class_name` string [N] -> `label` int32 [N], from the class names
  stored as the asset `class_names.txt` (one per line, line i is label i).

Bad labels, names, seeds or latent widths fail with INVALID_ARGUMENT inside the graph.
The graph holds no Python ops, so the C++ model server can run it. The version also
gets `assets.extra/tf_serving_warmup_requests` (needs `tensorflow-serving-api`;
--nowarmup skips it) and EXPORT_ROOT/models.config lists every model under EXPORT_ROOT.
A version is written to a hidden temporary directory and renamed into place, so a
server polling EXPORT_ROOT/NAME never sees a half-written version.
"""

import dataclasses
import os
import shutil
import sys
import tempfile
import types
from typing import Optional

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import images
from tf_cgan_transfer import precision

SERVE_TAG = "serve"
IMAGES_KEY = "images"
CLASS_NAMES_FILE = "class_names.txt"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MODELS_CONFIG_FILE = "models.config"
PYTHON_OPS = frozenset({"PyFunc", "EagerPyFunc", "PyFuncStateless"})
STANDING_STATS_BATCH_SIZE = 64


class ExportError(ValueError):
    """The export cannot be written as asked; the message says what to change."""


# ---- Serving module ------------------------------------------------------------------


def default_class_names(num_classes):
    """`["class_0", ..., "class_{K-1}"]`."""
    return [f"class_{k}" for k in range(num_classes)]


def read_class_names(path, num_classes):
    """The class names in `path`, one per line (blank lines ignored); exactly K, unique."""
    if not tf.io.gfile.exists(path):
        raise ExportError(f"Class names file {path} does not exist.")
    with tf.io.gfile.GFile(path) as f:
        names = [line.strip() for line in f.read().splitlines() if line.strip()]
    if len(names) != num_classes:
        raise ExportError(
            f"{path} lists {len(names)} class names, but the generator has {num_classes} "
            "classes: give one name per line, line i naming label i."
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ExportError(f"{path} repeats class names {duplicates}; names must be unique.")
    return names


def seeded_latents(seeds, dim_z, truncation):
    """One latent per seed: `[N, dim_z]`, row i = `biggan.sample_z(1, dim_z, t_i, seed_i)`.

    Args:
      seeds: int64 `[N]`; each row is a stateless truncated normal seeded by `[seed, 0]`.
      dim_z: latent width.
      truncation: float32 `[N]` (or a scalar), multiplies each row.
    """
    seeds = tf.cast(seeds, tf.int64)
    z = tf.map_fn(
        lambda s: tf.random.stateless_truncated_normal(
            [dim_z], seed=tf.stack([s, tf.constant(0, tf.int64)]), alg=biggan.RNG_ALG
        ),
        seeds,
        fn_output_signature=tf.TensorSpec([dim_z], tf.float32),
    )
    truncation = tf.cast(truncation, tf.float32)
    if truncation.shape.rank:
        truncation = truncation[:, None]
    return z * truncation


def _check_labels(label, num_classes):
    return [
        tf.debugging.assert_greater_equal(label, 0, message=f"label must be in [0, {num_classes})"),
        tf.debugging.assert_less(
            label, num_classes, message=f"label must be in [0, {num_classes})"
        ),
    ]


def _same_batch(tensors, message):
    first = tf.shape(tensors[0])[0]
    return [tf.debugging.assert_equal(tf.shape(t)[0], first, message=message) for t in tensors[1:]]


class ServingModule(tf.Module):
    """The exported object: the generator's variables, the class-name table, 3 functions.

    The generator itself is only closed over (not tracked), so the SavedModel holds its
    variables and the traced functions, not a Keras model.

    Args:
      generator: a `biggan.Generator` whose standing statistics are already set.
      class_names_path: a file with K unique class names, one per line.
      truncation: the truncation the standing statistics were accumulated at (recorded).
    """

    def __init__(self, generator, class_names_path, truncation):
        super().__init__(name="generator_serving")
        k, dim_z, r = generator.num_classes, generator.dim_z, generator.resolution
        self._generator_variables = list(generator.variables)
        self.num_classes = tf.Variable(k, dtype=tf.int32, trainable=False, name="num_classes")
        self.dim_z = tf.Variable(dim_z, dtype=tf.int32, trainable=False, name="dim_z")
        self.resolution = tf.Variable(r, dtype=tf.int32, trainable=False, name="resolution")
        self.truncation = tf.Variable(
            truncation, dtype=tf.float32, trainable=False, name="truncation"
        )
        self.class_names = tf.saved_model.Asset(class_names_path)
        self._class_table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self.class_names,
                tf.string,
                tf.lookup.TextFileIndex.WHOLE_LINE,
                tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER,
            ),
            default_value=-1,
        )

        def generate(z, label):
            checks = _check_labels(label, k) + _same_batch(
                [z, label], "z and label must have the same batch size"
            )
            checks.append(
                tf.debugging.assert_equal(
                    tf.shape(z)[1], dim_z, message=f"z must have shape [N, {dim_z}]"
                )
            )
            with tf.control_dependencies(checks):
                z, label = tf.identity(z), tf.identity(label)
            return generator((z, label), training=False)

        def serving_default(label, z):
            return {IMAGES_KEY: generate(z, label)}

        def sample(label, seed, truncation):
            checks = _same_batch(
                [label, seed, truncation], "label, seed and truncation must have the same size"
            )
            checks.append(
                tf.debugging.assert_positive(truncation, message="truncation must be > 0")
            )
            with tf.control_dependencies(checks):
                z = seeded_latents(seed, dim_z, truncation)
            pixels = images.to_uint8(generate(z, label))
            png = tf.map_fn(
                tf.io.encode_png, pixels, fn_output_signature=tf.TensorSpec([], tf.string)
            )
            return {IMAGES_KEY: pixels, "png_bytes": png}

        def label_for_name(class_name):
            label = self._class_table.lookup(class_name)
            unknown = tf.boolean_mask(class_name, label < 0)
            check = tf.debugging.Assert(
                tf.size(unknown) == 0, ["unknown class names:", unknown], summarize=10
            )
            with tf.control_dependencies([check]):
                return {"label": tf.cast(label, tf.int32)}

        # A SimpleNamespace is not tracked: the functions are saved once, as signatures.
        self._functions = types.SimpleNamespace(
            serving_default=tf.function(
                serving_default,
                input_signature=[
                    tf.TensorSpec([None], tf.int32, name="label"),
                    tf.TensorSpec([None, dim_z], tf.float32, name="z"),
                ],
            ),
            sample=tf.function(
                sample,
                input_signature=[
                    tf.TensorSpec([None], tf.int32, name="label"),
                    tf.TensorSpec([None], tf.int64, name="seed"),
                    tf.TensorSpec([None], tf.float32, name="truncation"),
                ],
            ),
            label_for_name=tf.function(
                label_for_name,
                input_signature=[tf.TensorSpec([None], tf.string, name="class_name")],
            ),
        )

    def signatures(self):
        """`{signature name: concrete function}` for `tf.saved_model.save`.

        The functions are saved only as signatures (not also as attributes, which would
        trace the generator twice more); load them as `loaded.signatures[name]`.
        """
        return {name: fn.get_concrete_function() for name, fn in vars(self._functions).items()}


# ---- Checks --------------------------------------------------------------------------


def python_ops(saved_model_dir):
    """Sorted `(op, node name)` of Python ops in the `serve` graph and its functions.

    The C++ model server cannot run them (PyFunc, EagerPyFunc, PyFuncStateless).
    """
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top

    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    found = set()
    for meta_graph in proto.meta_graphs:
        if SERVE_TAG not in meta_graph.meta_info_def.tags:
            continue
        nodes = list(meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            nodes.extend(function.node_def)
        found.update((n.op, n.name) for n in nodes if n.op in PYTHON_OPS)
    return sorted(found)


# ---- Warmup and models.config --------------------------------------------------------


def _serving_protos():
    """`(model_pb2, predict_pb2, prediction_log_pb2)` from `tensorflow-serving-api`."""
    try:
        # pylint: disable=g-import-not-at-top
        from tensorflow_serving.apis import model_pb2
        from tensorflow_serving.apis import predict_pb2
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError as e:
        raise ExportError(
            "Writing warmup requests needs the TF Serving protos: pip install "
            "tensorflow-serving-api==<your TensorFlow version>, or pass --nowarmup."
        ) from e
    return model_pb2, predict_pb2, prediction_log_pb2


def warmup_requests(model_name, dim_z, class_name):
    """`PredictionLog`s exercising each signature once (batch 1); needs the serving protos."""
    model_pb2, predict_pb2, prediction_log_pb2 = _serving_protos()
    inputs = {
        "serving_default": dict(label=tf.zeros([1], tf.int32), z=tf.zeros([1, dim_z])),
        "sample": dict(
            label=tf.zeros([1], tf.int32),
            seed=tf.zeros([1], tf.int64),
            truncation=tf.ones([1], tf.float32),
        ),
        "label_for_name": dict(class_name=tf.constant([class_name])),
    }
    logs = []
    for signature, tensors in inputs.items():
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
        )
        for key, value in tensors.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        logs.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
        )
    return logs


def write_warmup(version_dir, logs):
    """Writes `logs` to `VERSION/assets.extra/tf_serving_warmup_requests` (a TFRecord)."""
    path = os.path.join(version_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def list_versions(model_base):
    """Sorted integer versions under `model_base` (the directories the server would load)."""
    if not tf.io.gfile.isdir(model_base):
        return []
    return sorted(
        int(d.rstrip("/")) for d in tf.io.gfile.listdir(model_base) if d.rstrip("/").isdigit()
    )


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_models_config(export_root, base_path_prefix=None):
    """Writes `export_root/models.config` listing every model with a version; returns it.

    A text-format `ModelServerConfig`, one `config` per model, sorted by name. Each
    `base_path` is `base_path_prefix/NAME` when a prefix is given (e.g. "/models", where
    the server container mounts export_root, or a path relative to the server's working
    directory), else the model directory's absolute path.
    """
    entries = []
    for name in sorted(d.rstrip("/") for d in tf.io.gfile.listdir(export_root)):
        model_base = os.path.join(export_root, name)
        if name.startswith(".") or not list_versions(model_base):
            continue
        if base_path_prefix is None:
            base_path = os.path.abspath(model_base)
        else:
            base_path = os.path.join(base_path_prefix, name)
        entries.append(
            "  config {\n"
            f"    name: {_quote(name)}\n"
            f"    base_path: {_quote(base_path)}\n"
            '    model_platform: "tensorflow"\n'
            "  }\n"
        )
    path = os.path.join(export_root, MODELS_CONFIG_FILE)
    text = "model_config_list {\n" + "".join(entries) + "}\n"
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return path


# ---- Export --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What `run` exports. `version=None` takes the next free version."""

    model: str
    name: str
    export_root: str = "exports"
    version: Optional[int] = None
    class_names_file: Optional[str] = None
    truncation: float = 1.0
    standing_stats_batches: int = 16
    seed: int = 0
    warmup: bool = True
    base_path_prefix: Optional[str] = None
    mixed_precision: str = "float32"


def save_generator(generator, version_dir, class_names, truncation, model_name=None, warmup=True):
    """Writes `generator` (standing statistics already set) as a SavedModel at `version_dir`.

    Args:
      generator: a `biggan.Generator`.
      version_dir: the directory to create; it must not exist.
      class_names: K unique names without newlines, line i of the asset naming label i.
      truncation: what the statistics were accumulated at (recorded as `truncation`).
      model_name: the served model name put in the warmup requests.
      warmup: also write `assets.extra/tf_serving_warmup_requests`.

    Raises:
      ExportError: bad class names, missing serving protos, or Python ops in the graph.
    """
    if len(class_names) != generator.num_classes or any(
        not n or "\n" in n or n != n.strip() for n in class_names
    ):
        raise ExportError(
            f"Need {generator.num_classes} non-empty, single-line class names, got {class_names}."
        )
    logs = None
    if warmup:
        logs = warmup_requests(model_name or "generator", generator.dim_z, class_names[0])
    with tempfile.TemporaryDirectory() as scratch:
        names_path = os.path.join(scratch, CLASS_NAMES_FILE)
        with open(names_path, "w") as f:
            f.write("\n".join(class_names) + "\n")
        module = ServingModule(generator, names_path, truncation)
        tf.saved_model.save(module, version_dir, signatures=module.signatures())
    found = python_ops(version_dir)
    if found:
        raise ExportError(f"The export has Python ops the model server cannot run: {found}")
    if logs:
        write_warmup(version_dir, logs)
    return version_dir


def restore_generator(path):
    """The generator to export from `path`.

    `path` is a models directory (`biggan.save_models`), or a training run's model_dir:
    its final `models_ema/` (EMA generator) or `models/` when the run finished, else the
    latest checkpoint in its `ckpt/` (the EMA generator when the run keeps one).
    """
    directory = biggan.find_models_dir(path, prefer_ema=True)
    if directory:
        return biggan.restore_models(directory)[0]
    latest = tf.train.latest_checkpoint(os.path.join(path, "ckpt"))
    if latest and tf.io.gfile.exists(os.path.join(path, biggan.GENERATOR_CONFIG_FILE)):
        generator = biggan.Generator.from_config(biggan.read_config(path)).build_weights()
        keys = {name.split("/")[0] for name, _ in tf.train.list_variables(latest)}
        which = "ema_generator" if "ema_generator" in keys else "generator"
        status = tf.train.Checkpoint(**{which: generator}).read(latest)
        status.assert_existing_objects_matched()
        logging.info("Exporting %s from %s", which, latest)
        return generator
    raise ExportError(
        f"{path} is neither a model directory (generator_config.json + models.*) nor a "
        "training run with models_ema/, models/ or checkpoints in ckpt/."
    )


def run(config):
    """Exports as a `ExportConfig` says; returns the version directory written."""
    if not config.name or os.sep in config.name or config.name.startswith("."):
        raise ExportError(f"--name={config.name!r} must be a plain directory name.")
    model_base = os.path.join(config.export_root, config.name)
    existing = list_versions(model_base)
    version = config.version if config.version is not None else max(existing, default=0) + 1
    if version < 0:
        raise ExportError(f"--version must be >= 0, got {version}.")
    version_dir = os.path.join(model_base, str(version))
    if tf.io.gfile.exists(version_dir):
        raise ExportError(
            f"{version_dir} already exists; exports are immutable: pick another --version "
            f"or omit it (next free: {max(existing, default=0) + 1})."
        )
    if config.warmup:
        _serving_protos()  # fail before the slow work
    # The served graph computes in the precision the generator is built with.
    with precision.policy_scope(config.mixed_precision):
        generator = restore_generator(config.model)
    if config.class_names_file:
        class_names = read_class_names(config.class_names_file, generator.num_classes)
    else:
        class_names = default_class_names(generator.num_classes)
    if config.standing_stats_batches:
        biggan.accumulate_standing_stats(
            generator,
            config.standing_stats_batches,
            STANDING_STATS_BATCH_SIZE,
            config.truncation,
            config.seed,
        )
    else:
        logging.warning("Keeping the checkpoint's BN statistics (--standing_stats_batches=0).")
    tf.io.gfile.makedirs(model_base)
    tmp_dir = os.path.join(model_base, f".tmp-{version}-{os.getpid()}")
    if tf.io.gfile.exists(tmp_dir):
        tf.io.gfile.rmtree(tmp_dir)
    try:
        save_generator(
            generator, tmp_dir, class_names, config.truncation, config.name, config.warmup
        )
        tf.io.gfile.rename(tmp_dir, version_dir)
    finally:
        if tf.io.gfile.exists(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)
    write_models_config(config.export_root, config.base_path_prefix)
    return version_dir


def define_flags(flag_values=flags.FLAGS):
    """Defines the command line's flags in `flag_values` (only `__main__` calls this)."""
    fv = dict(flag_values=flag_values)
    # What to export.
    flags.DEFINE_string(
        "model",
        None,
        "A training run's --model_dir (its EMA generator when present) or a model directory "
        "written by biggan.save_models.",
        **fv,
    )
    flags.DEFINE_string(
        "class_names_file",
        None,
        "Text file of the K class names, line i naming label i (None: class_0..class_{K-1}).",
        **fv,
    )
    flags.DEFINE_float(
        "truncation", 1.0, "Truncation the BN standing statistics are accumulated at.", **fv
    )
    flags.DEFINE_integer(
        "standing_stats_batches",
        16,
        f"Batches of {STANDING_STATS_BATCH_SIZE} for the standing statistics (0: keep the "
        "checkpoint's).",
        lower_bound=0,
        **fv,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the standing-statistics batches.", **fv)
    flags.DEFINE_enum(
        "mixed_precision",
        "float32",
        list(precision.POLICIES),
        "Precision of the served graph: mixed_bfloat16 runs convolutions in bfloat16 (fast "
        "on TPUs, Ampere+ GPUs and CPUs with AVX512-BF16/AMX; images within ~1e-2).",
        **fv,
    )
    # Where to write it.
    flags.DEFINE_string("name", None, "Model name: the directory under --export_root.", **fv)
    flags.DEFINE_string("export_root", "exports", "Root of the served models.", **fv)
    flags.DEFINE_integer(
        "version", None, "Version to write (None: the next free one); never overwritten.", **fv
    )
    flags.DEFINE_bool(
        "warmup", True, "Write warmup requests (needs the tensorflow-serving-api protos).", **fv
    )
    flags.DEFINE_string(
        "base_path_prefix",
        None,
        "base_path in models.config is PREFIX/NAME (e.g. /models in a server container, or "
        "a path relative to the server's working directory); None: absolute local paths.",
        **fv,
    )
    flags.mark_flags_as_required(["model", "name"], **fv)
    flags.register_validator(
        "truncation", lambda t: 0.0 < t <= 1.0, "--truncation must be in (0, 1].", **fv
    )
    flags.register_validator(
        "model",
        lambda p: p is None
        or any(
            tf.io.gfile.exists(os.path.join(p, sub, biggan.GENERATOR_CONFIG_FILE))
            for sub in ("", "models_ema", "models")
        ),
        "--model must be a training run directory (models_ema/, models/ or ckpt/) or a "
        "directory holding generator_config.json (biggan.save_models).",
        **fv,
    )
    flags.register_validator(
        "name",
        lambda n: n is None or (n and os.sep not in n and not n.startswith(".")),
        "--name must be a plain directory name.",
        **fv,
    )


def config_from_flags(flag_values=flags.FLAGS):
    """The `ExportConfig` of parsed flags (defined by `define_flags`)."""
    return ExportConfig(
        **{f.name: flag_values[f.name].value for f in dataclasses.fields(ExportConfig)}
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        version_dir = run(config_from_flags())
    except (ExportError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(f"Exported {version_dir}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
