"""`wesnoth_units`: Battle for Wesnoth unit sprites as a TFDS data set (real artwork, offline).

One class per unit type of Wesnoth 1.16's core units ("Elvish Fighter", "Dwarvish
Thunderer", ...), whose images are that unit's sprite frames: the standing sprite and its
animation frames (attacks, defence, idling, female variants). The sprites are hand-drawn
pixel art, mostly 72x72 RGBA; here they are composited over a neutral grey and resized to
32x32 (`wesnoth_units/32`) or 64x64 (`wesnoth_units/64`). Units are linked by their upgrade
tree (`advances_to`: an Elvish Fighter becomes an Elvish Captain or Hero), and a unit
looks much like its upgrade parent and children (same race, outfit and pose, more
armour), which makes the set a real-data benchmark of transfer to new classes: a new
class's relatives among the old classes are known (`relations`, `related_classes`).

Nothing is downloaded. The game's files are the manual directory (see
`MANUAL_DOWNLOAD_INSTRUCTIONS`): the `data/core` folder of Wesnoth 1.16, e.g. from the
Debian package `wesnoth-1.16-data`:

    from tf_cgan_transfer import wesnoth_units
    core = "<dir>/usr/share/games/wesnoth/1.16/data/core"
    builder = wesnoth_units.prepare("/tmp/tfds", core, "32")

Importing this module registers the builder with TFDS; once prepared, the data set opens
by name like any other (`tfds.builder("wesnoth_units/32", data_dir=...)`, or
`data.DataConfig(dataset="wesnoth_units/32", ...)`) without the game files.

This module holds the pixels, the TFDS builder and the prepared data set's relations.
How the game files become unit types, frames, classes and splits (rules 1-4, which the
benchmark depends on) is `wesnoth_cfg`'s: pure functions, testable without TFDS. The
names other code uses (`WesnothDataError`, `MANUAL_DOWNLOAD_INSTRUCTIONS`, `BACKGROUND`,
...) are re-exported here. The last rule is this module's:

5. Pixels (`sprite_images`). Each sprite is centre-cropped, or padded with transparent
   pixels, to 72x72 (`fit`: a quarter of the class frames are not 72x72, mostly wider or
   taller attack frames, which the game draws centred on the hex at 1:1), composited
   over the opaque grey `BACKGROUND` (`composite`: `a * rgb + (1 - a) * grey` with
   `a = alpha / 255`), resized with antialiased bilinear filtering (`tf.image.resize`)
   and rounded to uint8. Team-colour pixels (the magenta the game recolours to each
   side's colour) are kept as drawn: every unit is of the same "magenta team", and the
   magenta marks the same parts of the outfit in every class.

Features: `image` (uint8 [R, R, 3]), `label` (unit id), `race`, `level` (int32; -1 if the
unit type has none), `parents` (ids of the unit types that advance to this one, among all
parsed unit types), `advances_to` (ids), `frame` (path of the sprite relative to
`images/`, also the example key). The data set's metadata (`builder.info.metadata`, saved
with the prepared data) holds the class table (`units`: race, level, parents,
advances_to, num_frames, image of each class) and the dropped unit types with the reason
or their frame count (`dropped`), so the benchmark needs no game files once prepared.

The sprites are Wesnoth's artwork, licensed like the game (GNU GPL v2 or later).
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tf_cgan_transfer import demo_data
from tf_cgan_transfer import wesnoth_cfg

# Re-exported from `wesnoth_cfg`: the names users of the data set need.
NAME = wesnoth_cfg.NAME
BACKGROUND = wesnoth_cfg.BACKGROUND
MIN_FRAMES = wesnoth_cfg.MIN_FRAMES
CORE_SUBDIR = wesnoth_cfg.CORE_SUBDIR
MANUAL_DOWNLOAD_INSTRUCTIONS = wesnoth_cfg.MANUAL_DOWNLOAD_INSTRUCTIONS
INSTRUCTIONS_LINE = wesnoth_cfg.INSTRUCTIONS_LINE
WesnothDataError = wesnoth_cfg.WesnothDataError

SPRITE_SIZE = 72  # the game's hex size: sprites are drawn for 72x72 hexes
_CHUNK = 256  # sprites decoded and resized together while generating


# --- Pixels ---------------------------------------------------------------------------


def composite(rgba, background=BACKGROUND):
    """float32 `[H, W, 3]`: uint8 RGBA over an opaque background colour.

    `out = a * rgb + (1 - a) * background` with `a = alpha / 255` (straight alpha, as
    PNG stores it).
    """
    rgba = np.asarray(rgba, np.float32)
    alpha = rgba[..., 3:] / 255.0
    return alpha * rgba[..., :3] + (1.0 - alpha) * np.asarray(background, np.float32)


def fit(rgba, size=SPRITE_SIZE):
    """`[size, size, 4]`: each axis of an RGBA `[H, W, 4]` centre-cropped, or padded with
    transparent pixels (the background, once composited).

    Not rescaled: the game draws every frame centred on the hex at 1:1, so cropping the
    larger frames (wide sword swings, breath attacks) keeps a unit's size and position
    the same in all its frames; what is cut off lies outside the unit's hex. (Cropping
    before compositing gives the same pixels as after, on fewer pixels.)
    """
    rgba = np.asarray(rgba)
    out = np.zeros([size, size, rgba.shape[-1]], rgba.dtype)

    def windows(n):  # (source, destination) slices of one axis
        if n >= size:
            start = (n - size) // 2
            return slice(start, start + size), slice(0, size)
        start = (size - n) // 2
        return slice(0, n), slice(start, start + n)

    (src_y, dst_y), (src_x, dst_x) = windows(rgba.shape[0]), windows(rgba.shape[1])
    out[dst_y, dst_x] = rgba[src_y, src_x]
    return out


def sprite_images(encoded, resolution):
    """uint8 `[N, resolution, resolution, 3]` of a list of encoded PNG sprites.

    Each is fitted to 72x72, composited over `BACKGROUND`, resized (bilinear with
    antialiasing, as `data.preprocess`), rounded and clipped. The resize runs once for
    the whole batch: it treats images independently, and one call is ~10x faster than
    one per image. TensorFlow decodes the PNGs (palette and grey PNGs become RGBA, as
    with an imaging library), so none is needed.
    """
    rgb = [composite(fit(tf.io.decode_png(png, channels=4).numpy())) for png in encoded]
    if not rgb:
        return np.zeros([0, resolution, resolution, 3], np.uint8)
    small = tf.image.resize(np.stack(rgb), [resolution, resolution], "bilinear", antialias=True)
    return np.clip(np.round(small.numpy()), 0, 255).astype(np.uint8)


def sprite_image(encoded, resolution):
    """uint8 `[resolution, resolution, 3]` of one encoded PNG sprite (see `sprite_images`)."""
    return sprite_images([encoded], resolution)[0]


# --- The TFDS builder -----------------------------------------------------------------


@dataclasses.dataclass
class WesnothUnitsConfig(tfds.core.BuilderConfig):
    """A `wesnoth_units` variant: the image side and the frames a unit needs to be a class."""

    resolution: int = 32
    min_frames: int = MIN_FRAMES


class WesnothUnits(tfds.core.GeneratorBasedBuilder):
    """Battle for Wesnoth unit sprites, one class per unit type, from the game's files."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [
        WesnothUnitsConfig(
            name=str(resolution),
            description=f"{resolution}x{resolution} images, units with at least "
            f"{MIN_FRAMES} frames.",
            resolution=resolution,
        )
        for resolution in (32, 64)
    ]

    def _info(self):
        r = self.builder_config.resolution
        return self.dataset_info_from_configs(
            description=(
                "Battle for Wesnoth 1.16 unit sprites (hand-drawn pixel art): one class per "
                "unit type, its standing and animation frames composited over grey, with the "
                "units' race, level and upgrade tree."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(r, r, 3)),
                    # Both class lists come from the game files, so they are set when the
                    # data is generated and restored from the prepared data.
                    "label": tfds.features.ClassLabel(),
                    "race": tfds.features.ClassLabel(),
                    "level": tfds.features.Scalar(dtype=np.int32),
                    "parents": tfds.features.Sequence(tfds.features.Text()),
                    "advances_to": tfds.features.Sequence(tfds.features.Text()),
                    "frame": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://www.wesnoth.org",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        core_dir = _manual_dir(dl_manager)
        config = self.builder_config
        cat = wesnoth_cfg.catalogue(core_dir, config.min_frames)
        if not cat.classes:
            raise WesnothDataError(
                f"No unit type in {core_dir} has {config.min_frames} frames: is it the "
                "data/core folder of Wesnoth 1.16?"
            )
        self.info.features["label"].names = cat.classes
        self.info.features["race"].names = cat.races
        self.info.metadata.update(cat.metadata())
        splits = {"train": [], "test": []}
        for label, name in enumerate(cat.classes):
            train, test = wesnoth_cfg.split_frames(cat.frames[name])
            splits["train"] += [(label, frame) for frame in train]
            splits["test"] += [(label, frame) for frame in test]
        return {
            split: self._generate_examples(core_dir, cat, frames)
            for split, frames in splits.items()
        }

    def _generate_examples(self, core_dir, cat, frames):
        table = cat.metadata()["units"]
        resolution = self.builder_config.resolution
        for start in range(0, len(frames), _CHUNK):
            chunk = frames[start : start + _CHUNK]
            encoded = []
            for _, frame in chunk:
                with open(os.path.join(core_dir, "images", frame), "rb") as f:
                    encoded.append(f.read())
            for (label, frame), image in zip(chunk, sprite_images(encoded, resolution)):
                unit = table[cat.classes[label]]
                yield frame, {
                    # Our own encoder: several times faster than TFDS's per-example one.
                    "image": demo_data.encode_png(image),
                    "label": label,
                    "race": unit["race"],
                    "level": unit["level"],
                    "parents": unit["parents"],
                    "advances_to": unit["advances_to"],
                    "frame": frame,
                }


def _manual_dir(dl_manager):
    """The manual directory, checked; a missing one raises our error, not TFDS's."""
    try:
        core_dir = os.fspath(dl_manager.manual_dir)
    except AssertionError:  # TFDS: "does not exist or is empty"
        # TFDS keeps the path private; it is only needed to name it in the message.
        wesnoth_cfg.check_core_dir(getattr(dl_manager, "_manual_dir", None))
        raise
    wesnoth_cfg.check_core_dir(core_dir)
    return core_dir


def prepare(data_dir, manual_dir, config="32"):
    """Generates `wesnoth_units/<config>` into `data_dir` (no-op if already there).

    Args:
      data_dir: TFDS data directory.
      manual_dir: Wesnoth 1.16's `data/core` folder (see `MANUAL_DOWNLOAD_INSTRUCTIONS`);
        not read if the data set is already prepared.
      config: builder config name (`"32"`, `"64"`), or a `WesnothUnitsConfig` (e.g. another
        `min_frames`; such a data set reopens only with the same config object).

    Returns:
      The prepared `tfds.core.DatasetBuilder`.

    Raises:
      WesnothDataError: `manual_dir` is not a Wesnoth `data/core` folder.
    """
    if isinstance(config, WesnothUnitsConfig):
        builder = WesnothUnits(data_dir=data_dir, config=config)
    else:
        builder = tfds.builder(f"{NAME}/{config}", data_dir=data_dir)
    if not builder.is_prepared():
        wesnoth_cfg.check_core_dir(manual_dir)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=os.fspath(manual_dir),
                try_download_gcs=False,  # never hosted: do not ask the network
            )
        )
    return builder


# --- The prepared data set's relations ------------------------------------------------


def _class_table(builder):
    """`(class names, metadata units table)` of a prepared builder."""
    metadata = builder.info.metadata
    if not builder.is_prepared() or not metadata or "units" not in metadata:
        raise WesnothDataError(
            f"{builder.info.full_name} is not prepared in {builder.data_dir_root}: run "
            f"tf_cgan_transfer.wesnoth_units.prepare({os.fspath(builder.data_dir_root)!r}, "
            "<manual_dir>, <config>) first."
        )
    return list(builder.info.features["label"].names), metadata["units"]


def relations(builder):
    """Each class's unit data and upgrade links, read from the prepared data's metadata.

    Returns:
      `{class id: {"name", "race", "level", "parents", "children"}}`, where `parents`
      (units that advance to the class) and `children` (its `advances_to`) are the sorted
      class ids of those that are classes too.
    """
    names, table = _class_table(builder)
    index = {name: i for i, name in enumerate(names)}
    out = {}
    for i, name in enumerate(names):
        unit = table[name]
        out[i] = {
            "name": name,
            "race": unit["race"],
            "level": unit["level"],
            "parents": sorted(index[p] for p in unit["parents"] if p in index),
            "children": sorted(index[c] for c in unit["advances_to"] if c in index),
        }
    return out


def related_classes(builder, new_class_ids, old_class_ids):
    """`{new id: sorted old ids that are an upgrade parent or child of it}`.

    For transfer to new classes: which old classes are a new class's next of kin.
    """
    links = relations(builder)
    old = {int(c) for c in old_class_ids}
    return {
        int(new): sorted(
            {c for c in links[int(new)]["parents"] + links[int(new)]["children"] if c in old}
        )
        for new in new_class_ids
    }
