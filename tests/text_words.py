"""Made-up words for planted text streams (the tokeniser drops digits, so no numbers)."""

from __future__ import annotations


def letter_word(n: int, prefix: str) -> str:
    """A word of letters only for each number below 26**3: 0 -> prefix + "aaa"."""
    word = ""
    for _ in range(3):
        n, letter = divmod(n, 26)
        word = chr(ord("a") + letter) + word
    return prefix + word
