"""Import DeepMind's TF-Hub BigGAN generators: `deepmind/biggan-{128,256,512}/2` and
BigGAN-deep's `deepmind/biggan-deep-{128,256,512}/1` (`biggan_deep.DeepGenerator`).

The module is named by a directory, a tfhub.dev handle or its Kaggle Models twin
(`deepmind/biggan/tensorFlow1/128/2`), all resolved by `tfhub.resolve`.

The module's `variables/variables` checkpoint is read by key (docs/tfhub_layout.md §2,
§5.3); the family is told by its keys (`Generator/GenZ/...`: deep). EMA weights
(`<key>/ema_b999900`, deep `<key>/ema_0.9999`, falling back to the bare key), the spectral-norm
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
from tf_cgan_transfer import biggan_deep
from tf_cgan_transfer import errors
from tf_cgan_transfer import tfhub

EMA_SUFFIX = "ema_b999900"
# The EMA suffix of each family's checkpoint keys.
EMA_SUFFIXES = {"biggan": EMA_SUFFIX, "biggan_deep": "ema_0.9999"}
# The resolution in the name of DeepMind's handles: deepmind/biggan-256/2 (and
# biggan-deep-256/1) on tfhub.dev, deepmind/biggan/tensorFlow1/256/2 (biggan-deep/...)
# on Kaggle Models (`tfhub.url_of` spellings).
_HANDLE_RESOLUTION = re.compile(
    r"(/biggan(?:-deep)?-(128|256|512)|/deepmind/biggan(?:-deep)?/tensorFlow1/(128|256|512))/\d+$"
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


def family_of(shapes):
    """"biggan_deep" when the module's keys are BigGAN-deep's (`Generator/GenZ/...`)."""
    return "biggan_deep" if any(k.startswith("Generator/GenZ/") for k in shapes) else "biggan"


def _lookup(shapes, key, ema, suffix=EMA_SUFFIX):
    """The stored key for `key`: the EMA twin when `ema` and present, else the bare key."""
    if ema and f"{key}/{suffix}" in shapes:
        return f"{key}/{suffix}"
    return key if key in shapes else None


def _shape_reader(shapes, suffix):
    def shape(key):
        stored = _lookup(shapes, key, ema=True, suffix=suffix)
        if stored is None:
            raise HubImportError(
                f"Not a BigGAN generator module: key {key!r} is missing "
                f"(found {len(shapes)} keys, e.g. {sorted(shapes)[:5]})."
            )
        return list(shapes[stored])

    return shape


def _attention_resolution(shape, shapes, suffix, widths, resolutions, default):
    """Where attention sits: the block resolution whose width is attention's (0: none)."""
    if not _lookup(shapes, "Generator/attention/theta/w", ema=True, suffix=suffix):
        return 0
    width = shape("Generator/attention/theta/w")[2]
    candidates = [r for r, w in zip(resolutions, widths) if w == width]
    if not candidates:
        raise HubImportError(f"Attention width {width} matches no generator block {widths}.")
    return default if default in candidates else candidates[0]


def _block_ids(shapes):
    """The indices of the module's `GBlock*` scopes."""
    return {int(m.group(2) or 0) for m in map(_BLOCK_KEY.match, shapes) if m}


def _infer_deep_config(shapes):
    """DeepGenerator arguments from a biggan-deep module's shapes (layout doc §5.3)."""
    shape = _shape_reader(shapes, EMA_SUFFIXES["biggan_deep"])
    num_classes, shared_dim = shape("linear/w")
    cond_dim, linear_width = shape("Generator/GenZ/G_linear/w")
    ch = shape("Generator/conv_to_rgb/w")[2]  # the last block's width, ch x 1 in the hub
    by_blocks = {len(m) - 1: r for r, m in biggan_deep.DEEP_G_CHANNELS.items()}
    block_ids = _block_ids(shapes)
    num_blocks = len(block_ids)
    if block_ids != set(range(num_blocks)) or num_blocks not in by_blocks:
        raise HubImportError(
            f"Found generator blocks {sorted(block_ids)}: not a BigGAN-deep layout for any "
            f"of the resolutions {tuple(sorted(biggan_deep.DEEP_G_CHANNELS))}."
        )
    resolution = by_blocks[num_blocks]
    multipliers = biggan_deep.DEEP_G_CHANNELS[resolution]
    ch //= multipliers[-1]
    if linear_width != 16 * ch * multipliers[0]:
        raise HubImportError(
            f"Generator/GenZ/G_linear/w has {linear_width} outputs; a {resolution}x{resolution} "
            f"BigGAN-deep with ch={ch} (from conv_to_rgb) needs {16 * ch * multipliers[0]}."
        )
    attention_resolution = _attention_resolution(
        shape,
        shapes,
        EMA_SUFFIXES["biggan_deep"],
        [ch * m for m in multipliers[1:]],
        biggan_deep.DeepGenerator.block_resolutions(resolution),
        biggan_deep.DEEP_ATTENTION[resolution],
    )
    return dict(
        family="biggan_deep",
        resolution=resolution,
        ch=ch,
        num_classes=num_classes,
        dim_z=cond_dim - shared_dim,
        shared_dim=shared_dim,
        hierarchical_z=False,
        attention_resolution=attention_resolution,
    )


def infer_config(shapes):
    """Generator config (`biggan.Generator.from_config`) from a module's `{key: shape}`
    map; BigGAN-deep's carries `family="biggan_deep"`."""
    if family_of(shapes) == "biggan_deep":
        return _infer_deep_config(shapes)
    shape = _shape_reader(shapes, EMA_SUFFIX)
    num_classes, shared_dim = shape("linear/w")
    z_chunk, linear_width = shape("Generator/G_Z/G_linear/w")
    ch = shape("Generator/conv_2d/w")[2]
    block_ids = _block_ids(shapes)
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
    attention_resolution = _attention_resolution(
        shape,
        shapes,
        EMA_SUFFIX,
        [ch * m for m in multipliers[1:]],
        [8 * 2**i for i in range(num_blocks)],
        biggan.DEFAULT_ATTENTION[resolution],
    )
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


def _attention_entries(attention):
    table = []
    for name in ("theta", "phi", "g", "o_conv"):
        table += _sn_entries(getattr(attention, name), f"Generator/attention/{name}", bias=False)
    return table + [(attention.gamma, "Generator/attention/gamma", True)]


def _deep_variable_table(generator):
    """`variable_table` of a `biggan_deep.DeepGenerator` (docs/tfhub_layout.md §5.3).

    The BN statistics are read from the scope of the BN's scale/offset
    (`.../BatchNorm_2/accumulated_mean`): the layout's best guess, unverified.
    """
    table = [(generator.linear.kernel, "linear/w", True)]
    table += _sn_entries(generator.G_linear, "Generator/GenZ/G_linear")
    for i, block in enumerate(generator.blocks):
        scope = f"Generator/{biggan.block_name('GBlock', i)}"
        for j, conv in enumerate(block.convs()):
            table += _sn_entries(conv, f"{scope}/conv{j}")
        for name, cbn in zip(block.BN_NAMES, block.batch_norms()):
            table += _sn_entries(cbn.gamma, f"{scope}/{name}/scale", bias=False)
            table += _sn_entries(cbn.beta, f"{scope}/{name}/offset", bias=False)
            table += _stat_entries(cbn.bn, f"{scope}/{name}")
    if generator.attention is not None:
        table += _attention_entries(generator.attention)
    final = generator.BatchNorm
    table += [
        (final.gamma, "Generator/BatchNorm/scale", True),
        (final.beta, "Generator/BatchNorm/offset", True),
    ]
    table += _stat_entries(final, "Generator/BatchNorm")
    table += _sn_entries(generator.conv_to_rgb, "Generator/conv_to_rgb")
    return table


def variable_table(generator):
    """`[(variable, hub key without suffix, reads the EMA twin)]` for every G variable."""
    if generator.family == "biggan_deep":
        return _deep_variable_table(generator)
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
        table += _attention_entries(generator.attention)
    final = generator.ScaledCrossReplicaBN
    table += [
        (final.gamma, "Generator/ScaledCrossReplicaBN/gamma", True),
        (final.beta, "Generator/ScaledCrossReplicaBN/beta", True),
    ]
    table += _stat_entries(final, "Generator/ScaledCrossReplicaBNbn")
    table += _sn_entries(generator.conv_2d, "Generator/conv_2d")
    return table


def _read_values(reader, shapes, table, suffix=EMA_SUFFIX):
    """Reads and reshapes every table entry; raises one error listing every problem."""
    values, problems = [], []
    for variable, key, ema in table:
        stored = _lookup(shapes, key, ema, suffix)
        expected = variable.shape.as_list()
        if stored is None:
            wanted = f"{key}/{suffix} (or {key})" if ema else key
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
    """Builds a generator from a TF-Hub BigGAN or BigGAN-deep module and loads its weights.

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
    generator = biggan.Generator.from_config(config).build_weights()
    suffix = EMA_SUFFIXES[generator.family]
    values = _read_values(reader, shapes, variable_table(generator), suffix)
    for variable, _, value in values:
        variable.assign(value.reshape(variable.shape))
    loaded = sorted(stored for _, stored, _ in values)
    ignored = sorted(set(shapes) - set(loaded))
    return generator, ImportReport(path, config, loaded, ignored)
