"""Pictures a person reads: sample sheets with class names, and labelled heat maps.

`labelled_grid` is `images.make_grid` with a column at the left naming each row's class
(white on black, like the grid's padding), so its image cells are exactly the unlabelled
grid's; `sample_sheet` draws a generator's sheet (`sampling.sheet`) that way, the one
maker the trainer, `sample` and `hub_convert` share. `heatmap` draws a matrix of values
with named rows and columns (the class-affinity picture). Text comes from the built-in
bitmap font (`font`): no font rasteriser is a dependency.
"""

import numpy as np

from tf_cgan_transfer import font
from tf_cgan_transfer import images
from tf_cgan_transfer import sampling

MAX_LABEL_CHARS = 16  # per line of a row label; longer names wrap, then are cut
MAX_LABEL_LINES = 3
MAX_HEATMAP_LABEL_CHARS = 24
INK, BACKGROUND = 255, 0
# Heat map cells: white at 0, towards blue for positive and red for negative weights.
POSITIVE_RGB, NEGATIVE_RGB = (8, 69, 148), (165, 15, 21)


def _text_scale(cell_height):
    """Font magnification for rows `cell_height` pixels tall (1 up to 63 px, at most 3)."""
    return int(np.clip(cell_height // 32, 1, 3))


def _paste(canvas, mask, top, left, colour):
    """Sets `canvas[top:, left:]` to `colour` where `mask` is True (clipped to the canvas)."""
    h = max(min(mask.shape[0], canvas.shape[0] - top), 0)
    w = max(min(mask.shape[1], canvas.shape[1] - left), 0)
    region = canvas[top : top + h, left : left + w]
    region[mask[:h, :w]] = colour


def _drawn_height(lines, scale):
    """Pixel height of `font.render(lines, scale)` without the blank row after the last."""
    return (len(lines) * font.LINE_HEIGHT - 1) * scale


def label_column(names, rows, cell_height, padding):
    """The label column of a grid: each row's name, vertically centred on its row.

    Args:
      names: one name per row (any text: it is sanitized, wrapped to
        `MAX_LABEL_CHARS` per line and at most `MAX_LABEL_LINES` lines that fit the row,
        and cut with `..` beyond).
      rows: the grid's rows.
      cell_height: the height of one image of the grid.
      padding: the grid's padding (`images.make_grid`'s).

    Returns:
      uint8 `[rows * (cell_height + padding) + padding, L, 3]`, L the widest label plus
      margins.
    """
    scale = _text_scale(cell_height)
    max_lines = int(np.clip(cell_height // (font.LINE_HEIGHT * scale), 1, MAX_LABEL_LINES))
    wrapped = [font.wrap(name, MAX_LABEL_CHARS, max_lines) for name in names]
    margin = 2 * scale
    width = max(font.text_width(line, scale) for lines in wrapped for line in lines)
    column = np.full(
        [rows * (cell_height + padding) + padding, width + 2 * margin, 3], BACKGROUND, np.uint8
    )
    for row, lines in enumerate(wrapped):
        top = padding + row * (cell_height + padding)
        offset = max((cell_height - _drawn_height(lines, scale)) // 2, 0)
        _paste(column, font.render(lines, scale), top + offset, margin, INK)
    return column


def labelled_grid(pictures, rows, names=None, padding=2):
    """`images.make_grid(pictures, rows, padding)` with each row's name at its left.

    Args:
      pictures: `[rows * cols, H, W, 3]` floats in [-1, 1] or uint8, row-major.
      rows: rows of the grid.
      names: one name per row, or None for the plain grid.
      padding: pixels of black between images.

    Returns:
      uint8 `[rows * (H + p) + p, L + cols * (W + p) + p, 3]` (L = 0 without names); the
      columns from L on are the plain grid.

    Raises:
      ValueError: `names` does not give one name per row.
    """
    grid = np.asarray(images.make_grid(pictures, rows=rows, padding=padding))
    if names is None:
        return grid
    if len(names) != rows:
        raise ValueError(f"{len(names)} row names for a grid of {rows} rows.")
    cell_height = (grid.shape[0] - padding) // rows - padding
    return np.concatenate([label_column(names, rows, cell_height, padding), grid], axis=1)


def sample_sheet(generator, class_ids, samples_per_class, names=None, **sheet_kwargs):
    """`sampling.sheet` of `class_ids` as a uint8 grid, rows named after their classes.

    Args:
      generator: a `biggan.Generator`.
      class_ids: the class of each row.
      samples_per_class: images per row.
      names: the name of every class of the generator (row r is named
        `names[class_ids[r]]`), or None for an unlabelled sheet.
      **sheet_kwargs: `sampling.sheet`'s truncation, seed and batch_size.

    Returns:
      uint8 `[rows * (R + 2) + 2, L + cols * (R + 2) + 2, 3]` (`labelled_grid`).
    """
    class_ids = list(class_ids)
    pictures = sampling.sheet(generator, class_ids, samples_per_class, **sheet_kwargs)
    row_names = [names[c] for c in class_ids] if names is not None else None
    return labelled_grid(pictures, len(class_ids), row_names)


def _cell_colour(t):
    """RGB of a cell at `t` in [-1, 1] (the value over the largest magnitude)."""
    target = np.array(POSITIVE_RGB if t >= 0 else NEGATIVE_RGB, np.float64)
    return np.round(255.0 + abs(t) * (target - 255.0)).astype(np.uint8)


def _value_text(value):
    return (f"{value:.2f}" if abs(value) < 10 else f"{value:.0f}")[:5]


def heatmap(values, row_labels, column_labels, title=None, scale=2):
    """A heat map picture: one coloured cell per value, its value printed inside.

    Rows are named at the left, columns above (text reading upwards); white is 0, blue
    positive and red negative, in proportion to the largest magnitude.

    Args:
      values: float `[N, M]`.
      row_labels: N names (sanitized, cut to `MAX_HEATMAP_LABEL_CHARS`).
      column_labels: M names (likewise).
      title: a line drawn above the picture, or None.
      scale: font and cell magnification.

    Returns:
      uint8 `[H, W, 3]` on a white background.

    Raises:
      ValueError: the labels do not match `values`' shape.
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 2 or values.shape != (len(row_labels), len(column_labels)):
        raise ValueError(
            f"values of shape {values.shape} need {values.shape[0]} row and "
            f"{values.shape[-1]} column labels, got {len(row_labels)} and {len(column_labels)}."
        )

    def one_line(label):
        return font.wrap(label, MAX_HEATMAP_LABEL_CHARS)

    rows = [one_line(label) for label in row_labels]
    columns = [one_line(label) for label in column_labels]
    cell_h = (font.GLYPH_HEIGHT + 6) * scale
    cell_w = (5 * font.ADVANCE + 3) * scale  # room for "-0.05"
    margin = 3 * scale
    title_h = (font.LINE_HEIGHT + 2) * scale if title else 0
    left = max(font.text_width(r[0], scale) for r in rows) + 2 * margin
    header = max(font.text_width(c[0], scale) for c in columns) + 2 * margin
    top = title_h + header
    height = top + len(rows) * cell_h + scale + margin
    width = left + len(columns) * cell_w + scale + margin
    if title:
        width = max(width, font.text_width(font.sanitize(title), scale) + 2 * margin)
    canvas = np.full([height, width, 3], 255, np.uint8)
    ink = np.zeros(3, np.uint8)
    if title:
        _paste(canvas, font.render([font.sanitize(title)], scale), margin, margin, ink)
    biggest = np.abs(values).max() or 1.0
    # Grey lines between (and around) the cells, so white cells keep their edges.
    canvas[top : top + len(rows) * cell_h + scale, left : left + len(columns) * cell_w + scale] = (
        190
    )
    for i, label in enumerate(rows):
        y = top + i * cell_h
        text_top = y + (cell_h - _drawn_height(label, scale)) // 2
        _paste(canvas, font.render(label, scale), text_top, margin, ink)
        for j, value in enumerate(values[i]):
            x = left + j * cell_w
            t = value / biggest
            canvas[y + scale : y + cell_h, x + scale : x + cell_w] = _cell_colour(t)
            text = _value_text(value)
            mask = font.render([text], scale)
            colour = 255 if abs(t) > 0.5 else 0  # legible on dark and light cells
            text_left = x + scale + (cell_w - scale - font.text_width(text, scale)) // 2
            _paste(canvas, mask, text_top, text_left, colour)
    for j, label in enumerate(columns):
        # Rotated a quarter turn anticlockwise: the name reads upwards, ending at the cells.
        mask = np.rot90(font.render(label, scale)[: _drawn_height(label, scale)])
        x = left + j * cell_w + (cell_w - mask.shape[1]) // 2
        _paste(canvas, mask, top - margin - mask.shape[0], x, ink)
    return canvas
