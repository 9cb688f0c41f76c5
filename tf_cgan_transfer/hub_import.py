"""Import DeepMind's TF-Hub BigGAN generators (`deepmind/biggan-{128,256,512}/2`).

The module is named by a directory, a tfhub.dev handle or its Kaggle Models twin
(`deepmind/biggan/tensorFlow1/128/2`), all resolved by `tfhub.resolve`.

The module's `variables/variables` checkpoint is read by key (docs/tfhub_layout.md §2):
EMA weights (`<key>/ema_b999900`, falling back to the bare key), the spectral-norm
vectors `u0` and the standing BN statistics (used as stored, never divided by the
counter, so outputs equal the hub's at truncation 1.0). The architecture is inferred
from the shapes. Every problem (missing key, wrong shape) is collected and reported in
one `HubImportError` before any variable is assigned.
"""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import errors
from tf_cgan_transfer import tfhub

EMA_SUFFIX = "ema_b999900"
# The resolution in the name of DeepMind's handles: deepmind/biggan-256/2 on tfhub.dev,
# deepmind/biggan/tensorFlow1/256/2 on Kaggle Models (`tfhub.url_of` spellings).
_HANDLE_RESOLUTION = re.compile(
    r"(/biggan-(128|256|512)|/deepmind/biggan/tensorFlow1/(128|256|512))/\d+$"
)
_BLOCK_KEY = re.compile(r"^Generator/(GBlock(?:_(\d+))?)/conv0/w(?:/.*)?$")


class HubImportError(errors.UserError, ValueError):
    """The handle or module cannot be imported; the message says why and what to do."""


@dataclasses.dataclass
class ImportReport:
    """What an import read: module path, inferred config, and the keys used/ignored."""

    module_path: str
    config: dict
    loaded_keys: list
    ignored_keys: list


def resolve_module(handle):
    """Returns a local module directory for a TF-Hub handle or a local path.

    Accepts a directory, a `https://tfhub.dev/...` URL, a short handle such as
    `deepmind/biggan-128/2`, or a Kaggle Models handle or URL such as
    `deepmind/biggan/tensorFlow1/128/2` (through the TF-Hub cache, or `kagglehub` when it
    is installed; see `tfhub.resolve`).
    """
    path, _ = tfhub.resolve(
        handle,
        "TF-Hub module",
        "the handle (--source, --module)",
        "deepmind/biggan-128/2 or deepmind/biggan/tensorFlow1/128/2",
        error=HubImportError,
    )
    index = os.path.join(path, "variables", "variables.index")
    if not tf.io.gfile.exists(index):
        raise HubImportError(
            f"{path} is not a TF-Hub module directory: {index} is missing. Expected an "
            "unpacked module (tfhub_module.pb, saved_model.pb, variables/)."
        )
    return path


def read_shapes(path):
    """`(checkpoint reader, {key: shape})` of a resolved module directory."""
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    return reader, reader.get_variable_to_shape_map()


def resolution_without_download(handle):
    """A module's resolution from a local directory's shapes or a known handle's name;
    None when neither tells (nothing is fetched)."""
    handle = str(handle)
    if tf.io.gfile.isdir(handle):
        return infer_config(read_shapes(resolve_module(handle))[1])["resolution"]
    try:
        url = tfhub.url_of(handle)
    except tfhub.HandleError:
        return None  # a malformed Kaggle handle: loading it says why
    match = _HANDLE_RESOLUTION.search(url)
    return int(match.group(2) or match.group(3)) if match else None


def _lookup(shapes, key, ema):
    """The stored key for `key`: the EMA twin when `ema` and present, else the bare key."""
    if ema and f"{key}/{EMA_SUFFIX}" in shapes:
        return f"{key}/{EMA_SUFFIX}"
    return key if key in shapes else None


def infer_config(shapes):
    """Generator constructor arguments from a module's `{key: shape}` map."""

    def shape(key):
        stored = _lookup(shapes, key, ema=True)
        if stored is None:
            raise HubImportError(
                f"Not a BigGAN generator module: key {key!r} is missing "
                f"(found {len(shapes)} keys, e.g. {sorted(shapes)[:5]})."
            )
        return list(shapes[stored])

    if any(k.startswith("Generator/GenZ/") for k in shapes):
        raise HubImportError(
            "This is a BigGAN-deep module (Generator/GenZ/...); only the original "
            "biggan-{128,256,512}/2 modules are supported."
        )
    num_classes, shared_dim = shape("linear/w")
    z_chunk, linear_width = shape("Generator/G_Z/G_linear/w")
    ch = shape("Generator/conv_2d/w")[2]
    block_ids = {int(m.group(2) or 0) for m in map(_BLOCK_KEY.match, shapes) if m}
    num_blocks = len(block_ids)
    resolution = 4 * 2**num_blocks
    if block_ids != set(range(num_blocks)) or resolution not in biggan.G_CHANNELS:
        raise HubImportError(
            f"Found generator blocks {sorted(block_ids)}: not a BigGAN layout for any of "
            f"the resolutions {biggan.RESOLUTIONS}."
        )
    multipliers = biggan.G_CHANNELS[resolution]
    if linear_width != 16 * ch * multipliers[0]:
        raise HubImportError(
            f"Generator/G_Z/G_linear/w has {linear_width} outputs; a {resolution}x{resolution} "
            f"BigGAN with ch={ch} (from conv_2d) needs {16 * ch * multipliers[0]}."
        )
    attention_resolution = 0
    if _lookup(shapes, "Generator/attention/theta/w", ema=True):
        width = shape("Generator/attention/theta/w")[2]
        candidates = [8 * 2**i for i in range(num_blocks) if ch * multipliers[i + 1] == width]
        default = biggan.DEFAULT_ATTENTION[resolution]
        if not candidates:
            raise HubImportError(
                f"Attention width {width} matches no generator block (ch={ch}, {resolution})."
            )
        attention_resolution = default if default in candidates else candidates[0]
    return dict(
        resolution=resolution,
        ch=ch,
        num_classes=num_classes,
        dim_z=z_chunk * (num_blocks + 1),
        shared_dim=shared_dim,
        hierarchical_z=True,
        attention_resolution=attention_resolution,
    )


def _sn_entries(layer, scope, bias=True):
    entries = [(layer.kernel, f"{scope}/w", True), (layer.u, f"{scope}/u0", False)]
    if bias:
        entries.append((layer.bias, f"{scope}/b", True))
    return entries


def _stat_entries(bn, scope):
    return [
        (bn.accumulated_mean, f"{scope}/accumulated_mean", False),
        (bn.accumulated_var, f"{scope}/accumulated_var", False),
        (bn.accumulation_counter, f"{scope}/accumulation_counter", False),
    ]


def variable_table(generator):
    """`[(variable, hub key without suffix, reads the EMA twin)]` for every G variable."""
    table = [(generator.linear.kernel, "linear/w", True)]
    table += _sn_entries(generator.G_linear, "Generator/G_Z/G_linear")
    for i, block in enumerate(generator.blocks):
        scope = f"Generator/{biggan.block_name('GBlock', i)}"
        for name in ("conv0", "conv1", "conv_sc"):
            table += _sn_entries(getattr(block, name), f"{scope}/{name}")
        for bn_name, stats_name in (
            ("HyperBN", "CrossReplicaBN"),
            ("HyperBN_1", "CrossReplicaBN_1"),
        ):
            cbn = getattr(block, bn_name)
            table += _sn_entries(cbn.gamma, f"{scope}/{bn_name}/gamma", bias=False)
            table += _sn_entries(cbn.beta, f"{scope}/{bn_name}/beta", bias=False)
            table += _stat_entries(cbn.bn, f"{scope}/{stats_name}")
    if generator.attention is not None:
        for name in ("theta", "phi", "g", "o_conv"):
            table += _sn_entries(
                getattr(generator.attention, name), f"Generator/attention/{name}", bias=False
            )
        table.append((generator.attention.gamma, "Generator/attention/gamma", True))
    final = generator.ScaledCrossReplicaBN
    table += [
        (final.gamma, "Generator/ScaledCrossReplicaBN/gamma", True),
        (final.beta, "Generator/ScaledCrossReplicaBN/beta", True),
    ]
    table += _stat_entries(final, "Generator/ScaledCrossReplicaBNbn")
    table += _sn_entries(generator.conv_2d, "Generator/conv_2d")
    return table


def _read_values(reader, shapes, table):
    """Reads and reshapes every table entry; raises one error listing every problem."""
    values, problems = [], []
    for variable, key, ema in table:
        stored = _lookup(shapes, key, ema)
        expected = variable.shape.as_list()
        if stored is None:
            wanted = f"{key}/{EMA_SUFFIX} (or {key})" if ema else key
            problems.append(f"missing key {wanted}: expected shape {expected}")
            continue
        found = list(shapes[stored])
        # The hub stores some vectors with extra unit axes ([1,1,1,C] final-BN gains,
        # [1] attention gamma, [1,out] u0): reshape when the element count agrees.
        if int(np.prod(found)) != int(np.prod(expected)):
            problems.append(f"key {stored}: expected shape {expected}, found {found}")
            continue
        values.append((variable, stored, reader.get_tensor(stored).astype(np.float32)))
    if problems:
        raise HubImportError(
            f"The module does not fit a BigGAN generator ({len(problems)} problem(s)):\n  "
            + "\n  ".join(problems)
        )
    return values


def load_generator(handle):
    """Builds a `biggan.Generator` from a TF-Hub BigGAN module and loads its weights.

    Args:
      handle: module directory, `https://tfhub.dev/deepmind/biggan-128/2`-style URL,
        short handle `deepmind/biggan-128/2`, or Kaggle Models handle or URL
        (`deepmind/biggan/tensorFlow1/128/2`); see `resolve_module`.

    Returns:
      `(generator, ImportReport)`. The generator reproduces the module's output at
      truncation 1.0 (the checkpoint's statistics are the truncation-1.0 ones; use
      `biggan.accumulate_standing_stats` for other truncations).
    """
    path = resolve_module(handle)
    reader, shapes = read_shapes(path)
    config = infer_config(shapes)
    generator = biggan.Generator(**config).build_weights()
    values = _read_values(reader, shapes, variable_table(generator))
    for variable, _, value in values:
        variable.assign(value.reshape(variable.shape))
    loaded = sorted(stored for _, stored, _ in values)
    ignored = sorted(set(shapes) - set(loaded))
    return generator, ImportReport(path, config, loaded, ignored)
