"""Finding and reading the weight files of a BigGAN-PyTorch run (docs/pytorch_layout.md §1).

A run's weights directory holds `G[_sfx].pth`, `D[_sfx].pth` and, with EMA,
`G_ema[_sfx].pth`, where the optional suffix names a rotating copy (`copy0`, `best3`,
...). Each is a `torch.save`d state_dict: an ordered map of parameter and buffer names to
tensors, in either of torch's containers (the zip one since torch 1.6, or the legacy
one of the released checkpoint's torch 1.0); `torch.load` reads both. torch is imported
only here and only when a file is read, so the rest of the project runs without it.
"""

import dataclasses
import os
import re
from typing import Optional

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import errors

EXTENSION = ".pth"
# The stems a weights directory is recognised by, and what each file holds.
STEMS = ("G", "D", "G_ema")
_NAME = re.compile(r"^(G|D|G_ema)(?:_((?:copy|best)\d+))?\.pth$")


class PytorchImportError(errors.UserError, ValueError):
    """A BigGAN-PyTorch checkpoint that cannot be found or read; the message says why."""


@dataclasses.dataclass(frozen=True)
class WeightFiles:
    """The files of one save of a run: `generator` (G or G_ema) and `discriminator` (D)."""

    generator: str
    discriminator: Optional[str]


def _torch():
    try:
        import torch  # deferred: only BigGAN-PyTorch imports need it
    except ImportError:
        raise PytorchImportError(
            "Reading BigGAN-PyTorch checkpoints needs PyTorch: pip install torch"
        ) from None
    return torch


def suffixes(directory):
    """`{suffix: set of stems}` of the weight files in `directory` ("" = no suffix)."""
    found = {}
    for name in tf.io.gfile.listdir(directory) if tf.io.gfile.isdir(directory) else []:
        match = _NAME.match(name)
        if match:
            found.setdefault(match.group(2) or "", set()).add(match.group(1))
    return found


def is_weights_dir(path):
    """True when `path` is a directory holding a BigGAN-PyTorch `G*.pth` (cheap: names only)."""
    return bool(path) and any("G" in s or "G_ema" in s for s in suffixes(str(path)).values())


def find_files(path, ema=False, suffix=None):
    """The `WeightFiles` that `path` stands for.

    Args:
      path: a weights directory, or one generator file (`.../G_ema_best1.pth`; its D is
        the `D` file of the same suffix beside it, when present).
      ema: in a directory, take `G_ema` instead of `G` (the paper transfers from `G`).
      suffix: in a directory, the save to read (`copy0`, `best2`; "" = the latest);
        None = the latest when present, else the only save there is.

    Raises:
      PytorchImportError: nothing fits, with what the directory holds.
    """
    path = str(path)
    if not tf.io.gfile.isdir(path):
        match = _NAME.match(os.path.basename(path))
        if not tf.io.gfile.exists(path):
            raise PytorchImportError(
                f"{path} does not exist: expected a BigGAN-PyTorch "
                "weights directory (G.pth, D.pth, G_ema.pth) or a .pth file."
            )
        d_file = None
        if match and match.group(1) != "D":
            sfx = match.group(2)
            candidate = os.path.join(
                os.path.dirname(path), "D" + (f"_{sfx}" if sfx else "") + EXTENSION
            )
            d_file = candidate if tf.io.gfile.exists(candidate) else None
        return WeightFiles(path, d_file)
    found = suffixes(path)
    stem = "G_ema" if ema else "G"
    if suffix is None:
        with_g = sorted(s for s, stems in found.items() if stem in stems)
        suffix = "" if "" in with_g else (with_g[0] if len(with_g) == 1 else None)
    name = lambda s: s + (f"_{suffix}" if suffix else "") + EXTENSION
    if suffix is None or stem not in found.get(suffix, ()):
        listing = ", ".join(
            f"{s or '(no suffix)'}: {'/'.join(sorted(stems))}" for s, stems in sorted(found.items())
        )
        wanted = f"{stem}[_suffix]{EXTENSION}" if suffix is None else name(stem)
        raise PytorchImportError(
            f"{path} has no single {wanted} to read (weight files found: {listing or 'none'}); "
            "pass the suffix (copy0, best1, ...) or the file itself."
        )
    d_file = os.path.join(path, name("D")) if "D" in found[suffix] else None
    return WeightFiles(os.path.join(path, name(stem)), d_file)


def read_state_dict(path):
    """`{key: float32 numpy array}` of a `torch.save`d state_dict (zip or legacy container).

    Loaded with `weights_only=True` (no code runs) onto the CPU (the released tensors
    were saved from CUDA).

    Raises:
      PytorchImportError: torch is missing, the file is not a torch checkpoint, or it
        holds something other than a state_dict of tensors (an optimiser state, a run's
        `state_dict.pth`).
    """
    torch = _torch()
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            loaded = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds (UnpicklingError, RuntimeError, ...)
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PytorchImportError(
            f"{path} is not a readable PyTorch checkpoint (torch.load: {first_line})."
        ) from e
    if not isinstance(loaded, dict) or not all(torch.is_tensor(v) for v in loaded.values()):
        kind = type(loaded).__name__
        keys = sorted(loaded)[:5] if isinstance(loaded, dict) else []
        raise PytorchImportError(
            f"{path} holds a {kind} {keys if keys else ''} rather than a model's state_dict "
            "of tensors (G.pth, D.pth or G_ema.pth; not *_optim.pth or state_dict.pth)."
        )
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in loaded.items()}
