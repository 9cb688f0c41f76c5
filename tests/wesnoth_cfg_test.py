"""Tests of tf_cgan_transfer.wesnoth_cfg: the Wesnoth unit .cfg reader, frames and splits.

On text alone, and on the fake `data/core` of `tests/wesnoth_fixtures.py` (no TFDS).
"""

import os
import shutil
import tempfile
import zlib

import tensorflow as tf

from tests import wesnoth_fixtures
from tf_cgan_transfer import wesnoth_cfg


class ParseTest(tf.test.TestCase):
    """The .cfg reader on text alone."""

    def test_direct_keys_of_the_unit_type_only(self):
        (unit,) = wesnoth_cfg.parse_cfg(wesnoth_fixtures.FIGHTER_CFG, "units/elves/Fighter.cfg")
        self.assertEqual(
            unit,
            wesnoth_cfg.Unit(
                id="Elvish Fighter",
                race="elf",  # comment stripped; the later race=orc is ignored
                level=1,  # not the later level=9
                image="units/elves-wood/fighter.png",  # not [attack]'s, [defend]'s, [female]'s
                advances_to=("Elvish Captain", "Elvish Hero"),
                cfg="units/elves/Fighter.cfg",
            ),
        )
        self.assertEqual(unit.sprite, "units/elves-wood/fighter.png")
        self.assertEqual(unit.stem, "fighter")

    def test_image_suffix_null_and_empty_advances(self):
        units = {
            u.id: u
            for cfg in ("units/elves/Captain.cfg", "units/elves/Hero.cfg")
            for u in wesnoth_cfg.parse_cfg(wesnoth_fixtures.UNITS[cfg])
        }
        captain, hero = units["Elvish Captain"], units["Elvish Hero"]
        self.assertEqual(captain.image, "units/elves-wood/captain.png~RC(magenta>red)")
        self.assertEqual(captain.sprite, "units/elves-wood/captain.png")
        self.assertEqual(hero.sprite, "units/elves-wood/hero.png")
        self.assertEqual(captain.advances_to, ())
        self.assertEqual(hero.advances_to, ())

    def test_macros_are_file_local_and_one_level_deep(self):
        text = wesnoth_cfg.expand_macros(wesnoth_fixtures.UNITS["units/dunefolk/Rider.cfg"])
        self.assertNotIn("#define", text)  # definitions are removed
        self.assertIn('image="units/dunefolk/rider/rider.png"', text)
        # RAIDER_IMAGE's own {PATH_TEMP} is not expanded again.
        self.assertIn('image="{PATH_TEMP}raider.png~BLIT({PATH_TEMP}raider-torch.png,0,0)"', text)
        rider, raider = wesnoth_cfg.parse_cfg(wesnoth_fixtures.UNITS["units/dunefolk/Rider.cfg"])
        self.assertEqual(rider.sprite, "units/dunefolk/rider/rider.png")
        self.assertEqual(rider.advances_to, ("Dune Raider",))
        self.assertIn("{PATH_TEMP}", raider.image)  # still holds a macro
        # Macros with arguments stay calls; the first of two image= keys wins.
        wose, ancient = wesnoth_cfg.parse_cfg(wesnoth_fixtures.UNITS["units/woses/Wose.cfg"])
        self.assertEqual(wose.image, "units/woses/wose.png")  # not [variation]'s
        self.assertEqual(ancient.image, "{WOSE_IMAGE wose-ancient}")

    def test_frame_names_and_longest_stem(self):
        names = sorted(
            ["wose.png", "wose-attack.png", "wose-ancient.png", "wose-ancient-1.png"]
            + ["wose+female.png", "woseling.png", "wose.txt", "wose-elder-1.png"]
        )
        owners = wesnoth_cfg.assign_frames(names, ["wose", "wose-ancient", "wose-ancient"])
        got = {name: owner for name, owner in zip(names, owners)}
        self.assertEqual(
            got,
            {
                "wose+female.png": 0,
                "wose-ancient-1.png": 1,  # longest stem; the first of two equal ones
                "wose-ancient.png": 1,
                "wose-attack.png": 0,
                "wose-elder-1.png": 0,  # no wose-elder unit here
                "wose.png": 0,
                "wose.txt": None,
                "woseling.png": None,
            },
        )

    def test_split_rule(self):
        paths = [f"units/x/unit-{i}.png" for i in range(23)]
        train, test = wesnoth_cfg.split_frames(paths)
        ranked = sorted(paths, key=lambda p: (zlib.crc32(p.encode()), p))
        self.assertLen(test, 7)  # ceil(0.3 * 23)
        self.assertEqual(test, sorted(ranked[:7]))
        self.assertEqual(train, sorted(ranked[7:]))
        self.assertEqual(wesnoth_cfg.split_frames(paths[:1]), ([], paths[:1]))
        # A class's split depends only on its own frames.
        self.assertEqual(wesnoth_cfg.split_frames(list(reversed(paths))), (train, test))


class FakeCoreCatalogueTest(tf.test.TestCase):
    """Units, frames, classes and dropped units of the fake game files (read once)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.core = wesnoth_fixtures.write_fake_core(cls.root)
        cls.catalogue = wesnoth_cfg.catalogue(cls.core)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def test_parsed_units_in_file_order(self):
        units = wesnoth_cfg.parse_units(self.core)
        self.assertEqual(
            [u.id for u in units],
            ["Dune Rider", "Dune Raider", "Elvish Captain", "Elvish Fighter", "Elvish Hero"]
            + ["Elvish Shaman", "Great Troll", "Troll Warrior", "Walking Corpse", "Ghost"]
            + ["Ancient Wose", "Wose"],  # Ancient.cfg's; Wose.cfg's second one is ignored
        )
        by_id = {u.id: u for u in units}
        self.assertEqual(by_id["Ancient Wose"].cfg, "units/woses/Ancient.cfg")
        self.assertEqual(by_id["Elvish Hero"].level, 2)
        self.assertEqual(by_id["Elvish Hero"].race, "elf")

    def test_classes_frames_and_dropped(self):
        cat = self.catalogue
        self.assertEqual(cat.classes, wesnoth_fixtures.CLASSES)
        for unit_id in wesnoth_fixtures.CLASSES:
            self.assertEqual(cat.frames[unit_id], wesnoth_fixtures.frame_paths(unit_id), unit_id)
        self.assertEqual(
            cat.frames["Elvish Shaman"],
            sorted(f"units/elves-wood/{n}" for n in wesnoth_fixtures.SHAMAN_FRAMES),
        )
        self.assertEqual(
            cat.dropped,
            {
                "Dune Raider": "unresolved macro in image "
                "'{PATH_TEMP}raider.png~BLIT({PATH_TEMP}raider-torch.png,0,0)'",
                "Elvish Shaman": 3,
                "Ghost": "image folder images/units/undead does not exist",
                "Troll Warrior": 0,  # Great Troll has warrior.png's frames
                "Walking Corpse": "no image",
            },
        )
        self.assertEqual(cat.races, ["dunefolk", "elf", "troll", "wose"])

    def test_min_frames(self):
        classes, too_few = wesnoth_cfg.select_classes(self.catalogue.frames, min_frames=3)
        self.assertEqual(classes, sorted(wesnoth_fixtures.CLASSES + ["Elvish Shaman"]))
        self.assertEqual(too_few, {"Troll Warrior": 0})


class CoreDirTest(tf.test.TestCase):
    def test_parent_folder_points_at_data_core(self):
        root = self.create_tempdir().full_path
        core = os.path.join(root, wesnoth_cfg.CORE_SUBDIR)
        os.makedirs(os.path.join(core, "units"))
        os.makedirs(os.path.join(core, "images", "units"))
        with self.assertRaisesRegex(wesnoth_cfg.WesnothDataError, f"{core} looks right"):
            wesnoth_cfg.check_core_dir(root)
        wesnoth_cfg.check_core_dir(core)  # no error


if __name__ == "__main__":
    tf.test.main()
