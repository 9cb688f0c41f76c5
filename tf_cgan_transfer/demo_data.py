"""`cgan_demo_shapes`: a procedural TFDS data set for the offline demo and the tests.

Sixteen classes, one per (colour, shape) pair: 4 colours x 4 shapes, label names such as
`"red_disk"`, label id `4 * colour + shape`. Images are 32x32 RGB uint8: a shape of the
class's colour (random position, size, rotation, slight colour jitter) on a textured,
low-saturation background, drawn with NumPy only. Nothing is downloaded, so

    from tf_cgan_transfer import demo_data
    builder = demo_data.prepare("/tmp/tfds")        # or tfds.builder(...).download_and_prepare()

works offline; importing this module registers the builder with TFDS. Generation is
deterministic (a fixed seed per split and class) and takes a few seconds.

Classes share attributes, so new classes can borrow from old ones: `NEW_CLASSES` holds one
(colour, shape) pair per colour and per shape (the diagonal of the 4x4 Latin square), and
`OLD_CLASSES` the other twelve, so each new class's colour and shape both occur among the
old classes.
"""

import dataclasses
import struct
import zlib

import numpy as np
import tensorflow_datasets as tfds

NAME = "cgan_demo_shapes"
SHAPES = ("disk", "square", "triangle", "ring")
COLOURS = ("red", "green", "blue", "yellow")
# Nominal RGB of each colour; images jitter around these.
RGB = {
    "red": (215, 45, 40),
    "green": (45, 175, 60),
    "blue": (45, 75, 215),
    "yellow": (225, 205, 40),
}
CLASS_NAMES = tuple(f"{colour}_{shape}" for colour in COLOURS for shape in SHAPES)
NEW_CLASSES = tuple(len(SHAPES) * i + i for i in range(len(COLOURS)))
OLD_CLASSES = tuple(i for i in range(len(CLASS_NAMES)) if i not in NEW_CLASSES)
IMAGE_SIZE = 32
SEED = 20210619
_SPLIT_SEEDS = {"train": 0, "test": 1}
_SUPERSAMPLE = 2  # shapes are drawn at 2x and box-filtered, for anti-aliased edges


def class_id(colour, shape):
    """Label id of a (colour, shape) pair, e.g. `class_id("red", "disk") == 0`."""
    return len(SHAPES) * COLOURS.index(colour) + SHAPES.index(shape)


def attributes(label):
    """`(colour, shape)` names of a label id."""
    colour, shape = divmod(int(label), len(SHAPES))
    return COLOURS[colour], SHAPES[shape]


def _shape_mask(shape, rng, size):
    """Anti-aliased `[size, size]` float mask in [0, 1] of one randomly placed shape."""
    fine = size * _SUPERSAMPLE
    radius = rng.uniform(0.22, 0.36) * fine
    cy, cx = rng.uniform(radius, fine - radius, size=2)
    angle = rng.uniform(-np.pi / 6, np.pi / 6)
    grid = np.arange(fine, dtype=np.float32) + 0.5
    dy, dx = grid[:, None] - cy, grid[None, :] - cx
    # Coordinates in the shape's own (rotated) frame.
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    if shape == "disk":
        inside = u**2 + v**2 <= radius**2
    elif shape == "square":
        inside = np.maximum(np.abs(u), np.abs(v)) <= 0.8 * radius
    elif shape == "triangle":  # apex up, centred on its centroid
        inside = (v <= 0.5 * radius) & (np.sqrt(3.0) * np.abs(u) <= v + radius)
    elif shape == "ring":
        d2 = u**2 + v**2
        inside = (d2 <= radius**2) & (d2 >= (0.55 * radius) ** 2)
    else:
        raise ValueError(f"Unknown shape {shape!r}; expected one of {SHAPES}.")
    mask = inside.astype(np.float32).reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE)
    return mask.mean(axis=(1, 3))


def _background(rng, size):
    """Grey-ish textured background: a random ramp, soft blobs, a slight tint, noise."""
    level = rng.uniform(70.0, 170.0)
    ramp = rng.uniform(-30.0, 30.0, size=2)
    t = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    grey = level + ramp[0] * t[:, None] + ramp[1] * t[None, :]
    coarse = rng.normal(0.0, 12.0, size=(4, 4)).astype(np.float32)
    grey = grey + np.kron(coarse, np.ones((size // 4, size // 4), np.float32))
    tint = rng.uniform(-8.0, 8.0, size=3).astype(np.float32)
    return grey[..., None] + tint


def make_image(label, rng, size=IMAGE_SIZE):
    """One `[size, size, 3]` uint8 image of class `label`, drawn with the NumPy `rng`."""
    colour, shape = attributes(label)
    mask = _shape_mask(shape, rng, size)[..., None]
    rgb = np.asarray(RGB[colour], np.float32) * rng.uniform(0.85, 1.1)
    rgb = rgb + rng.uniform(-15.0, 15.0, size=3)
    image = (1.0 - mask) * _background(rng, size) + mask * rgb
    image = image + rng.normal(0.0, 5.0, size=image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def generate(label, count, split="train"):
    """The first `count` images of class `label` in `split`, `[count, 32, 32, 3]` uint8.

    Each (split, class) has its own fixed seed, so a class's images do not depend on the
    other classes or on the builder config (a smaller config yields a prefix).
    """
    rng = np.random.default_rng([SEED, _SPLIT_SEEDS[split], int(label)])
    return np.stack([make_image(label, rng) for _ in range(count)])


def encode_png(image):
    """PNG bytes of a `[H, W, 3]` uint8 array (8-bit RGB, no filtering, zlib level 6).

    Written out by hand because it is ~20x faster than TFDS's per-example TF encoder,
    which would otherwise dominate the generation time.
    """
    height, width, channels = image.shape
    if channels != 3 or image.dtype != np.uint8:
        raise ValueError(f"Expected a [H, W, 3] uint8 image, got {image.shape} {image.dtype}.")
    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, -1)], axis=1)

    def chunk(tag, data):
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bit, RGB
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)),
            chunk(b"IEND", b""),
        ]
    )


@dataclasses.dataclass
class CganDemoShapesConfig(tfds.core.BuilderConfig):
    """Sizes of one `cgan_demo_shapes` variant (images per class in each split)."""

    train_per_class: int = 300
    test_per_class: int = 50


class CganDemoShapes(tfds.core.GeneratorBasedBuilder):
    """16 classes of coloured shapes (colour x shape), 32x32, generated offline."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        CganDemoShapesConfig(
            name="default",
            description="300 train and 50 test images per class.",
            train_per_class=300,
            test_per_class=50,
        ),
        CganDemoShapesConfig(
            name="small",
            description="20 train and 5 test images per class (tests, smoke runs).",
            train_per_class=20,
            test_per_class=5,
        ),
    ]

    def _info(self):
        return self.dataset_info_from_configs(
            description=(
                "Procedural coloured shapes: 4 colours x 4 shapes = 16 classes of 32x32 "
                "images for offline conditional-GAN transfer demos."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                    "colour": tfds.features.ClassLabel(names=COLOURS),
                    "shape": tfds.features.ClassLabel(names=SHAPES),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {
            "train": self._generate_examples("train", self.builder_config.train_per_class),
            "test": self._generate_examples("test", self.builder_config.test_per_class),
        }

    def _generate_examples(self, split, per_class):
        for label in range(len(CLASS_NAMES)):
            colour, shape = attributes(label)
            for i, image in enumerate(generate(label, per_class, split)):
                yield f"{CLASS_NAMES[label]}_{i:04d}", {
                    "image": encode_png(image),
                    "label": label,
                    "colour": colour,
                    "shape": shape,
                }


def prepare(data_dir, config="default"):
    """Generates `cgan_demo_shapes/<config>` into `data_dir` (no-op if already there).

    Args:
      data_dir: TFDS data directory.
      config: builder config name, `"default"` (300/50 images per class) or `"small"`.

    Returns:
      The prepared `tfds.core.DatasetBuilder`.
    """
    builder = tfds.builder(f"{NAME}/{config}", data_dir=data_dir)
    builder.download_and_prepare()
    return builder
