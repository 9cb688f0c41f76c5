"""A tiny built-in bitmap font: class names as pixels without a font rasteriser dependency.

Glyphs are 5x8 pixels (capitals and digits in the top 7 rows, descenders in the 8th),
drawn 6 pixels apart, for printable ASCII letters, digits and common punctuation.
`sanitize` turns any name into text the font can draw (accents dropped, other
characters as `?`); `wrap` fits it to a width; `render` draws lines as a mask.
"""

import re
import unicodedata

import numpy as np

GLYPH_WIDTH, GLYPH_HEIGHT = 5, 8
ADVANCE = GLYPH_WIDTH + 1  # one blank column between characters
LINE_HEIGHT = GLYPH_HEIGHT + 1  # one blank row between lines
UNKNOWN = "?"
ELLIPSIS = ".."  # marks a cut name (two dots: one is too easy to miss at 5x8)

# Each glyph: 8 rows as 2 hex digits each, bit 4 the leftmost pixel.
_GLYPHS = {
    "A": "0E11111F11111100", "B": "1E11111E11111E00", "C": "0E11101010110E00",
    "D": "1E11111111111E00", "E": "1F10101E10101F00", "F": "1F10101E10101000",
    "G": "0E11101711110F00", "H": "1111111F11111100", "I": "0E04040404040E00",
    "J": "0702020202120C00", "K": "1112141814121100", "L": "1010101010101F00",
    "M": "111B151511111100", "N": "1111191513111100", "O": "0E11111111110E00",
    "P": "1E11111E10101000", "Q": "0E11111115120D00", "R": "1E11111E14121100",
    "S": "0F10100E01011E00", "T": "1F04040404040400", "U": "1111111111110E00",
    "V": "11111111110A0400", "W": "1111111515150A00", "X": "11110A040A111100",
    "Y": "11110A0404040400", "Z": "1F01020408101F00",
    "a": "00000E010F110F00", "b": "1010161911111E00", "c": "00000E1010110E00",
    "d": "01010D1311110F00", "e": "00000E111F100E00", "f": "0609081C08080800",
    "g": "00000F11110F010E", "h": "1010161911111100", "i": "04000C0404040E00",
    "j": "020006020202120C", "k": "1010121418141200", "l": "0C04040404040E00",
    "m": "00001A1515151500", "n": "0000161911111100", "o": "00000E1111110E00",
    "p": "00001E11111E1010", "q": "00000F11110F0101", "r": "0000161910101000",
    "s": "00000E100E011E00", "t": "08081C0808090600", "u": "0000111111130D00",
    "v": "00001111110A0400", "w": "0000111115150A00", "x": "0000110A040A1100",
    "y": "00001111110F010E", "z": "00001F0204081F00",
    "0": "0E11131519110E00", "1": "040C040404040E00", "2": "0E11010204081F00",
    "3": "1F02040201110E00", "4": "02060A121F020200", "5": "1F101E0101110E00",
    "6": "0608101E11110E00", "7": "1F01020408080800", "8": "0E11110E11110E00",
    "9": "0E11110F01020C00",
    " ": "0000000000000000", "-": "0000001F00000000", "_": "0000000000001F00",
    ".": "00000000000C0C00", ",": "00000000000C0408", ":": "000C0C000C0C0000",
    ";": "000C0C000C040800", "(": "0204080808040200", ")": "0804020202040800",
    "[": "0E08080808080E00", "]": "0E02020202020E00", "/": "0001020408100000",
    "'": "0C04080000000000", '"': "0A0A0A0000000000", "+": "0004041F04040000",
    "&": "0C12140815120D00", "?": "0E11010204000400", "!": "0404040404000400",
    "=": "00001F001F000000", "#": "0A0A1F0A1F0A0A00", "%": "1819020408130300",
    "*": "0004150E15040000", "<": "0204081008040200", ">": "0804020102040800",
}  # fmt: skip


def _bitmap(code):
    rows = bytes.fromhex(code)
    return np.array(
        [[(row >> (GLYPH_WIDTH - 1 - i)) & 1 for i in range(GLYPH_WIDTH)] for row in rows], bool
    )


BITMAPS = {char: _bitmap(code) for char, code in _GLYPHS.items()}


def sanitize(name):
    """`name` as one line the font can draw.

    Accents are dropped (NFKD), whitespace runs become one space, and characters
    without a glyph become `?`.
    """
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = " ".join(text.split())
    return "".join(c if c in BITMAPS else UNKNOWN for c in text)


def truncate(text, max_chars):
    """`text` cut to `max_chars` characters, the cut marked by `ELLIPSIS`."""
    if len(text) <= max_chars:
        return text
    return _cut(text, max_chars)


def _cut(text, max_chars):
    """`text` followed by `ELLIPSIS`, within `max_chars` (more text followed it)."""
    keep = max(max_chars - len(ELLIPSIS), 0)
    return (text[:keep] + ELLIPSIS)[:max_chars]


def wrap(name, max_chars, max_lines=1):
    """A sanitized `name` as at most `max_lines` lines of at most `max_chars` characters.

    Breaks at spaces, and after underscores and hyphens (class names are often
    snake_case), where it can; a longer word is split. Text that does not fit is cut,
    the last line ending in `ELLIPSIS`.
    """
    # Tokens carry the space before them; "_" and "-" end a token.
    tokens = [t for t in re.findall(r" ?[^ _-]*[_-]?", sanitize(name)) if t]
    lines, line = [], ""
    for token in tokens:
        if len(line) + len(token) <= max_chars:
            line += token if line else token.lstrip()
            continue
        if line:
            lines.append(line)
        token = token.lstrip()
        while len(token) > max_chars:
            lines.append(token[:max_chars])
            token = token[max_chars:]
        line = token
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [_cut(lines[max_lines - 1], max_chars)]
    return lines or [""]


def text_width(text, scale=1):
    """Pixel width of one drawn line of `text` (no trailing blank column)."""
    return max(len(text) * ADVANCE - 1, 0) * scale


def render(lines, scale=1):
    """Draws lines of text: bool `[len(lines) * LINE_HEIGHT * scale, width]`, True = ink.

    Args:
      lines: strings (sanitized: characters without a glyph draw as `?`).
      scale: integer magnification of every pixel.
    """
    width = max((len(line) for line in lines), default=0) * ADVANCE
    mask = np.zeros([len(lines) * LINE_HEIGHT, max(width, 1)], bool)
    for row, line in enumerate(lines):
        for col, char in enumerate(line):
            top, left = row * LINE_HEIGHT, col * ADVANCE
            mask[top : top + GLYPH_HEIGHT, left : left + GLYPH_WIDTH] = BITMAPS.get(
                char, BITMAPS[UNKNOWN]
            )
    return np.kron(mask, np.ones([scale, scale], bool)).astype(bool)
