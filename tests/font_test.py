"""Tests of tf_cgan_transfer.font: glyph table, sanitizing, wrapping and rendering."""

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import font


class GlyphTest(tf.test.TestCase):
    def test_every_glyph_is_5x8_and_letters_and_digits_are_distinct(self):
        for char, bitmap in font.BITMAPS.items():
            self.assertEqual(bitmap.shape, (font.GLYPH_HEIGHT, font.GLYPH_WIDTH), char)
        drawn = [c for c in font.BITMAPS if c.isalnum()]
        self.assertLen(drawn, 26 + 26 + 10)
        as_bytes = {font.BITMAPS[c].tobytes() for c in drawn}
        self.assertLen(as_bytes, len(drawn))  # no two characters look the same
        self.assertFalse(font.BITMAPS[" "].any())
        self.assertTrue(all(font.BITMAPS[c].any() for c in font.BITMAPS if c != " "))

    def test_a_glyph_as_drawn(self):
        expected = [
            ".###.",
            "#...#",
            "#...#",
            "#####",
            "#...#",
            "#...#",
            "#...#",
            ".....",
        ]
        drawn = ["".join("#" if v else "." for v in row) for row in font.BITMAPS["A"]]
        self.assertEqual(drawn, expected)


class TextTest(tf.test.TestCase):
    def test_sanitize(self):
        self.assertEqual(font.sanitize("Crème  brûlée\t(x)"), "Creme brulee (x)")
        self.assertEqual(font.sanitize("a|b\nc"), "a?b c")  # no glyph for "|"
        self.assertEqual(font.sanitize(7), "7")

    def test_truncate(self):
        self.assertEqual(font.truncate("yellow_ring", 20), "yellow_ring")
        self.assertEqual(font.truncate("yellow_ring", 8), "yellow..")
        self.assertLen(font.truncate("x" * 50, 3), 3)

    def test_wrap(self):
        self.assertEqual(font.wrap("red disk", 16, 3), ["red disk"])
        self.assertEqual(font.wrap("blue_triangle_small", 10, 3), ["blue_", "triangle_", "small"])
        self.assertEqual(font.wrap("Pink Primrose of the valley", 8, 2), ["Pink", "Primro.."])
        self.assertEqual(font.wrap("n01440764", 4, 2), ["n014", "40.."])  # a long word splits
        self.assertEqual(font.wrap("", 8), [""])
        for lines in (font.wrap("a" * 100, 7, 3), font.wrap("b c " * 30, 7, 3)):
            self.assertLessEqual(len(lines), 3)
            self.assertTrue(all(len(line) <= 7 for line in lines))

    def test_render(self):
        mask = font.render(["AB", "C"], scale=2)
        self.assertEqual(mask.shape, (2 * font.LINE_HEIGHT * 2, 2 * font.ADVANCE * 2))
        self.assertEqual(mask.dtype, bool)
        # Each pixel is a 2x2 block; the first glyph is A's.
        self.assertAllEqual(mask[0:16:2, 0:10:2], font.BITMAPS["A"])
        self.assertAllEqual(mask[::2, ::2][font.LINE_HEIGHT :][:8, :5], font.BITMAPS["C"])
        self.assertFalse(mask[:, 10:12].any())  # the blank column between A and B
        self.assertEqual(font.text_width("AB", scale=2), (2 * font.ADVANCE - 1) * 2)
        self.assertFalse(np.any(font.render([" "])))


if __name__ == "__main__":
    tf.test.main()
