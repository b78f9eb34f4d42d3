"""Avatars drawn from a participant's random seed: a symmetric 5x5 pattern in one colour.

The seed is random and stored (models.avatar_seed_new), never derived from anything about the
workspace, so the picture says nothing about who is behind it."""

import hashlib
import re

SEED = re.compile(r"^[0-9a-f]{8,32}$")
CELL = 10
SIZE = 5


def avatar_svg(seed: str) -> str:
    """The SVG for `seed` (a hex string); ValueError for anything else."""
    if not SEED.match(seed):
        raise ValueError("not an avatar seed")
    digest = hashlib.sha256(seed.encode()).digest()
    hue = digest[0] * 360 // 256
    colour = f"hsl({hue} 62% 48%)"
    cells = []
    for row in range(SIZE):
        for col in range((SIZE + 1) // 2):
            if digest[1 + row * 3 + col] % 2:
                for x in {col, SIZE - 1 - col}:
                    cells.append(
                        f'<rect x="{x * CELL + 5}" y="{row * CELL + 5}" '
                        f'width="{CELL}" height="{CELL}"/>'
                    )
    side = SIZE * CELL + 10
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" '
        f'width="{side}" height="{side}" role="img" aria-label="Avatar">'
        f'<rect width="{side}" height="{side}" rx="8" fill="hsl({hue} 60% 94%)"/>'
        f'<g fill="{colour}">{"".join(cells)}</g></svg>'
    )
