"""Hand-drawn silhouettes for ``ganzoo generate RUN --mode condition --image F`` with ``vqgan_prior_edges``: a
T-shirt, trousers, a bag, a sneaker and a dress as grey polygons on black at the model's 32x32, from which the
prior derives the edge map itself, as it did from every training image. With ``--outline`` the polygons' 16x16
1-pixel outlines are written instead (a condition image given directly, thinner than any derived edge map).

    python scripts/edge_sketches.py OUT_DIR [--outline]
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


def main(out: Path, outline: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, lines in SKETCHES.items():
        img = Image.new("L", (16, 16) if outline else (32, 32), 0)
        draw = ImageDraw.Draw(img)
        for line in lines:
            if outline:
                draw.line(line, fill=255, width=1)
            else:  # the 16x16 polygon at 32x32, filled mid-grey
                draw.polygon([(2 * x + 0.5, 2 * y + 0.5) for x, y in line], fill=170)
        img.save(out / f"{name}.png")
        print(out / f"{name}.png")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--outline"]
    main(Path(args[0] if args else "sketches"), outline="--outline" in sys.argv[1:])
