"""The three roles of the multi-agent system: their names, letters and order (the one list of them)."""

from __future__ import annotations

#: The roles in pipeline order: the generator answers, the verifier critiques, the refiner answers again.
ROLES: tuple[str, ...] = ("generator", "verifier", "refiner")
#: Each role's letter in ``--agents`` lists and on the leaderboard.
ROLE_LETTERS: dict[str, str] = {"generator": "g", "verifier": "v", "refiner": "r"}
#: Letter -> role.
LETTER_ROLES: dict[str, str] = {letter: role for role, letter in ROLE_LETTERS.items()}
#: The role each role's turn follows (its parent in a MALT tree).
ROLE_PARENT: dict[str, str | None] = {"generator": None, "verifier": "generator", "refiner": "verifier"}


def letters(roles: tuple[str, ...] | list[str]) -> str:
    """``("generator", "refiner")`` -> ``"g,r"`` (names other than roles stay as they are)."""
    return ",".join(ROLE_LETTERS.get(r, r) for r in roles)
