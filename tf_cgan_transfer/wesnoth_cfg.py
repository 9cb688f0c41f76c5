"""The game-data side of `wesnoth_units`: Wesnoth 1.16's unit .cfg files and sprite folders.

Pure functions of `data/core`'s files (no TFDS, no pixels), gathered by `catalogue` into
the `Catalogue` that `wesnoth_units` builds the data set from. The benchmark depends on
these rules:

1. Unit types (`parse_units`). Every `units/**/*.cfg` is read in sorted path order. A
   file's own argument-less macros (`#define NAME` / value / `#enddef`) are substituted
   one level deep (`expand_macros`), then each top-level `[unit_type]` block gives one
   unit from its direct keys `id`, `race`, `level`, `image`, `advances_to` (not the keys
   of nested tags such as `[attack]`, `[female]` or animations; first occurrence wins).
   A unit is dropped when it has no `image`, the image still holds a macro (`{...}`: the
   composited images of e.g. Fire Ant), or the image's folder does not exist
   (`drop_reason`). The image's `~FUNCTION(...)` suffix (recolouring, overlays) is ignored.
2. Frames (`find_frames`). For a base image `<folder>/<stem>.png` the unit's frames are the
   `.png` files of that folder named `<stem>.png`, `<stem>-*` or `<stem>+*` (`+female`
   variants). A file that several units of the folder match goes to the longest stem
   (`wose-ancient-*` is the Ancient Wose's, not the Wose's) and, between equal stems, to
   the first parsed unit: the Great Troll and the Troll Warrior share
   `trolls/warrior.png`, and the Great Troll (`Great.cfg`) gets all of its frames.
3. Classes (`select_classes`). The units with at least `min_frames` frames (15 by
   default), sorted by id; the label is the position in that list, its name the unit id.
   On Wesnoth 1.16: 279 unit types with 5232 frames; 124 classes with 4274 frames
   (2935 train, 1339 test).
4. Splits (`split_frames`). Per class, the frames are ranked by `zlib.crc32` of their path
   (relative to `images/`, ties by path) and the first ceil(30%) go to `test`, the rest
   to `train`: deterministic, and a class's split does not depend on the other classes.

Also here: where the files come from (`MANUAL_DOWNLOAD_INSTRUCTIONS`, `check_core_dir`)
and the error for unusable files (`WesnothDataError`), which `wesnoth_units` re-exports.
"""

import collections
import dataclasses
import math
import os
import posixpath
import re
import zlib
from typing import Dict, List, Optional, Tuple, Union

from absl import logging

from tf_cgan_transfer import errors

NAME = "wesnoth_units"  # the TFDS data set made from these files (and the log prefix)
BACKGROUND = (128, 128, 128)  # neutral grey: no terrain colour leaks into the classes
MIN_FRAMES = 15
TEST_FRACTION = 0.3
UNKNOWN_RACE = "unknown"  # unit types without their own race (they inherit one in-game)
UNKNOWN_LEVEL = -1
UNIT_KEYS = ("id", "race", "level", "image", "advances_to")
CORE_SUBDIR = "usr/share/games/wesnoth/1.16/data/core"  # inside the extracted Debian package

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
manual_dir must be the `data/core` folder of Battle for Wesnoth 1.16 (it holds `units/`,
the unit .cfg files, and `images/units/`, the sprites). Either extract the Debian package
(no root needed):

    apt-get download wesnoth-1.16-data
    dpkg -x wesnoth-1.16-data_*.deb DIR

and use `DIR/{CORE_SUBDIR}`, or use the `data/core` folder of a Wesnoth 1.16 release
(https://www.wesnoth.org).
"""
# The same as one sentence (no full stop), for error messages: the command lines print
# errors on one line.
INSTRUCTIONS_LINE = (
    "Get it with `apt-get download wesnoth-1.16-data && dpkg -x wesnoth-1.16-data_*.deb DIR` "
    f"(no root needed) and pass DIR/{CORE_SUBDIR}, or the data/core folder of a Wesnoth "
    "1.16 release"
)


class WesnothDataError(errors.UserError, ValueError):
    """The Wesnoth files or the prepared data set cannot be used; the message says why."""


# --- Unit types: the .cfg files -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Unit:
    """One `[unit_type]` of the game's files: its direct keys.

    Attributes:
      id: the unit type id, e.g. "Elvish Fighter" (also the class name).
      race: its `race`, or None if the block has none (it inherits one in the game).
      level: its `level`, or None if it has none or it is not an integer.
      image: its `image` as written (after macro substitution), or None.
      advances_to: the unit ids of its `advances_to`, in file order; () for `null`.
      cfg: the .cfg file it comes from, relative to `data/core`.
    """

    id: str
    race: Optional[str]
    level: Optional[int]
    image: Optional[str]
    advances_to: Tuple[str, ...]
    cfg: str = ""

    @property
    def sprite(self):
        """The base image relative to `images/`, without `~FUNCTION(...)` suffixes."""
        return self.image.split("~", 1)[0] if self.image else None

    @property
    def stem(self):
        """The base image's file name without `.png`: the prefix of the unit's frames."""
        return os.path.splitext(posixpath.basename(self.sprite))[0] if self.image else None


# `#define NAME [ARGS]` ... `#enddef`; `#enddef` may end the value's last line.
_MACRO = re.compile(r"^#define[ \t]+(\w+)([^\n]*)\n(.*?)#enddef", re.MULTILINE | re.DOTALL)
_MACRO_CALL = re.compile(r"\{(\w+)\}")
# `[tag]`, `[+tag]` (amends an earlier tag) or `[/tag]`, alone on a line but for a comment.
_TAG = re.compile(r"^\[(/?)(\+?\w+)\]\s*(?:#.*)?$")
_INTEGER = re.compile(r"[+-]?\d+")


def expand_macros(text):
    """`text` with its argument-less macros substituted and every macro definition removed.

    One level deep: a value that calls another macro keeps that call (`{OTHER}`), so an
    image built from other macros stays unresolved and its unit is dropped. Macros with
    arguments, and macros of other files (the game's shared `data/core/macros`), are
    not expanded either: units whose image needs them are dropped the same way.
    """
    macros = {}

    def define(match):
        name, args, value = match.groups()
        if not args.strip():
            macros[name] = value.strip()
        return ""  # a definition is not content where it stands

    text = _MACRO.sub(define, text)
    return _MACRO_CALL.sub(lambda call: macros.get(call.group(1), call.group(0)), text)


def _value(raw):
    """A key's value: without a trailing `# comment`, whitespace and surrounding quotes."""
    return raw.split("#", 1)[0].strip().strip('"')


def _unit(keys, cfg):
    level = keys.get("level", "")
    advances = [name.strip() for name in keys.get("advances_to", "").split(",")]
    return Unit(
        id=keys["id"],
        race=keys.get("race") or None,
        level=int(level) if _INTEGER.fullmatch(level) else None,
        image=keys.get("image") or None,
        advances_to=tuple(name for name in advances if name and name != "null"),
        cfg=cfg,
    )


def parse_cfg(text, cfg=""):
    """The `Unit`s of one .cfg file's text (after `expand_macros`), in file order.

    A line-based reader of WML, enough for the unit files: tags alone on their line,
    `key=value` lines. Only keys at tag depth 1 directly inside a top-level
    `[unit_type]` count, so an `[attack]`'s or a `[female]`'s own `image=` is ignored.
    A block without an `id` is skipped (logged).
    """
    units, stack, keys = [], [], None
    for line in expand_macros(text).splitlines():
        line = line.strip()
        tag = _TAG.match(line)
        if tag:
            closing, name = tag.groups()
            if not closing:
                stack.append(name)
                if stack == ["unit_type"]:
                    keys = {}
            elif stack:
                stack.pop()
                if not stack and keys is not None:
                    if "id" in keys:
                        units.append(_unit(keys, cfg))
                    else:
                        logging.warning("%s: skipped a [unit_type] without an id.", cfg)
                    keys = None
        elif keys is not None and stack == ["unit_type"] and "=" in line:
            if line.startswith("#"):
                continue
            key, raw = line.split("=", 1)
            key = key.strip()
            if key in UNIT_KEYS and key not in keys:
                keys[key] = _value(raw)
    return units


def parse_units(core_dir):
    """Every unit type of `<core_dir>/units/**/*.cfg`, in sorted file order, then file order.

    A repeated id keeps its first definition (logged).
    """
    units_dir = os.path.join(core_dir, "units")
    paths = []
    for root, _, files in os.walk(units_dir):
        paths += [os.path.join(root, name) for name in files if name.endswith(".cfg")]
    units, seen = [], set()
    for path in sorted(paths):
        cfg = os.path.relpath(path, core_dir).replace(os.sep, "/")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for unit in parse_cfg(text, cfg):
            if unit.id in seen:
                logging.warning("%s: ignored a second unit type %r.", cfg, unit.id)
                continue
            seen.add(unit.id)
            units.append(unit)
    return units


def drop_reason(unit, core_dir):
    """Why `unit` has no usable sprite (a short text), or None if it has one."""
    if unit.image is None:
        return "no image"
    if "{" in unit.image:
        return f"unresolved macro in image {unit.image!r}"
    folder = posixpath.dirname(unit.sprite)
    if not os.path.isdir(os.path.join(core_dir, "images", folder)):
        return f"image folder images/{folder} does not exist"
    return None


def parents_of(units):
    """`{unit id: sorted ids of the units whose advances_to names it}` over `units`."""
    parents = collections.defaultdict(set)
    for unit in units:
        for child in unit.advances_to:
            parents[child].add(unit.id)
    return {unit.id: sorted(parents[unit.id]) for unit in units}


# --- Frames, classes and splits -------------------------------------------------------


def is_frame(file_name, stem):
    """Whether `file_name` is a frame of a sprite stem: `<stem>.png`, `<stem>-*.png` or
    `<stem>+*.png`."""
    if not file_name.endswith(".png"):
        return False
    return file_name == stem + ".png" or file_name.startswith((stem + "-", stem + "+"))


def assign_frames(file_names, stems):
    """The owner of each file: the index of its longest matching stem, or None.

    Between equal stems the first wins (stems are given in unit parse order).
    """
    owners = []
    for name in file_names:
        owner = None
        for i, stem in enumerate(stems):
            if is_frame(name, stem) and (owner is None or len(stem) > len(stems[owner])):
                owner = i
        owners.append(owner)
    return owners


def find_frames(core_dir, units):
    """`{unit id: sorted frame paths relative to images/}` of units with usable sprites.

    Each image folder is listed once (not recursively) and its `.png` files are shared
    out between the folder's units by `assign_frames`. A unit may get no frame.
    """
    by_folder = collections.defaultdict(list)
    for unit in units:
        by_folder[posixpath.dirname(unit.sprite)].append(unit)
    frames = {unit.id: [] for unit in units}
    for folder, members in by_folder.items():
        with os.scandir(os.path.join(core_dir, "images", folder)) as entries:
            names = sorted(e.name for e in entries if e.is_file() and e.name.endswith(".png"))
        owners = assign_frames(names, [unit.stem for unit in members])
        for name, owner in zip(names, owners):
            if owner is not None:
                frames[members[owner].id].append(posixpath.join(folder, name))
    return {unit_id: sorted(paths) for unit_id, paths in frames.items()}


def select_classes(frames, min_frames=MIN_FRAMES):
    """`(classes, too_few)`: the sorted ids with at least `min_frames` frames, and
    `{id: frame count}` of the others."""
    classes = sorted(unit_id for unit_id, paths in frames.items() if len(paths) >= min_frames)
    kept = set(classes)
    too_few = {u: len(paths) for u, paths in sorted(frames.items()) if u not in kept}
    return classes, too_few


def split_frames(paths, test_fraction=TEST_FRACTION):
    """`(train, test)` frame paths of one class, each sorted by path.

    The `ceil(test_fraction * n)` paths ranked first by `(zlib.crc32(path), path)` are the
    test frames: a fixed, pseudo-random choice that depends only on the paths.
    """
    ranked = sorted(paths, key=lambda path: (zlib.crc32(path.encode("utf-8")), path))
    num_test = math.ceil(test_fraction * len(ranked))
    return sorted(ranked[num_test:]), sorted(ranked[:num_test])


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """What the game files give: units, their frames, the classes and the dropped units.

    Attributes:
      units: every parsed unit type, by id (parse order).
      frames: frame paths (relative to `images/`) of each unit with a usable sprite.
      classes: the class names (unit ids with at least `min_frames` frames), sorted.
      dropped: `{unit id: reason}` of units without usable sprite, `{unit id: frame
        count}` of units with too few frames; sorted by id.
      min_frames: the threshold used.
    """

    units: Dict[str, Unit]
    frames: Dict[str, List[str]]
    classes: List[str]
    dropped: Dict[str, Union[str, int]]
    min_frames: int

    @property
    def races(self):
        """Sorted race names of the classes."""
        return sorted({self.units[name].race or UNKNOWN_RACE for name in self.classes})

    def metadata(self):
        """The JSON-able tables stored with the prepared data (see `wesnoth_units`)."""
        parents = parents_of(self.units.values())
        table = {}
        for name in self.classes:
            unit = self.units[name]
            table[name] = {
                "race": unit.race or UNKNOWN_RACE,
                "level": UNKNOWN_LEVEL if unit.level is None else unit.level,
                "parents": parents[name],
                "advances_to": sorted(unit.advances_to),
                "num_frames": len(self.frames[name]),
                "image": unit.sprite,
            }
        return {
            "units": table,
            "dropped": dict(self.dropped),
            "min_frames": self.min_frames,
            "background": list(BACKGROUND),
        }


def catalogue(core_dir, min_frames=MIN_FRAMES):
    """Reads the game files under `core_dir` (Wesnoth's `data/core`) into a `Catalogue`.

    Logs every dropped unit type and why.

    Raises:
      WesnothDataError: `core_dir` is not a Wesnoth `data/core` folder.
    """
    check_core_dir(core_dir)
    units = parse_units(core_dir)
    dropped, usable = {}, []
    for unit in units:
        reason = drop_reason(unit, core_dir)
        if reason is None:
            usable.append(unit)
        else:
            dropped[unit.id] = reason
    frames = find_frames(core_dir, usable)
    classes, too_few = select_classes(frames, min_frames)
    dropped.update(too_few)
    for unit_id, why in sorted(dropped.items()):
        if isinstance(why, int):
            why = f"{why} frame(s), fewer than min_frames={min_frames}"
        logging.info("%s: dropped unit type %r: %s.", NAME, unit_id, why)
    logging.info(
        "%s: %d unit types, %d classes with %d frames, %d dropped.",
        NAME,
        len(units),
        len(classes),
        sum(len(frames[name]) for name in classes),
        len(dropped),
    )
    return Catalogue(
        units={unit.id: unit for unit in units},
        frames=frames,
        classes=classes,
        dropped=dict(sorted(dropped.items())),
        min_frames=min_frames,
    )


def check_core_dir(core_dir):
    """Raises a `WesnothDataError` unless `core_dir` holds `units/` and `images/units/`.

    The message names the expected folder and how to get it, and points at the right
    sub-folder when `core_dir` is a parent of it (an extracted package, a release).
    """
    path = os.fspath(core_dir) if core_dir else ""

    def looks_right(folder):
        units = os.path.join(folder, "units")
        return os.path.isdir(units) and os.path.isdir(os.path.join(folder, "images", "units"))

    if path and looks_right(path):
        return
    hint = ""
    for sub in (CORE_SUBDIR, "1.16/data/core", "data/core", "core"):
        if path and looks_right(os.path.join(path, sub)):
            hint = f" ({os.path.join(path, sub)} looks right: pass that.)"
            break
    raise WesnothDataError(
        f"Wesnoth unit sprites not found in manual_dir {path or None!r}: it must be the "
        "data/core folder of Battle for Wesnoth 1.16, holding units/ (unit .cfg files) and "
        f"images/units/ (sprites).{hint} {INSTRUCTIONS_LINE}."
    )
