"""The data of the transfer benchmark: one data set and the role of each of its classes.

A `DataSpec` names a train split and a held-out split of one data set (TFDS, or two image
folders with the same class sub-folders) and splits its classes three ways:

* **old** classes: the source BigGAN is pre-trained on their train images;
* **dev** new classes: every method's learning rate is chosen on them;
* **test** new classes: the reported numbers are measured on them, with the chosen
  learning rates, never tuned on.

Optionally it knows which old classes each new class is related to (`relations`) and a
group of every class (`groups`, e.g. the race of a Wesnoth unit): the benchmark then
checks whether kp_bn's learned class affinities point at them.

`wesnoth_spec` builds the spec of the `wesnoth_units` sprites (upgrade tree as
relations, race as groups); `folder_or_tfds_spec` that of any other data set.
"""

import dataclasses
import json
from typing import Dict, Tuple

import numpy as np

from tf_cgan_transfer import data
from tf_cgan_transfer import wesnoth_units


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """One data set and its class roles.

    Attributes:
      name: for the report.
      train: every class's train images (`classes=None`, label = the data set's id).
      held_out: every class's held-out images (the same ids); no training step and no
        feature network sees them.
      old_classes, dev_classes, test_classes: disjoint sorted class ids.
      class_names: name of every class id.
      relations: new class id -> the old class ids it is related to (may be empty).
      groups: class id -> a group name (e.g. race); may be empty.
      mirror_invariant: a mirrored image shows the same class (the domain classifier
        then also trains on mirror images).
    """

    name: str
    train: data.DataConfig
    held_out: data.DataConfig
    old_classes: Tuple[int, ...]
    dev_classes: Tuple[int, ...]
    test_classes: Tuple[int, ...]
    class_names: Tuple[str, ...]
    relations: Dict[int, Tuple[int, ...]] = dataclasses.field(default_factory=dict)
    groups: Dict[int, str] = dataclasses.field(default_factory=dict)
    mirror_invariant: bool = True

    def __post_init__(self):
        roles = (self.old_classes, self.dev_classes, self.test_classes)
        ids = [c for role in roles for c in role]
        if len(set(ids)) != len(ids):
            raise ValueError("old, dev and test classes must be disjoint.")
        if not all(roles):
            raise ValueError("old, dev and test classes must each be non-empty.")
        if any(c < 0 or c >= len(self.class_names) for c in ids):
            raise ValueError(f"class ids must be in [0, {len(self.class_names)}).")
        old = set(self.old_classes)
        for new, related in self.relations.items():
            if not set(related) <= old:
                raise ValueError(f"relations[{new}] names classes that are not old: {related}.")

    @property
    def num_classes(self):
        return len(self.class_names)

    def train_of(self, classes, images_per_class=None, seed=0):
        """The train images of `classes` (label i = classes[i]), capped per class."""
        return dataclasses.replace(
            self.train, classes=tuple(classes), images_per_class=images_per_class, seed=seed
        )

    def held_out_of(self, classes):
        """Every held-out image of `classes` (label i = classes[i])."""
        return dataclasses.replace(self.held_out, classes=tuple(classes))

    def names(self, classes):
        return [self.class_names[c] for c in classes]


def pick_new_classes(parents, num_dev, num_test, seed=0):
    """`(dev, test)`: new classes whose upgrade parents all stay old.

    Candidates are the classes with at least one parent class; they are visited in an
    order drawn from `seed` and taken unless one of their parents is already new or
    they are a parent of a class already taken, until `num_dev + num_test` are taken.

    Args:
      parents: class id -> the class ids it advances from.
      num_dev, num_test: how many of each.
      seed: the draw.

    Raises:
      ValueError: too few candidates.
    """
    candidates = sorted(c for c, p in parents.items() if p)
    order = np.random.default_rng(seed).permutation(candidates)
    chosen = []
    for c in (int(c) for c in order):
        if len(chosen) == num_dev + num_test:
            break
        if set(parents[c]) & set(chosen) or any(c in parents[x] for x in chosen):
            continue
        chosen.append(c)
    if len(chosen) < num_dev + num_test:
        raise ValueError(
            f"Only {len(chosen)} classes with an upgrade parent can be new while their "
            f"parents stay old; asked for {num_dev} dev + {num_test} test."
        )
    return tuple(sorted(chosen[:num_dev])), tuple(sorted(chosen[num_dev:]))


def wesnoth_spec(data_dir, manual_dir=None, resolution=32, num_dev=8, num_test=8, seed=0):
    """The spec of `wesnoth_units/<resolution>`, prepared into `data_dir` if needed.

    New classes are drawn by `pick_new_classes` from the units that advance from another
    unit of the data set; every other unit is old. A new class's relations are its upgrade
    parents and children among the old classes; groups are races.

    Args:
      data_dir: TFDS data directory.
      manual_dir: the Wesnoth `data/core` folder (needed only to prepare).
      resolution: 32 or 64.
      num_dev, num_test: new classes of each role.
      seed: the draw of the new classes.
    """
    builder = wesnoth_units.prepare(data_dir, manual_dir, str(resolution))
    units = wesnoth_units.relations(builder)
    parents = {c: tuple(u["parents"]) for c, u in units.items()}
    dev, test = pick_new_classes(parents, num_dev, num_test, seed)
    new = set(dev) | set(test)
    old = tuple(sorted(set(units) - new))
    related = wesnoth_units.related_classes(builder, sorted(new), old)
    name = f"{wesnoth_units.NAME}/{resolution}"
    split = dict(dataset=name, data_dir=data_dir, resolution=resolution)
    return DataSpec(
        name=name,
        train=data.DataConfig(split="train", **split),
        held_out=data.DataConfig(split="test", **split),
        old_classes=old,
        dev_classes=dev,
        test_classes=test,
        class_names=tuple(units[c]["name"] for c in sorted(units)),
        relations={int(c): tuple(related[c]) for c in related},
        groups={c: units[c]["race"] for c in units},
    )


def _ids(text):
    return tuple(sorted(int(c) for c in text))


def folder_or_tfds_spec(
    dataset,
    resolution,
    old_classes,
    dev_classes,
    test_classes,
    data_dir=None,
    train_split="train",
    held_out_split="test",
    image_folder=None,
    held_out_folder=None,
    relations_file=None,
    mirror_invariant=True,
):
    """The spec of a TFDS data set or of two image folders (train, held out).

    `relations_file` is a JSON object {"relations": {new id: [old ids]}, "groups":
    {id: name}} (both optional); class names come from the data set.
    """
    if dataset == data.FOLDER:
        if not (image_folder and held_out_folder):
            raise ValueError("An image-folder benchmark needs the train and the held-out folder.")
        train = data.DataConfig(
            dataset=data.FOLDER, image_folder=image_folder, resolution=resolution
        )
        held_out = dataclasses.replace(train, image_folder=held_out_folder)
    else:
        train = data.DataConfig(
            dataset=dataset, split=train_split, data_dir=data_dir, resolution=resolution
        )
        held_out = dataclasses.replace(train, split=held_out_split)
    names = tuple(data.describe(train).class_names)
    relations, groups = {}, {}
    if relations_file:
        with open(relations_file) as f:
            table = json.load(f)
        relations = {int(k): _ids(v) for k, v in table.get("relations", {}).items()}
        groups = {int(k): str(v) for k, v in table.get("groups", {}).items()}
    return DataSpec(
        name=dataset if dataset != data.FOLDER else image_folder,
        train=train,
        held_out=held_out,
        old_classes=_ids(old_classes),
        dev_classes=_ids(dev_classes),
        test_classes=_ids(test_classes),
        class_names=names,
        relations=relations,
        groups=groups,
        mirror_invariant=mirror_invariant,
    )


def chance_of_hit(num_old, num_related, top_k):
    """P(at least one of `num_related` marked old classes among `top_k` drawn at random)."""
    if num_related <= 0:
        return 0.0
    miss = 1.0
    for i in range(top_k):
        miss *= max(0, num_old - num_related - i) / (num_old - i)
    return 1.0 - miss


def affinity_hits(spec, new_classes, top_old, top_k):
    """Hit rates of learned affinities against the spec's relations and groups.

    Args:
      spec: the `DataSpec`.
      new_classes: the data set ids of the run's new classes (its label order).
      top_old: per new class (same order), the source's old class indices (0..K-1 in
        `spec.old_classes` order) ranked by affinity, best first.
      top_k: how many of them count.

    Returns:
      dict: `related` / `same_group` hit shares over the new classes that have relations
      (groups), their chance levels, and `counted` new classes; None entries when no
      new class has any.
    """
    old = spec.old_classes
    out = dict(top_k=top_k)
    for key, marked_of in (
        ("related", lambda n: set(spec.relations.get(n, ()))),
        (
            "same_group",
            lambda n: {o for o in old if spec.groups and spec.groups.get(o) == spec.groups.get(n)},
        ),
    ):
        hits, chances = [], []
        for n, ranked in zip(new_classes, top_old):
            marked = marked_of(n)
            if not marked:
                continue
            picked = {old[k] for k in ranked[:top_k]}
            hits.append(float(bool(picked & marked)))
            chances.append(chance_of_hit(len(old), len(marked), top_k))
        out[key] = float(np.mean(hits)) if hits else None
        out[f"{key}_chance"] = float(np.mean(chances)) if chances else None
        out[f"{key}_counted"] = len(hits)
    return out


def describe_roles(spec):
    """Readable lines naming every new class and its relations (for the report)."""
    lines = []
    for role, classes in (("dev", spec.dev_classes), ("test", spec.test_classes)):
        for c in classes:
            related = ", ".join(spec.class_names[o] for o in spec.relations.get(c, ())) or "-"
            group = spec.groups.get(c, "")
            lines.append(f"{role}: {spec.class_names[c]} ({group}); related old: {related}")
    return lines
