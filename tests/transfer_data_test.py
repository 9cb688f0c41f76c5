"""Tests of benchmarks/transfer_data.py: class roles, the new-class draw, affinity hits."""

import itertools
import json
import os

import numpy as np
import tensorflow as tf

from benchmarks import transfer_data
from tf_cgan_transfer import data


def _spec(**overrides):
    config = data.DataConfig(dataset="folder", image_folder="unused", resolution=32)
    values = dict(
        name="toy",
        train=config,
        held_out=config,
        old_classes=(0, 1, 2, 3, 4),
        dev_classes=(5,),
        test_classes=(6, 7),
        class_names=tuple(f"c{i}" for i in range(8)),
        relations={6: (1,), 7: (2, 3)},
        groups={0: "a", 1: "a", 2: "b", 3: "b", 4: "b", 5: "a", 6: "a", 7: "b"},
    )
    values.update(overrides)
    return transfer_data.DataSpec(**values)


class DataSpecTest(tf.test.TestCase):
    def test_roles_must_be_disjoint_non_empty_and_in_range(self):
        with self.assertRaisesRegex(ValueError, "disjoint"):
            _spec(dev_classes=(4,))
        with self.assertRaisesRegex(ValueError, "non-empty"):
            _spec(dev_classes=())
        with self.assertRaisesRegex(ValueError, r"in \[0, 8\)"):
            _spec(test_classes=(6, 9))
        with self.assertRaisesRegex(ValueError, "not old"):
            _spec(relations={6: (5,)})

    def test_configs_of_classes(self):
        spec = _spec()
        train = spec.train_of((6, 7), images_per_class=3, seed=2)
        self.assertEqual((train.classes, train.images_per_class, train.seed), ((6, 7), 3, 2))
        held_out = spec.held_out_of((6, 7))
        self.assertEqual((held_out.classes, held_out.images_per_class), ((6, 7), None))
        self.assertEqual(spec.names((7, 0)), ["c7", "c0"])


class PickNewClassesTest(tf.test.TestCase):
    def test_parents_of_new_classes_stay_old(self):
        # A chain 0 -> 1 -> 2 -> 3 (at most two of 1, 2, 3 can be new) and 0 -> 4, plus
        # four separate parent/child pairs: enough for 4 new classes in any order.
        parents = {0: (), 1: (0,), 2: (1,), 3: (2,), 4: (0,)}
        parents.update({c: ((c - 1,) if c % 2 else ()) for c in range(10, 18)})
        for seed in range(20):
            dev, test = transfer_data.pick_new_classes(parents, 2, 2, seed)
            new = set(dev) | set(test)
            self.assertLen(new, 4)
            self.assertEqual(dev, tuple(sorted(dev)))
            for c in new:
                self.assertTrue(parents[c])
                self.assertFalse(set(parents[c]) & new, (seed, c))

    def test_too_few_candidates(self):
        parents = {0: (), 1: (0,), 2: (1,)}  # 1 and 2 cannot both be new
        with self.assertRaisesRegex(ValueError, "Only 1 classes"):
            transfer_data.pick_new_classes(parents, 1, 1)


class AffinityHitsTest(tf.test.TestCase):
    def test_chance_matches_enumeration(self):
        for num_old, marked, k in ((5, 1, 1), (5, 2, 3), (7, 3, 2), (4, 0, 2)):
            hits = [
                bool(set(c) & set(range(marked))) for c in itertools.combinations(range(num_old), k)
            ]
            self.assertAllClose(transfer_data.chance_of_hit(num_old, marked, k), np.mean(hits))

    def test_hits_against_relations_and_groups(self):
        spec = _spec()
        # Old indices 0..4 are classes 0..4. Class 6 ranks 1 first (related, group a);
        # class 7 ranks 0, 4, 2 (top-1 unrelated and of group a; 2 is related at rank 3).
        top = [[1, 0, 2, 3, 4], [0, 4, 2, 1, 3]]
        one = transfer_data.affinity_hits(spec, (6, 7), top, 1)
        self.assertEqual(one["related"], 0.5)
        self.assertEqual(one["related_counted"], 2)
        self.assertAllClose(one["related_chance"], np.mean([1 / 5, 2 / 5]))
        self.assertEqual(one["same_group"], 0.5)  # 6: 1 is "a"; 7 ("b"): 0 is "a"
        self.assertAllClose(one["same_group_chance"], np.mean([2 / 5, 3 / 5]))
        three = transfer_data.affinity_hits(spec, (6, 7), top, 3)
        self.assertEqual(three["related"], 1.0)

    def test_no_relations(self):
        hits = transfer_data.affinity_hits(_spec(relations={}, groups={}), (6, 7), [[0], [1]], 1)
        self.assertIsNone(hits["related"])
        self.assertIsNone(hits["same_group"])
        self.assertEqual(hits["related_counted"], 0)


class FolderSpecTest(tf.test.TestCase):
    def test_relations_file_and_class_names_of_a_folder(self):
        root = self.create_tempdir().full_path
        for split in ("train", "held_out"):
            for name in ("ant", "bee", "cat", "dog"):
                os.makedirs(os.path.join(root, split, name))
                tf.io.write_file(
                    os.path.join(root, split, name, "a.png"),
                    tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)),
                )
        path = os.path.join(root, "relations.json")
        with open(path, "w") as f:
            json.dump({"relations": {"3": [1, 0]}, "groups": {"0": "insect"}}, f)
        spec = transfer_data.folder_or_tfds_spec(
            "folder",
            32,
            ["0", "1"],
            ["2"],
            ["3"],
            image_folder=os.path.join(root, "train"),
            held_out_folder=os.path.join(root, "held_out"),
            relations_file=path,
        )
        self.assertEqual(spec.class_names, ("ant", "bee", "cat", "dog"))
        self.assertEqual(spec.relations, {3: (0, 1)})
        self.assertEqual(spec.groups, {0: "insect"})
        self.assertEqual(spec.held_out.image_folder, os.path.join(root, "held_out"))
        with self.assertRaisesRegex(ValueError, "held-out folder"):
            transfer_data.folder_or_tfds_spec("folder", 32, ["0"], ["1"], ["2"], image_folder=root)
