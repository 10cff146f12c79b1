#!/usr/bin/env python
"""Rebuild the datasets embedded in ganzoo (``ganzoo/data/embedded/*.npz``) from Debian packages.

Sources (``apt-get install dataset-fashion-mnist fonts-noto-color-emoji``):

- ``/usr/share/datasets/fashion-mnist/train-*-idx*-ubyte.gz`` (Fashion-MNIST, MIT licence):
  ``fashion_mnist.npz`` holds a class-balanced subset of the training set: for each class, the first
  ``--per-class`` images of a seeded permutation, kept in their original training-set order.
  ``fashion_mnist_test.npz`` holds ``--test-per-class`` images per class of the *test* set
  (``t10k-*``), chosen the same way: held-out images no model here has seen (``data.split=test``).
- ``/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf`` (Noto Color Emoji, images Apache-2.0, font
  SIL OFL 1.1): ``emoji32.npz`` holds every colour glyph the font can display, found through its
  ``cmap`` (single code points) and ``GSUB`` ligatures (ZWJ sequences, flags, keycaps), rendered by
  Pillow at the 109 px bitmap strike, centred on a transparent square, composited on white and
  shrunk to 32x32 with Lanczos. Glyphs that render empty are skipped; skin-tone variants are left out
  unless ``--skin-tones`` (they are near-duplicates and would double the file). Labels are 9 coarse
  classes approximating the Unicode CLDR emoji groups, from code-point ranges (``EMOJI_RANGES``).

Output is deterministic: fixed seed, sorted order, no timestamps in the arrays.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "ganzoo" / "data" / "embedded"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_PER_CLASS = 900  # 10 x 900 x 784 bytes compress to just under 4 MB
FASHION_SEED = 0
FASHION_TEST_PER_CLASS = 100  # 1,000 held-out test images (about 0.4 MB)
EMOJI_STRIKE = 109  # the only bitmap size in NotoColorEmoji's CBDT table
EMOJI_SIZE = 32

# --------------------------------------------------------------------------------------------------
# Fashion-MNIST


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes into an array of its declared shape."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    zero, dtype, ndim = struct.unpack_from(">HBB", raw, 0)
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    shape = struct.unpack_from(f">{ndim}I", raw, 4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def select_balanced(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` images per class (seeded choice), sorted in original order."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"class {c} has only {len(members)} images, fewer than per_class={per_class}")
        chosen.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(chosen))


def build_fashion(
    src: Path = FASHION_DIR, per_class: int = FASHION_PER_CLASS, seed: int = FASHION_SEED, split: str = "train"
) -> dict:
    """Arrays of ``fashion_mnist.npz`` (``split="train"``) or ``fashion_mnist_test.npz`` (``"t10k"``): images uint8
    [N, 28, 28], labels int64, class_names, source_index (position in that split's original file)."""
    images = read_idx(src / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(src / f"{split}-labels-idx1-ubyte.gz")
    index = select_balanced(labels, per_class, seed)
    return {
        "images": np.ascontiguousarray(images[index]),
        "labels": labels[index].astype(np.int64),
        "class_names": np.array(FASHION_CLASSES),
        "source_index": index.astype(np.int64),
    }


# --------------------------------------------------------------------------------------------------
# Noto Color Emoji: the few OpenType tables needed to list every displayable sequence


def font_tables(data: bytes) -> dict[str, int]:
    """Offsets of the tables of a TrueType/OpenType font."""
    (count,) = struct.unpack_from(">H", data, 4)
    tables = {}
    for i in range(count):
        tag, _checksum, offset, _length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        tables[tag.decode("latin-1")] = offset
    return tables


def read_cmap(data: bytes, offset: int) -> dict[int, int]:
    """Code point -> glyph id from the Unicode full-repertoire subtable (format 12)."""
    _version, count = struct.unpack_from(">HH", data, offset)
    for i in range(count):
        platform, encoding, sub = struct.unpack_from(">HHI", data, offset + 4 + 8 * i)
        start = offset + sub
        if struct.unpack_from(">H", data, start)[0] == 12 and (platform, encoding) in (
            (3, 10),
            (0, 4),
            (0, 6),
        ):
            (groups,) = struct.unpack_from(">I", data, start + 12)
            cmap = {}
            for g in range(groups):
                first, last, glyph = struct.unpack_from(">III", data, start + 16 + 12 * g)
                cmap.update((c, glyph + c - first) for c in range(first, last + 1))
            return cmap
    raise ValueError("the font has no format-12 Unicode cmap subtable")


def read_coverage(data: bytes, offset: int) -> list[int]:
    """Glyph ids of an OpenType coverage table, in coverage-index order."""
    fmt, count = struct.unpack_from(">HH", data, offset)
    if fmt == 1:
        return list(struct.unpack_from(f">{count}H", data, offset + 4))
    glyphs: list[int] = []
    for i in range(count):
        first, last, _start_index = struct.unpack_from(">HHH", data, offset + 4 + 6 * i)
        glyphs.extend(range(first, last + 1))
    return glyphs


def read_ligatures(data: bytes, offset: int) -> list[tuple[int, tuple[int, ...]]]:
    """``(ligature glyph, component glyphs)`` of every GSUB ligature substitution (type 4, or 7 -> 4)."""
    (lookup_list,) = struct.unpack_from(">H", data, offset + 8)
    lookup_list += offset
    (lookups,) = struct.unpack_from(">H", data, lookup_list)
    out = []
    for i in range(lookups):
        lookup = lookup_list + struct.unpack_from(">H", data, lookup_list + 2 + 2 * i)[0]
        kind, _flag, subtables = struct.unpack_from(">HHH", data, lookup)
        for j in range(subtables):
            sub = lookup + struct.unpack_from(">H", data, lookup + 6 + 2 * j)[0]
            sub_kind = kind
            if kind == 7:  # extension: a 32-bit offset to the real subtable
                _fmt, sub_kind, ext = struct.unpack_from(">HHI", data, sub)
                sub += ext
            if sub_kind != 4:
                continue
            _fmt, coverage, sets = struct.unpack_from(">HHH", data, sub)
            firsts = read_coverage(data, sub + coverage)
            for k in range(sets):
                lig_set = sub + struct.unpack_from(">H", data, sub + 6 + 2 * k)[0]
                (ligs,) = struct.unpack_from(">H", data, lig_set)
                for q in range(ligs):
                    lig = lig_set + struct.unpack_from(">H", data, lig_set + 2 + 2 * q)[0]
                    glyph, n = struct.unpack_from(">HH", data, lig)
                    rest = struct.unpack_from(f">{n - 1}H", data, lig + 4)
                    out.append((glyph, (firsts[k], *rest)))
    return out


def emoji_sequences(font_path: Path = EMOJI_FONT) -> list[tuple[int, ...]]:
    """One code-point sequence per reachable glyph, sorted (see ``sequence_preference``)."""
    data = font_path.read_bytes()
    tables = font_tables(data)
    cmap = read_cmap(data, tables["cmap"])
    code_of: dict[int, int] = {}
    for code, glyph in sorted(cmap.items()):
        code_of.setdefault(glyph, code)
    candidates: dict[int, list[tuple[int, ...]]] = {}
    for code, glyph in cmap.items():
        candidates.setdefault(glyph, []).append((code,))
    for glyph, parts in read_ligatures(data, tables["GSUB"]) if "GSUB" in tables else []:
        if all(p in code_of for p in parts):  # components made by other lookups have no code point
            candidates.setdefault(glyph, []).append(tuple(code_of[p] for p in parts))
    return sorted(min(seqs, key=sequence_preference) for seqs in candidates.values())


def sequence_preference(seq: tuple[int, ...]) -> tuple:
    """Sort key choosing one sequence among those that display the same glyph (smallest wins).

    The font maps every ZWJ sequence and its reverse (for right-to-left text) to one glyph, e.g.
    MAN+ZWJ+COOKING and COOKING+ZWJ+MAN. The standard order starts with the base emoji, so prefer the
    shorter sequence, then the one whose first code point has the more "base-like" class
    (``BASE_PRIORITY``), then one starting with an adult (families list adults first).
    """
    return (len(seq), BASE_PRIORITY.index(EMOJI_CLASSES[emoji_class(seq)]), seq[0] not in ADULTS, seq)


# --------------------------------------------------------------------------------------------------
# Emoji classes

EMOJI_CLASSES = (
    "smileys",
    "people",
    "animals_nature",
    "food_drink",
    "travel_places",
    "activities",
    "objects",
    "symbols",
    "flags",
)
DEFAULT_CLASS = "symbols"  # arrows, signs, keycaps, geometric shapes and anything not listed below
BASE_PRIORITY = (
    "flags",
    "people",
    "smileys",
    "animals_nature",
    "food_drink",
    "objects",
    "travel_places",
    "activities",
    "symbols",
)
ADULTS = (0x1F468, 0x1F469, 0x1F9D1)  # MAN, WOMAN, ADULT
SKIN_TONES = range(0x1F3FB, 0x1F3FF + 1)
REGIONAL_INDICATORS = range(0x1F1E6, 0x1F1FF + 1)
TAGS = range(0xE0020, 0xE007F + 1)

# First code point of a sequence -> class, approximating the CLDR groups (unicode.org/emoji/charts).
# Inclusive hex ranges in increasing order; gaps fall back to DEFAULT_CLASS.
EMOJI_RANGES = """
231A-231B travel_places    2328 objects          23F0-23F3 travel_places  2600-2604 travel_places
260E objects               2614 travel_places    2615 food_drink          2618 animals_nature
261D people                2620 smileys          2639-263A smileys        265F-2666 activities
2668 travel_places         2692 objects          2693 travel_places       2694-2697 objects
2699 objects               26A1 travel_places    26B0-26B1 objects        26BD-26BE activities
26C4-26C8 travel_places    26CF objects          26D1 objects             26D3 objects
26E9-26EA travel_places    26F0-26F2 travel_places  26F3 activities       26F4-26F5 travel_places
26F7 people                26F8 activities       26F9 people              26FA travel_places
26FD travel_places         2702 objects          2708 travel_places       2709 objects
270A-270D people           270F objects          2712 objects             2728 activities
2744 travel_places         2763-2764 smileys     2B50 travel_places       1F004 activities
1F0CF activities           1F300-1F32C travel_places  1F32D-1F330 food_drink  1F331-1F335 animals_nature
1F336 food_drink           1F337-1F33C animals_nature  1F33D food_drink   1F33E-1F343 animals_nature
1F344-1F37F food_drink     1F380-1F381 activities  1F382 food_drink       1F383-1F384 activities
1F385 people               1F386-1F38B activities  1F38C flags            1F38D-1F391 activities
1F392-1F393 objects        1F396-1F397 activities  1F399-1F39B objects    1F39E objects
1F39F activities           1F3A0-1F3A2 travel_places  1F3A3 activities    1F3A4-1F3A7 objects
1F3A8 activities           1F3A9 objects         1F3AA travel_places      1F3AB activities
1F3AC objects              1F3AD-1F3B4 activities  1F3B5-1F3BC objects    1F3BD-1F3C0 activities
1F3C1 flags                1F3C2-1F3C4 people    1F3C5-1F3C6 activities   1F3C7 people
1F3C8-1F3C9 activities     1F3CA-1F3CC people    1F3CD-1F3CE travel_places  1F3CF-1F3D3 activities
1F3D4-1F3F0 travel_places  1F3F3-1F3F4 flags     1F3F5 animals_nature     1F3F7 objects
1F3F8 activities           1F3F9 objects         1F3FA food_drink         1F3FB-1F3FF people
1F400-1F43F animals_nature  1F440-1F450 people   1F451-1F462 objects      1F463-1F478 people
1F479-1F47B smileys        1F47C people          1F47D-1F480 smileys      1F481-1F483 people
1F484 objects              1F485-1F487 people    1F488 travel_places      1F489-1F48A objects
1F48B-1F48C smileys        1F48D-1F48E objects   1F48F people             1F490 animals_nature
1F491 people               1F492 travel_places   1F493-1F49F smileys      1F4A1 objects
1F4A2-1F4A6 smileys        1F4A7 travel_places   1F4A8-1F4A9 smileys      1F4AA people
1F4AB-1F4AD smileys        1F4AE animals_nature  1F4AF smileys            1F4B0 objects
1F4B3-1F4B9 objects        1F4BA travel_places   1F4BB-1F4DA objects      1F4DC-1F4F2 objects
1F4F7-1F4FF objects        1F507-1F517 objects   1F525 travel_places      1F526-1F52E objects
1F54A animals_nature       1F54B-1F54D travel_places  1F550-1F567 travel_places  1F56F objects
1F570 travel_places        1F573 smileys         1F574-1F575 people       1F576 objects
1F577-1F578 animals_nature  1F579 activities     1F57A people             1F587-1F58D objects
1F590-1F596 people         1F5A4 smileys         1F5A5-1F5DE objects      1F5E1 objects
1F5E3 people               1F5E8-1F5EF smileys   1F5F3 objects            1F5FA-1F5FE travel_places
1F5FF objects              1F600-1F644 smileys   1F645-1F647 people       1F648-1F64A smileys
1F64B-1F64F people         1F680-1F6A2 travel_places  1F6A3 people        1F6A4-1F6A8 travel_places
1F6A9 flags                1F6AA objects         1F6AC objects            1F6B2 travel_places
1F6B4-1F6B6 people         1F6BD objects         1F6BF objects            1F6C0 people
1F6C1 objects              1F6CB objects         1F6CC people             1F6CD objects
1F6CE travel_places        1F6CF objects         1F6D1 travel_places      1F6D2 objects
1F6D5-1F6D6 travel_places  1F6D7 objects         1F6DD-1F6DF travel_places  1F6E0-1F6E1 objects
1F6E2-1F6F6 travel_places  1F6F7 activities      1F6F8-1F6FC travel_places  1F90C people
1F90D-1F90E smileys        1F90F people          1F910-1F917 smileys      1F918-1F91F people
1F920-1F92F smileys        1F930-1F93E people    1F93F activities         1F940 animals_nature
1F941 objects              1F942-1F944 food_drink  1F945-1F94F activities  1F950-1F96F food_drink
1F970-1F976 smileys        1F977 people          1F978-1F97A smileys      1F97B-1F97F objects
1F980 food_drink           1F981-1F98F animals_nature  1F990-1F991 food_drink  1F992-1F99D animals_nature
1F99E food_drink           1F99F-1F9A9 animals_nature  1F9AA food_drink   1F9AB-1F9AE animals_nature
1F9AF objects              1F9B0-1F9BB people    1F9BC-1F9BD travel_places  1F9BE-1F9BF people
1F9C0-1F9CB food_drink     1F9CC-1F9CF people    1F9D0 smileys            1F9D1-1F9E0 people
1F9E1 smileys              1F9E2-1F9E6 objects   1F9E7-1F9E9 activities   1F9EA-1F9F0 objects
1F9F1 travel_places        1F9F2-1F9F4 objects   1F9F5-1F9F6 activities   1F9F7 objects
1F9F8 activities           1F9F9-1F9FF objects   1FA70-1FA74 objects      1FA75-1FA77 smileys
1FA78-1FA7C objects        1FA80-1FA81 activities  1FA82 travel_places    1FA83-1FA86 activities
1FA87-1FA88 objects        1FA90 travel_places   1FA91-1FAA7 objects      1FAA8 travel_places
1FAA9 activities           1FAAA-1FAAE objects   1FAB0-1FABF animals_nature  1FAC0-1FAC5 people
1FACE-1FACF animals_nature  1FAD0-1FADB food_drink  1FAE0-1FAE5 smileys   1FAE6 people
1FAE7 objects              1FAE8 smileys         1FAF0-1FAF8 people       FE4E5-FE4EE flags
"""


def _parse_ranges(table: str) -> tuple[list[int], list[int], list[int]]:
    tokens = table.split()
    starts, ends, classes = [], [], []
    for span, cls in zip(tokens[0::2], tokens[1::2]):
        lo, _, hi = span.partition("-")
        starts.append(int(lo, 16))
        ends.append(int(hi or lo, 16))
        classes.append(EMOJI_CLASSES.index(cls))
    if starts != sorted(starts) or any(e >= s for e, s in zip(ends, starts[1:])):
        raise ValueError("EMOJI_RANGES must be sorted and must not overlap")
    return starts, ends, classes


_STARTS, _ENDS, _CLASSES = _parse_ranges(EMOJI_RANGES)


def emoji_class(seq: tuple[int, ...]) -> int:
    """Coarse class of an emoji sequence: flag sequences first, then the range of its first code point."""
    if any(c in TAGS for c in seq) or (
        len(seq) >= 2 and seq[0] in REGIONAL_INDICATORS and seq[1] in REGIONAL_INDICATORS
    ):
        return EMOJI_CLASSES.index("flags")
    i = bisect.bisect_right(_STARTS, seq[0]) - 1
    if i >= 0 and seq[0] <= _ENDS[i]:
        return _CLASSES[i]
    return EMOJI_CLASSES.index(DEFAULT_CLASS)


# --------------------------------------------------------------------------------------------------
# Emoji rendering


def load_emoji_font(font_path: Path = EMOJI_FONT) -> ImageFont.FreeTypeFont:
    """The font at its bitmap strike, with complex layout so ligature sequences become one glyph."""
    if not features.check("raqm"):
        raise RuntimeError("Pillow was built without libraqm; it cannot shape emoji sequences (ZWJ, flags).")
    return ImageFont.truetype(str(font_path), EMOJI_STRIKE, layout_engine=ImageFont.Layout.RAQM)


def render_emoji(
    font: ImageFont.FreeTypeFont, seq: tuple[int, ...], size: int = EMOJI_SIZE
) -> np.ndarray | None:
    """``uint8 [size, size, 3]`` on white, or None when the sequence draws nothing."""
    text = "".join(map(chr, seq))
    try:
        left, top, right, bottom = font.getbbox(text)
    except (RuntimeError, OSError):  # control characters the shaper refuses
        return None
    if right <= left or bottom <= top:
        return None
    glyph = Image.new("RGBA", (right - left, bottom - top), (255, 255, 255, 0))
    ImageDraw.Draw(glyph).text((-left, -top), text, font=font, embedded_color=True)
    if glyph.getchannel("A").getbbox() is None:
        return None
    side = max(glyph.size)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    white = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, square).convert("RGB")  # composite first: no dark fringes
    return np.asarray(rgb.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def build_emoji(
    font_path: Path = EMOJI_FONT,
    *,
    size: int = EMOJI_SIZE,
    skin_tones: bool = False,
    limit: int | None = None,
) -> dict:
    """Arrays of ``emoji32.npz``: images uint8 [N, size, size, 3], labels int64, class_names, codepoints.

    ``limit`` stops after that many rendered glyphs (tests rebuild a prefix of the shipped file).
    """
    font = load_emoji_font(font_path)
    images, labels, codes = [], [], []
    for seq in emoji_sequences(font_path):
        if not skin_tones and any(c in SKIN_TONES for c in seq):
            continue
        img = render_emoji(font, seq, size)
        if img is None:
            continue
        images.append(img)
        labels.append(emoji_class(seq))
        codes.append("-".join(f"{c:04X}" for c in seq))
        if limit is not None and len(images) >= limit:
            break
    return {
        "images": np.stack(images),
        "labels": np.array(labels, dtype=np.int64),
        "class_names": np.array(EMOJI_CLASSES),
        "codepoints": np.array(codes),
    }


# --------------------------------------------------------------------------------------------------


def _save(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    counts = np.bincount(arrays["labels"], minlength=len(arrays["class_names"]))
    per_class = ", ".join(f"{n}={c}" for n, c in zip(arrays["class_names"], counts))
    print(f"wrote {path} ({len(arrays['images'])} images, {path.stat().st_size / 1024:.0f} KiB): {per_class}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", choices=("all", "fashion", "emoji"), default="all", help="which file to build"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default: %(default)s)")
    parser.add_argument("--fashion-dir", type=Path, default=FASHION_DIR, help="Fashion-MNIST idx .gz folder")
    parser.add_argument(
        "--per-class", type=int, default=FASHION_PER_CLASS, help="Fashion-MNIST images per class"
    )
    parser.add_argument(
        "--test-per-class", type=int, default=FASHION_TEST_PER_CLASS, help="Fashion-MNIST test images per class"
    )
    parser.add_argument("--seed", type=int, default=FASHION_SEED, help="seed of the Fashion-MNIST subset")
    parser.add_argument("--font", type=Path, default=EMOJI_FONT, help="NotoColorEmoji.ttf")
    parser.add_argument("--size", type=int, default=EMOJI_SIZE, help="emoji image size in pixels")
    parser.add_argument("--skin-tones", action="store_true", help="also keep skin-tone variants (about 2x)")
    args = parser.parse_args(argv)
    if args.only in ("all", "fashion"):
        _save(args.out / "fashion_mnist.npz", build_fashion(args.fashion_dir, args.per_class, args.seed))
        _save(
            args.out / "fashion_mnist_test.npz",
            build_fashion(args.fashion_dir, args.test_per_class, args.seed, split="t10k"),
        )
    if args.only in ("all", "emoji"):
        _save(
            args.out / f"emoji{args.size}.npz",
            build_emoji(args.font, size=args.size, skin_tones=args.skin_tones),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
