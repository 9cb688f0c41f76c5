"""The served SavedModel: its signatures, checks, warmup requests and models.config.

Everything about what TF Serving loads lives here; `export` is only the command line
that restores a generator, sets its statistics and calls `save_generator`. A version
directory written by `save_generator` holds three signatures:

* `serving_default`: `label` int32 [N], `z` float32 [N, dim_z] -> `images` float32
  [N, R, R, 3] in [-1, 1].
* `sample`: `label` int32 [N], `seed` int64 [N], `truncation` float32 [N] -> `images`
  uint8 [N, R, R, 3] and `png_bytes` string [N]. Example i uses
  `z_i = biggan.sample_z(1, dim_z, truncation_i, seed_i)[0]` (`sampling.seeded_latents`),
  so one seed always gives the same image, equal to `sampling.sheet`'s. The BN statistics
  are the export-time ones, exact for the exported truncation only: other truncations
  still run, slightly off.
* `label_for_name`: `class_name` string [N] -> `label` int32 [N], from the class names
  stored as the asset `class_names.txt` (one per line, line i is label i).

Every input is checked inside the graph (the model server feeds tensors of any shape to
the signature's placeholders unchecked), each failure an INVALID_ARGUMENT naming the
input: NaN/Inf or a wrong rank or width of `z`, labels outside [0, K), names not in the
asset, truncation outside (0, 1], an empty batch, and a batch over `max_batch` (set at
export, `--max_batch`, default `DEFAULT_MAX_BATCH`: bounds a request's memory). The
signatures therefore declare their inputs' shapes unknown and the checks restore them.
The graph holds no Python ops (`python_ops` checks), so the C++ model server can run it.
`assets.extra/tf_serving_warmup_requests` holds one request per signature.

To add a signature: define its function and input signature in `ServingModule.__init__`
and give it a batch-1 example in `warmup_requests` (the server replays every warmup
request at load time, so each signature is traced before the first real request).
"""

import os
import tempfile
import types

import tensorflow as tf

from tf_cgan_transfer import errors
from tf_cgan_transfer import images
from tf_cgan_transfer import sampling
from tf_cgan_transfer import serving_inputs

SERVE_TAG = "serve"
IMAGES_KEY = "images"
CLASS_NAMES_FILE = "class_names.txt"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MODELS_CONFIG_FILE = "models.config"
PYTHON_OPS = frozenset({"PyFunc", "EagerPyFunc", "PyFuncStateless"})
DEFAULT_MAX_BATCH = 256


class ExportError(errors.UserError, ValueError):
    """The export cannot be written as asked; the message says what to change."""


# ---- Class names ---------------------------------------------------------------------


def default_class_names(num_classes):
    """`["class_0", ..., "class_{K-1}"]`."""
    return [f"class_{k}" for k in range(num_classes)]


def read_class_names(path, num_classes):
    """The `num_classes` unique class names in `path`, line i naming label i.

    Blank lines are ignored.

    Raises:
      ExportError: the file is missing, holds another number of names, or repeats one.
    """
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


# ---- Serving module ------------------------------------------------------------------


class ServingModule(tf.Module):
    """The exported object: the generator's variables, the class-name table, 3 functions.

    The generator itself is only closed over (not tracked), so the SavedModel holds its
    variables and the traced functions, not a Keras model.

    Args:
      generator: a `biggan.Generator` whose standing statistics are already set.
      class_names_path: a file with K unique class names, one per line.
      truncation: the truncation the standing statistics were accumulated at (recorded).
    """

    def __init__(self, generator, class_names_path, truncation, max_batch=DEFAULT_MAX_BATCH):
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
            label = serving_inputs.batch_of("label", label, [None], max_batch)
            z = serving_inputs.batch_of("z", z, [None, dim_z], max_batch)
            checks = serving_inputs.check_labels(label, k) + serving_inputs.same_batch(
                [z, label], "z and label must have the same batch size"
            )
            checks.append(tf.debugging.assert_all_finite(z, "z must be finite (no NaN or Inf)"))
            with tf.control_dependencies(checks):
                z, label = tf.identity(z), tf.identity(label)
            return generator((z, label), training=False)

        def serving_default(label, z):
            return {IMAGES_KEY: generate(z, label)}

        def sample(label, seed, truncation):
            label = serving_inputs.batch_of("label", label, [None], max_batch)
            seed = serving_inputs.batch_of("seed", seed, [None], max_batch)
            truncation = serving_inputs.batch_of("truncation", truncation, [None], max_batch)
            checks = serving_inputs.same_batch(
                [label, seed, truncation], "label, seed and truncation must have the same size"
            )
            # NaN fails both comparisons.
            message = "truncation must be in (0, 1]"
            checks.append(tf.debugging.assert_positive(truncation, message=message))
            checks.append(tf.debugging.assert_less_equal(truncation, 1.0, message=message))
            with tf.control_dependencies(checks):
                z = sampling.seeded_latents(seed, dim_z, truncation)
            pixels = images.to_uint8(generate(z, label))
            png = tf.map_fn(
                tf.io.encode_png, pixels, fn_output_signature=tf.TensorSpec([], tf.string)
            )
            return {IMAGES_KEY: pixels, "png_bytes": png}

        def label_for_name(class_name):
            class_name = serving_inputs.batch_of("class_name", class_name, [None], max_batch)
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
                    tf.TensorSpec(None, tf.int32, name="label"),
                    tf.TensorSpec(None, tf.float32, name="z"),
                ],
            ),
            sample=tf.function(
                sample,
                input_signature=[
                    tf.TensorSpec(None, tf.int32, name="label"),
                    tf.TensorSpec(None, tf.int64, name="seed"),
                    tf.TensorSpec(None, tf.float32, name="truncation"),
                ],
            ),
            label_for_name=tf.function(
                label_for_name,
                input_signature=[tf.TensorSpec(None, tf.string, name="class_name")],
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
    """Sorted `(op type, node name)` of Python ops in the `serve` graph and its functions.

    The C++ model server cannot run them (`PYTHON_OPS`), so an export holding one would
    load in Python but not in TF Serving. Empty for a servable `saved_model_dir`.
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
    """`(model_pb2, predict_pb2, prediction_log_pb2)` from `tensorflow-serving-api`.

    Raises:
      ExportError: the package is not installed (the message says how to get it).
    """
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


def check_serving_protos():
    """Raises `ExportError` now, before any slow work, if warmup requests cannot be written."""
    _serving_protos()


def warmup_requests(model_name, dim_z, class_name):
    """`PredictionLog`s exercising each signature once, with batch 1.

    Args:
      model_name: the served model name the requests address.
      dim_z: the generator's latent width (`serving_default`'s `z`).
      class_name: a valid class name (`label_for_name` rejects unknown ones).

    Returns:
      One `PredictionLog` per signature, in `ServingModule` order.

    Raises:
      ExportError: `tensorflow-serving-api` is not installed.
    """
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
    """Writes `export_root/models.config` listing every model with a version.

    A text-format `ModelServerConfig`, one `config` per model, sorted by name. It is
    written to a temporary file and renamed, so a server re-reading it never sees half.

    Args:
      export_root: the directory holding one sub-directory per model name.
      base_path_prefix: when given, each `base_path` is `base_path_prefix/NAME` (e.g.
        "/models", where the server container mounts export_root, or a path relative to
        the server's working directory); else the model directory's absolute path.

    Returns:
      The path of `models.config`.
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


# ---- Saving --------------------------------------------------------------------------


def save_generator(
    generator,
    version_dir,
    class_names,
    truncation,
    model_name=None,
    warmup=True,
    max_batch=DEFAULT_MAX_BATCH,
):
    """Writes `generator` (standing statistics already set) as a SavedModel at `version_dir`.

    Args:
      generator: a `biggan.Generator`.
      version_dir: the directory to create; it must not exist.
      class_names: K unique names without newlines, line i of the asset naming label i.
      truncation: what the statistics were accumulated at (recorded as `truncation`).
      model_name: the served model name put in the warmup requests.
      warmup: also write `assets.extra/tf_serving_warmup_requests`.
      max_batch: the largest batch a request may send (larger ones: INVALID_ARGUMENT).

    Returns:
      `version_dir`.

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
    if warmup:  # before the slow save: fails fast without the serving protos
        logs = warmup_requests(model_name or "generator", generator.dim_z, class_names[0])
    with tempfile.TemporaryDirectory() as scratch:
        names_path = os.path.join(scratch, CLASS_NAMES_FILE)
        with open(names_path, "w") as f:
            f.write("\n".join(class_names) + "\n")
        if max_batch < 1:
            raise ExportError(f"max_batch must be >= 1, got {max_batch}.")
        module = ServingModule(generator, names_path, truncation, max_batch)
        tf.saved_model.save(module, version_dir, signatures=module.signatures())
    found = python_ops(version_dir)
    if found:
        raise ExportError(f"The export has Python ops the model server cannot run: {found}")
    if logs:
        write_warmup(version_dir, logs)
    return version_dir
