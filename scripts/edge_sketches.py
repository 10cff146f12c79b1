"""Hand-drawn 16x16 edge maps (white outline on black) for ``ganzoo generate RUN --mode condition --image F`` with
``vqgan_prior_edges``: a T-shirt, trousers, a bag, a sneaker and a dress, drawn with straight lines only.

    python scripts/edge_sketches.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

SKETCHES: dict[str, list[list[tuple[int, int]]]] = {  # polylines on a 16x16 grid
    "tshirt": [[(5, 2), (2, 4), (1, 7), (3, 8), (4, 6), (4, 14), (11, 14), (11, 6), (12, 8), (14, 7), (13, 4),
                (10, 2), (8, 4), (7, 4), (5, 2)]],
    "trousers": [[(4, 1), (11, 1), (12, 14), (9, 14), (8, 5), (7, 5), (6, 14), (3, 14), (4, 1)]],
    "bag": [[(2, 6), (13, 6), (13, 14), (2, 14), (2, 6)], [(5, 6), (5, 3), (10, 3), (10, 6)]],
    "sneaker": [[(1, 8), (6, 7), (9, 5), (11, 8), (14, 10), (14, 12), (1, 12), (1, 8)]],
    "dress": [[(6, 1), (9, 1), (10, 5), (9, 7), (13, 14), (2, 14), (6, 7), (5, 5), (6, 1)]],
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, lines in SKETCHES.items():
        img = Image.new("L", (16, 16), 0)
        draw = ImageDraw.Draw(img)
        for line in lines:
            draw.line(line, fill=255, width=1)
        img.save(out / f"{name}.png")
        print(out / f"{name}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "sketches"))
