"""Import BigGAN-PyTorch checkpoints (G.pth, D.pth, G_ema.pth) into our Generator and D.

docs/pytorch_layout.md is the map. The architecture is inferred from the state_dict's
keys and shapes; the models get the author's conventions (`CONVENTIONS`: BN eps 1e-5,
spectral norm x / max(|x|, 1e-6), the projection embedding's SN vector over the classes)
so that, in inference, they compute what the author's code computes in eval mode: one
power step from the stored `u0` (never the logged `sv0`), the stored running statistics.
Every tensor is moved to our NHWC/HWIO layout by the rule of its kind (`TRANSFORMS`);
every problem (missing key, wrong shape) is collected into one error before any variable
is assigned, and the keys not used are reported.
"""

import dataclasses
import re

import numpy as np

from tf_cgan_transfer import biggan
from tf_cgan_transfer import discriminator as discriminator_lib
from tf_cgan_transfer import pytorch_checkpoint
from tf_cgan_transfer.pytorch_checkpoint import PytorchImportError

# What the author's code computes with (docs/pytorch_layout.md §1, §5.1, §5.4, §5.10).
CONVENTIONS = dict(sn_epsilon=1e-6, sn_norm_style="clamp")
G_CONVENTIONS = dict(bn_epsilon=1e-5, final_bn_epsilon=1e-5, **CONVENTIONS)
D_CONVENTIONS = dict(embedding_u_side="input", **CONVENTIONS)
# BigGAN-PyTorch's D output multipliers (its D_arch); only 64 px differs from ours.
SOURCE_D_MULTIPLIERS = {
    32: (4, 4, 4, 4),
    64: (1, 2, 4, 8, 16),
    128: (1, 2, 4, 8, 16, 16),
    256: (1, 2, 4, 8, 8, 16, 16),
}
_G_BLOCK = re.compile(r"^blocks\.(\d+)\.0\.conv1\.weight$")
_ATTENTION = re.compile(r"^blocks\.(\d+)\.1\.gamma$")


@dataclasses.dataclass
class ImportReport:
    """What one import read: the file, the inferred config, and the keys used/ignored."""

    path: str
    config: dict
    loaded_keys: list
    ignored_keys: list


def _conv(w):  # [O, I, kh, kw] -> HWIO
    return np.transpose(w, (2, 3, 1, 0))


def _first_linear(w):  # [C*4*4 (C, H, W order), z] -> [z, 4*4*C (H, W, C order)]
    return np.transpose(w.reshape(-1, 4, 4, w.shape[1]), (1, 2, 0, 3)).reshape(-1, w.shape[1]).T


def _first_linear_vector(v):  # bias [C*16] or u0 [1, C*16], (C, H, W) -> (H, W, C)
    return np.transpose(v.reshape(-1, 4, 4), (1, 2, 0)).reshape(v.shape)


def _hyper_bn(w, shared_dim):  # [C, emb + z] -> [z + emb, C]: our rows are z first
    return np.concatenate([w[:, shared_dim:], w[:, :shared_dim]], axis=1).T


# kind -> (the stored shape a variable of shape `s` needs, stored array -> variable value).
# Module-level so each rule is one place (the tests break them one at a time).
TRANSFORMS = {
    "as_is": (lambda s: s, lambda w, **_: w),
    "conv": (lambda s: [s[3], s[2], s[0], s[1]], lambda w, **_: _conv(w)),
    "dense": (lambda s: s[::-1], lambda w, **_: w.T),
    "first_linear": (lambda s: s[::-1], lambda w, **_: _first_linear(w)),
    "first_linear_vector": (lambda s: s, lambda w, **_: _first_linear_vector(w)),
    "first_linear_u": (lambda s: s, lambda w, **_: _first_linear_vector(w)),
    "sn_u": (lambda s: s, lambda w, **_: w),  # u0 [1, out] is our u as is
    "hyper_bn": (lambda s: s[::-1], lambda w, shared_dim: _hyper_bn(w, shared_dim)),
}


def _shape(state, key, what):
    if key not in state:
        raise PytorchImportError(
            f"Not a BigGAN-PyTorch {what} state_dict: key {key!r} is missing "
            f"(found {len(state)} keys, e.g. {sorted(state)[:5]})."
        )
    return list(state[key].shape)


def _indices(state, pattern):
    return sorted(int(m.group(1)) for m in map(pattern.match, state) if m)


def _attention_index(state, num_blocks, what):
    found = _indices(state, _ATTENTION)
    if len(found) > 1:
        raise PytorchImportError(
            f"The {what} has attention after blocks {found}; our models take one attention "
            "layer (BigGAN-PyTorch's 32-px D with D_attn=16 is not supported)."
        )
    if found and found[0] >= num_blocks:
        raise PytorchImportError(f"Attention after block {found[0]} of {num_blocks} blocks.")
    return found[0] if found else None


def infer_generator_config(state):
    """`biggan.Generator` arguments (with `G_CONVENTIONS`) from a G state_dict."""
    if "embed.weight" in state and "shared.weight" not in state:
        raise PytorchImportError(
            "This is a discriminator state_dict (embed.weight, no shared.weight): pass G.pth "
            "or G_ema.pth as the generator."
        )
    num_classes, shared_dim = _shape(state, "shared.weight", "generator")
    linear_out, z0 = _shape(state, "linear.weight", "generator")
    out_width = _shape(state, "output_layer.2.weight", "generator")[1]
    blocks = _indices(state, _G_BLOCK)
    resolution = 4 * 2 ** len(blocks)
    if blocks != list(range(len(blocks))) or resolution not in biggan.G_CHANNELS:
        raise PytorchImportError(
            f"Found generator blocks {blocks}: not a BigGAN layout for any of the "
            f"resolutions {biggan.RESOLUTIONS}."
        )
    multipliers = biggan.G_CHANNELS[resolution]
    ch = out_width // multipliers[-1]
    if linear_out != 16 * ch * multipliers[0]:
        raise PytorchImportError(
            f"linear.weight has {linear_out} outputs; a {resolution}x{resolution} BigGAN with "
            f"ch={ch} (from output_layer.2) needs {16 * ch * multipliers[0]}."
        )
    cond_width = _shape(state, "blocks.0.0.bn1.gain.weight", "generator")[1]
    z_chunk = cond_width - shared_dim
    hierarchical = z_chunk > 0
    if hierarchical and z0 != z_chunk:
        raise PytorchImportError(
            f"linear.weight takes {z0} latents but the BN projections {z_chunk} "
            f"({cond_width} - shared_dim {shared_dim}): not BigGAN's hierarchical z."
        )
    attention = _attention_index(state, len(blocks), "generator")
    return dict(
        resolution=resolution,
        ch=ch,
        num_classes=num_classes,
        # dim_z is what the chunks hold: the author rounds it down (256 px: 120 -> 7 x 17).
        dim_z=z0 * (len(blocks) + 1) if hierarchical else z0,
        shared_dim=shared_dim,
        hierarchical_z=hierarchical,
        attention_resolution=8 * 2**attention if attention is not None else 0,
        **G_CONVENTIONS,
    )


def infer_discriminator_config(state):
    """`discriminator.Discriminator` arguments (with `D_CONVENTIONS`) from a D state_dict."""
    if "shared.weight" in state:
        raise PytorchImportError(
            "This is a generator state_dict (shared.weight): pass D.pth as the discriminator."
        )
    num_classes, _ = _shape(state, "embed.weight", "discriminator")
    blocks = _indices(state, _G_BLOCK)
    by_count = {len(m): r for r, m in SOURCE_D_MULTIPLIERS.items()}
    if blocks != list(range(len(blocks))) or len(blocks) not in by_count:
        raise PytorchImportError(
            f"Found discriminator blocks {blocks}: not a BigGAN-PyTorch D of any of the "
            f"resolutions {sorted(SOURCE_D_MULTIPLIERS)}."
        )
    resolution = by_count[len(blocks)]
    widths = [_shape(state, f"blocks.{i}.0.conv1.weight", "discriminator")[0] for i in blocks]
    ch = widths[0] // SOURCE_D_MULTIPLIERS[resolution][0]
    multipliers = tuple(w // ch for w in widths)
    if ch < 1 or any(w != ch * m for w, m in zip(widths, multipliers)):
        raise PytorchImportError(f"Discriminator block widths {widths} are no multiples of one ch.")
    attention = _attention_index(state, len(blocks), "discriminator")
    attention_resolution = 0
    if attention is not None:
        size = resolution
        for down in discriminator_lib.D_CHANNELS[resolution][1][: attention + 1]:
            size = size // 2 if down else size
        attention_resolution = size
    ours = discriminator_lib.D_CHANNELS[resolution][0]
    return dict(
        resolution=resolution,
        ch=ch,
        num_classes=num_classes,
        attention_resolution=attention_resolution,
        channel_multipliers=None if multipliers == ours else multipliers,
        **D_CONVENTIONS,
    )


def _sn(layer, key, kernel_kind, bias=True, u_kind="sn_u"):
    entries = [(layer.kernel, f"{key}.weight", kernel_kind), (layer.u, f"{key}.u0", u_kind)]
    if bias:
        entries.append((layer.bias, f"{key}.bias", "as_is"))
    return entries


def _attention(attention, key):
    table = [(attention.gamma, f"{key}.gamma", "as_is")]
    for ours, theirs in (("theta", "theta"), ("phi", "phi"), ("g", "g"), ("o_conv", "o")):
        table += _sn(getattr(attention, ours), f"{key}.{theirs}", "conv", bias=False)
    return table


def _stats(bn, key):
    return [
        (bn.accumulated_mean, f"{key}.stored_mean", "as_is"),
        (bn.accumulated_var, f"{key}.stored_var", "as_is"),
    ]


def generator_table(generator):
    """`[(variable, state_dict key, TRANSFORMS kind)]` for every variable of a G."""
    table = [(generator.linear.kernel, "shared.weight", "as_is")]
    linear = generator.G_linear
    table += [
        (linear.kernel, "linear.weight", "first_linear"),
        (linear.bias, "linear.bias", "first_linear_vector"),
        (linear.u, "linear.u0", "first_linear_u"),  # permuted with the kernel (§5.6)
    ]
    for i, block in enumerate(generator.blocks):
        key = f"blocks.{i}.0"
        for ours, theirs in (("conv0", "conv1"), ("conv1", "conv2"), ("conv_sc", "conv_sc")):
            table += _sn(getattr(block, ours), f"{key}.{theirs}", "conv")
        for ours, theirs in (("HyperBN", "bn1"), ("HyperBN_1", "bn2")):
            cbn = getattr(block, ours)
            kind = "hyper_bn" if generator.hierarchical_z else "dense"
            table += _sn(cbn.gamma, f"{key}.{theirs}.gain", kind, bias=False)
            table += _sn(cbn.beta, f"{key}.{theirs}.bias", kind, bias=False)
            table += _stats(cbn.bn, f"{key}.{theirs}")
    if generator.attention is not None:
        table += _attention(generator.attention, f"blocks.{generator.attention_index}.1")
    final = generator.ScaledCrossReplicaBN
    table += [
        (final.gamma, "output_layer.0.gain", "as_is"),
        (final.beta, "output_layer.0.bias", "as_is"),
    ]
    table += _stats(final, "output_layer.0")
    table += _sn(generator.conv_2d, "output_layer.2", "conv")
    return table


def discriminator_table(discriminator):
    """`[(variable, state_dict key, TRANSFORMS kind)]` for every variable of a D."""
    table = []
    for i, block in enumerate(discriminator.blocks):
        for name in ("conv1", "conv2", "conv_sc"):
            if getattr(block, name) is not None:
                table += _sn(getattr(block, name), f"blocks.{i}.0.{name}", "conv")
    if discriminator.attention is not None:
        table += _attention(discriminator.attention, f"blocks.{discriminator.attention_index}.1")
    table += _sn(discriminator.linear, "linear", "dense")
    # [classes, C] is our one-hot Dense kernel as is; u0 [1, classes] fits u_side="input".
    table += _sn(discriminator.embedding, "embed", "as_is", bias=False)
    return table


def _read(state, table, what, path, **transform_args):
    """`[(variable, key, value)]` for every table entry, or one error listing every problem."""
    values, problems = [], []
    for variable, key, kind in table:
        stored_shape, to_ours = TRANSFORMS[kind]
        expected = stored_shape(variable.shape.as_list())
        if key not in state:
            problems.append(f"missing key {key}: expected shape {expected}")
        elif list(state[key].shape) != expected:
            problems.append(f"key {key}: expected shape {expected}, found {list(state[key].shape)}")
        else:
            value = to_ours(state[key], **transform_args)
            values.append((variable, key, np.reshape(value, variable.shape)))
    if problems:
        raise PytorchImportError(
            f"{path} does not fit a BigGAN-PyTorch {what} ({len(problems)} problem(s)):\n  "
            + "\n  ".join(problems)
        )
    return values


def import_state_dict(model, state, path="<state_dict>"):
    """Assigns a G/G_ema (to a `biggan.Generator`) or D (to a `Discriminator`) state_dict.

    `model` is built and has the checkpoint's architecture (e.g. from `infer_*_config`).
    Nothing is assigned unless every variable's key is present with the right shape.
    Returns the `ImportReport`.
    """
    if isinstance(model, biggan.Generator):
        what, table = "generator", generator_table(model)
        for bn in model.standing_batch_norms():
            # The stored statistics are running means: used as they are (no counter).
            bn.accumulation_counter.assign(1.0)
    else:
        what, table = "discriminator", discriminator_table(model)
    shared_dim = getattr(model, "shared_dim", 0)
    values = _read(state, table, what, path, shared_dim=shared_dim)
    for variable, _, value in values:
        variable.assign(value)
    loaded = sorted(key for _, key, _ in values)
    # sv0 (the logged sigma) and any extra buffers are never read.
    return ImportReport(path, model.get_config(), loaded, sorted(set(state) - set(loaded)))


def generator_from_state_dict(state, path="<state_dict>"):
    """`(biggan.Generator, ImportReport)` from a G or G_ema state_dict `{key: array}`."""
    generator = biggan.Generator(**infer_generator_config(state)).build_weights()
    return generator, import_state_dict(generator, state, path)


def discriminator_from_state_dict(state, path="<state_dict>"):
    """`(discriminator.Discriminator, ImportReport)` from a D state_dict `{key: array}`."""
    config = infer_discriminator_config(state)
    discriminator = discriminator_lib.Discriminator(**config).build_weights()
    return discriminator, import_state_dict(discriminator, state, path)


def load_generator(path):
    """`(Generator, ImportReport)` of a `G*.pth`/`G_ema*.pth` file."""
    return generator_from_state_dict(pytorch_checkpoint.read_state_dict(path), path)


def load_discriminator(path):
    """`(Discriminator, ImportReport)` of a `D*.pth` file."""
    return discriminator_from_state_dict(pytorch_checkpoint.read_state_dict(path), path)


def load_models(path, ema=False, suffix=None, with_discriminator=True):
    """`(generator, discriminator or None, [ImportReport])` of a BigGAN-PyTorch save.

    Args:
      path: a weights directory (`G.pth`, `D.pth`, `G_ema.pth`, optionally suffixed) or
        one generator file; see `pytorch_checkpoint.find_files`.
      ema: the generator from `G_ema` (the author's samples) instead of `G` (what the
        paper transfers from).
      suffix: which save of the directory (`copy0`, `best1`, ...); None = the latest.
      with_discriminator: also import `D` when the save has one.
    """
    files = pytorch_checkpoint.find_files(path, ema=ema, suffix=suffix)
    generator, g_report = load_generator(files.generator)
    reports, discriminator = [g_report], None
    if with_discriminator and files.discriminator:
        discriminator, d_report = load_discriminator(files.discriminator)
        reports.append(d_report)
    return generator, discriminator, reports


def resolution_of(path):
    """The generator resolution of a weights directory or file (reads its G or G_ema)."""
    try:
        files = pytorch_checkpoint.find_files(path)
    except PytorchImportError:
        files = pytorch_checkpoint.find_files(path, ema=True)
    state = pytorch_checkpoint.read_state_dict(files.generator)
    return infer_generator_config(state)["resolution"]
