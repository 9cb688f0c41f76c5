"""Tests of tf_cgan_transfer.sheets: labelled sample sheets and heat maps."""

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import font
from tf_cgan_transfer import images
from tf_cgan_transfer import sampling
from tf_cgan_transfer import sheets

R, PAD = 32, 2


def _pictures(rows, cols, size=R, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, [rows * cols, size, size, 3]).astype(np.float32)


class LabelledGridTest(tf.test.TestCase):
    def test_label_column_then_the_unlabelled_grid(self):
        pictures = _pictures(3, 4)
        plain = images.make_grid(pictures, rows=3).numpy()
        names = ["red_disk", "green square", "blue_triangle"]
        sheet = sheets.labelled_grid(pictures, 3, names)
        label_width = sheet.shape[1] - plain.shape[1]
        # 32-pixel rows: scale 1, widest label "blue_triangle" (13 characters) + margins.
        self.assertEqual(label_width, font.text_width("blue_triangle") + 4)
        self.assertEqual(sheet.shape, (plain.shape[0], label_width + plain.shape[1], 3))
        self.assertEqual(sheet.dtype, np.uint8)
        self.assertAllEqual(sheet[:, label_width:], plain)  # image cells untouched
        for row, name in enumerate(names):
            with self.subTest(row=row):
                band = sheet[PAD + row * (R + PAD) :][:R, :label_width]
                self.assertTrue(np.any(band == sheets.INK))  # the name is drawn
                ink = np.flatnonzero((band == sheets.INK).all(-1).any(axis=0))
                # From the left margin on, ending in the name's last character.
                self.assertEqual(ink[0], 2)
                end = 2 + font.text_width(name)
                self.assertBetween(ink[-1] + 1, end - font.GLYPH_WIDTH + 1, end)
        # Between rows (the padding) there is no ink.
        self.assertFalse(np.any(sheet[R + PAD : R + 2 * PAD, :label_width]))

    def test_without_names_it_is_the_plain_grid(self):
        pictures = _pictures(2, 2)
        self.assertAllEqual(
            sheets.labelled_grid(pictures, 2), images.make_grid(pictures, rows=2).numpy()
        )

    def test_different_names_change_only_the_label_column(self):
        pictures = _pictures(2, 3)
        a = sheets.labelled_grid(pictures, 2, ["cat", "dog"])
        b = sheets.labelled_grid(pictures, 2, ["cow", "dog"])
        self.assertEqual(a.shape, b.shape)
        width = a.shape[1] - images.make_grid(pictures, rows=2).shape[1]
        self.assertTrue(np.any(a[:, :width] != b[:, :width]))
        self.assertAllEqual(a[:, width:], b[:, width:])
        self.assertAllEqual(a[PAD + R + PAD :, :width], b[PAD + R + PAD :, :width])

    def test_long_names_wrap_and_are_cut_to_the_row(self):
        pictures = _pictures(2, 1, size=128)
        long_name = "a very long class name that goes on and on and on"
        sheet = sheets.labelled_grid(pictures, 2, [long_name, "x"])
        # 128-pixel rows: scale 3, at most MAX_LABEL_CHARS per line.
        width = sheet.shape[1] - images.make_grid(pictures, rows=2).shape[1]
        self.assertEqual(width, font.text_width("a" * sheets.MAX_LABEL_CHARS, 3) + 2 * 6)
        band = sheet[PAD : PAD + 128, :width]
        rows_with_ink = np.flatnonzero(band.any(axis=(1, 2)))
        lines = font.wrap(long_name, sheets.MAX_LABEL_CHARS, sheets.MAX_LABEL_LINES)
        self.assertLen(lines, sheets.MAX_LABEL_LINES)
        self.assertTrue(lines[-1].endswith(font.ELLIPSIS))
        # The drawn block is centred on the row.
        height = (len(lines) * font.LINE_HEIGHT - 1) * 3
        self.assertLessEqual(rows_with_ink[-1] - rows_with_ink[0] + 1, height)
        self.assertEqual(rows_with_ink[0], (128 - height) // 2)

    def test_one_name_per_row(self):
        with self.assertRaisesRegex(ValueError, "1 row names for a grid of 2 rows"):
            sheets.labelled_grid(_pictures(2, 1), 2, ["only one"])


class SampleSheetTest(tf.test.TestCase):
    def test_rows_are_named_after_their_classes(self):
        tf.keras.utils.set_random_seed(0)
        g = biggan.Generator(32, ch=8, num_classes=3, shared_dim=8, dim_z=8).build_weights()
        names = ["cat", "dog", "fox"]
        sheet = sheets.sample_sheet(g, [2, 0], 2, names, seed=5)
        expected = sheets.labelled_grid(sampling.sheet(g, [2, 0], 2, seed=5), 2, ["fox", "cat"])
        self.assertAllEqual(sheet, expected)
        plain = sheets.sample_sheet(g, [2, 0], 2, seed=5)
        self.assertAllEqual(sheet[:, sheet.shape[1] - plain.shape[1] :], plain)


class HeatmapTest(tf.test.TestCase):
    def test_size_colours_and_labels(self):
        values = np.array([[0.9, 0.0, -0.3], [0.1, 0.45, 0.0]])
        rows, columns = ["red_disk", "ring"], ["3 red_square", "7", "0 blue_ring"]
        picture = sheets.heatmap(values, rows, columns, scale=1)
        cell_h, cell_w = font.GLYPH_HEIGHT + 6, 5 * font.ADVANCE + 3
        left = font.text_width("red_disk") + 6
        top = font.text_width("3 red_square") + 6
        self.assertEqual(picture.shape, (top + 2 * cell_h + 1 + 3, left + 3 * cell_w + 1 + 3, 3))

        def cell_colour(i, j):  # a pixel inside the cell, off its printed value
            return tuple(picture[top + i * cell_h + 2, left + j * cell_w + 2])

        self.assertEqual(cell_colour(0, 0), tuple(sheets._cell_colour(1.0)))  # the largest
        self.assertEqual(cell_colour(0, 0), sheets.POSITIVE_RGB)
        self.assertEqual(cell_colour(0, 1), (255, 255, 255))  # 0 is white
        red = cell_colour(0, 2)
        self.assertGreater(red[0], red[2])  # negative: reddish
        self.assertEqual(cell_colour(1, 1), tuple(sheets._cell_colour(0.5)))
        # Row labels at the left, column labels above, values inside the cells.
        self.assertTrue(np.any(picture[top : top + cell_h, :left] == 0))
        self.assertTrue(np.any(picture[:top, left : left + cell_w] == 0))
        value_cell = picture[top + cell_h : top + 2 * cell_h, left : left + cell_w]
        self.assertTrue(np.any(value_cell.min(-1) < 100))  # "0.10" in dark ink

    def test_title_and_png(self):
        picture = sheets.heatmap([[1.0]], ["a"], ["b"], title="class affinity")
        self.assertGreaterEqual(picture.shape[1], font.text_width("class affinity", 2))
        decoded = tf.io.decode_png(tf.io.encode_png(picture)).numpy()
        self.assertAllEqual(decoded, picture)

    def test_label_counts_must_match(self):
        with self.assertRaisesRegex(ValueError, "need 2 row and 1 column labels, got 1 and 1"):
            sheets.heatmap(np.zeros([2, 1]), ["a"], ["b"])


if __name__ == "__main__":
    tf.test.main()
