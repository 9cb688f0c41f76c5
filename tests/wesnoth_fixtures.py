"""A fake Wesnoth `data/core` for the `wesnoth_cfg` and `wesnoth_units` tests (and others).

`write_fake_core(root)` writes `<root>/data/core`: .cfg files in the game's syntax
(`UNITS`: file-local macros, nested `[attack]` / `[defend]` / `[female]` / `[variation]`
blocks with their own `image=`, comments, `~RC(...)` suffixes, an upgrade tree) and small
RGBA PNG sprites, then returns the path; prepare it with
`wesnoth_units.prepare(data_dir, core, "32")`. The real data (Debian's
`wesnoth-1.16-data`) is checked by hand, not by the tests.

The 7 classes (`CLASSES`, in label order: Ancient Wose, Dune Rider, Elvish Captain,
Elvish Fighter, Elvish Hero, Great Troll, Wose) have 16 frames each (`frame_paths`, at
least the default `min_frames` of 15): the base image and the 15 `_SUFFIXES` frames
(`-attack-*`, `-defend*`, `-idle-1`, `+female*`, `-die-*`), split 11 train / 5 test.
Related by `advances_to`: Elvish Fighter -> Elvish Captain and Elvish Hero; Elvish
Shaman (3 frames, `SHAMAN_FRAMES`: not a class) -> Elvish Hero and Elvish Druid (no such
unit); Wose -> Ancient Wose; Dune Rider -> Dune Raider (dropped: its image holds a
macro). Also dropped: Ghost (no image folder), Walking Corpse (no image) and Troll
Warrior (it shares `trolls/warrior.png` with the Great Troll, parsed first: 0 frames).
The Woses' stems collide (`wose-ancient-*` starts with `wose-`: the longest stem wins),
and Wose.cfg's second unit type, an Ancient Wose, loses to Ancient.cfg's.

Each sprite but `BANDS` is an opaque box of a per-frame colour on transparent pixels
whose colour is magenta (which must not leak into the composite), with a corner mark.
Special frames: `BANDS` (the Elvish Fighter's base image, `bands()`) has transparent,
alpha-128 and opaque vertical bands, for the compositing rule; `CROPPED` (100x90) and
`PADDED` (70x70) test the centre crop and pad to 72x72 (the crop cuts the corner mark
off, the pad keeps it). `OTHER_FILES` are near-misses that no unit owns (no stem match,
a sub-folder, not a PNG, a dropped unit's own sprite).
"""

import os

import numpy as np
import tensorflow as tf

RED = (200, 40, 10)
MAGENTA = (255, 0, 255)

FIGHTER_CFG = """\
#textdomain wesnoth-units
[unit_type]
    id=Elvish Fighter
    name= _ "Elvish Fighter"
    race=elf  # wood elves
    image="units/elves-wood/fighter.png"
    #    image="units/elves-wood/old-fighter.png"
    profile="portraits/elves/fighter.png"
    level=1
    advances_to=Elvish Captain, Elvish Hero
    [attack]
        name=sword
        image=attacks/sword-elven.png
        range=melee
    [/attack]
    [defend] # a tag with a comment still opens a block
        image=units/elves-wood/fighter-defend.png
    [/defend]
    [female]
        name= _ "female^Elvish Fighter"
        image="units/elves-wood/fighter+female.png"
        [+attack_anim]
            image=units/elves-wood/fighter+female-attack-1.png
        [/attack_anim]
    [/female]
    level=9
    race=orc
[/unit_type]
"""

UNITS = {
    "units/elves/Fighter.cfg": FIGHTER_CFG,
    "units/elves/Captain.cfg": """\
[unit_type]
    id=Elvish Captain
    race=elf
    image="units/elves-wood/captain.png~RC(magenta>red)"
    level=2
    advances_to=null
[/unit_type]
""",
    # Hero's advances_to is empty; Shaman has too few frames but is Hero's parent too.
    "units/elves/Hero.cfg": """\
[unit_type]
    id=Elvish Hero
    race=elf
    level=2
    image=units/elves-wood/hero.png~TC(1,magenta)~FL()
    advances_to=
[/unit_type]
""",
    "units/elves/Shaman.cfg": """\
[unit_type]
    id=Elvish Shaman
    race=elf
    image="units/elves-wood/shaman.png"
    level=1
    advances_to=Elvish Hero,Elvish Druid
[/unit_type]
""",
    # Two unit types in one file whose stems collide: `wose-ancient-*` also starts with
    # `wose-`. A macro with an argument stays unexpanded.
    "units/woses/Wose.cfg": """\
#define WOSE_IMAGE BASE
units/woses/{BASE}.png#enddef

[unit_type]
    id=Wose
    race=wose
    image="units/woses/wose.png"
    level=1
    advances_to=Ancient Wose
    [variation]
        variation_id=sapling
        image="units/woses/wose-sapling.png"
    [/variation]
[/unit_type]
[unit_type]
    id=Ancient Wose
    race=wose
    image="{WOSE_IMAGE wose-ancient}"
    image="units/woses/wose-ancient.png"
    level=3
    advances_to=null
[/unit_type]
""",
    "units/woses/Ancient.cfg": """\
[unit_type]
    id=Ancient Wose
    race=wose
    image="units/woses/wose-ancient.png"
    level=3
    advances_to=null
[/unit_type]
""",
    # File-local macros, one level deep: {RAIDER_IMAGE} holds another macro call.
    "units/dunefolk/Rider.cfg": """\
#textdomain wesnoth-units

#define PATH_TEMP
units/dunefolk/rider/#enddef

#define RAIDER_IMAGE
{PATH_TEMP}raider.png~BLIT({PATH_TEMP}raider-torch.png,0,0)#enddef

[unit_type]
    id=Dune Rider
    race=dunefolk
    image="{PATH_TEMP}rider.png"
    level=1
    advances_to=Dune Raider
[/unit_type]

[unit_type]
    id=Dune Raider
    race=dunefolk
    image="{RAIDER_IMAGE}"
    level=2
[/unit_type]
""",
    # Both use warrior.png: the first parsed (Great.cfg) gets every frame.
    "units/trolls/Great.cfg": """\
[unit_type]
    id=Great Troll
    race=troll
    image="units/trolls/warrior.png"
    level=3
[/unit_type]
""",
    "units/trolls/Warrior.cfg": """\
[unit_type]
    id=Troll Warrior
    race=troll
    image="units/trolls/warrior.png"
    level=3
[/unit_type]
""",
    "units/undead/Ghost.cfg": """\
[unit_type]
    id=Ghost
    race=undead
    image="units/undead/ghost.png"
    level=1
[/unit_type]
""",
    "units/undead/Corpse.cfg": """\
#define CORPSE_GRAPHICS BASE
    image="units/undead/{BASE}.png"
#enddef
[unit_type]
    id=Walking Corpse
    race=undead
    level=0
    [attack]
        image=attacks/touch-zombie.png
    [/attack]
[/unit_type]
""",
}

# Fifteen extra frames per class besides the base image (16 with it: min_frames is 15).
_SUFFIXES = [f"-attack-{i}" for i in range(1, 8)] + ["-defend", "-defend2", "-idle-1"]
_SUFFIXES += ["+female", "+female-attack-1", "+female-attack-2", "-die-1", "-die-2"]
FRAMES = {
    "Elvish Fighter": ("units/elves-wood", "fighter"),
    "Elvish Captain": ("units/elves-wood", "captain"),
    "Elvish Hero": ("units/elves-wood", "hero"),
    "Wose": ("units/woses", "wose"),
    "Ancient Wose": ("units/woses", "wose-ancient"),
    "Dune Rider": ("units/dunefolk/rider", "rider"),
    "Great Troll": ("units/trolls", "warrior"),
}
CLASSES = sorted(FRAMES)  # the expected class list, in label order
SHAMAN_FRAMES = ["shaman.png", "shaman-attack-1.png", "shaman+female.png"]
OTHER_FILES = [  # matched by no unit (or not a file, or not a PNG)
    "units/elves-wood/fighterx.png",
    "units/elves-wood/fighter-notes.txt",
    "units/elves-wood/old/fighter.png",
    "units/woses/woseling.png",
    "units/dunefolk/rider/raider.png",
]
CROPPED = "units/trolls/warrior-attack-1.png"  # 100 rows x 90 columns
PADDED = "units/woses/wose-defend.png"  # 70x70
BANDS = "units/elves-wood/fighter.png"  # transparent | half | opaque vertical bands


def frame_paths(unit_id):
    folder, stem = FRAMES[unit_id]
    names = [stem + ".png"] + [stem + suffix + ".png" for suffix in _SUFFIXES]
    return sorted(f"{folder}/{name}" for name in names)


def bands():
    """72x72 RGBA: columns 0-23 transparent (magenta), 24-47 alpha 128 red, 48-71 red."""
    image = np.zeros([72, 72, 4], np.uint8)
    image[:, :24] = MAGENTA + (0,)
    image[:, 24:48] = RED + (128,)
    image[:, 48:] = RED + (255,)
    return image


def _sprite(index, height=72, width=72):
    """An opaque box of a per-frame colour on a transparent (magenta) field."""
    image = np.zeros([height, width, 4], np.uint8)
    image[:] = MAGENTA + (0,)
    colour = (40 + 7 * index % 200, 90 + 13 * index % 150, 30 + 29 * index % 220, 255)
    image[height // 2 - 16 : height // 2 + 16, width // 2 - 12 : width // 2 + 12] = colour
    image[:4, :4] = (250, 250, 250, 255)  # a corner mark: cropped away, or kept
    return image


def _write_png(path, rgba):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(tf.constant(rgba, tf.uint8)))


def write_fake_core(root):
    """Writes the fake `data/core` under `root` and returns its path."""
    core = os.path.join(root, "data", "core")
    for cfg, text in UNITS.items():
        os.makedirs(os.path.dirname(os.path.join(core, cfg)), exist_ok=True)
        with open(os.path.join(core, cfg), "w", encoding="utf-8") as f:
            f.write(text)
    images = os.path.join(core, "images")
    index = 0
    for unit_id in CLASSES:
        for path in frame_paths(unit_id):
            index += 1
            if path == BANDS:
                rgba = bands()
            elif path == CROPPED:
                rgba = _sprite(index, 100, 90)
            elif path == PADDED:
                rgba = _sprite(index, 70, 70)
            else:
                rgba = _sprite(index)
            _write_png(os.path.join(images, path), rgba)
    for name in SHAMAN_FRAMES:
        _write_png(os.path.join(images, "units/elves-wood", name), _sprite(1))
    for path in OTHER_FILES:
        if path.endswith(".png"):
            _write_png(os.path.join(images, path), _sprite(2))
        else:
            with open(os.path.join(images, path), "w") as f:
                f.write("not a frame")
    return core
