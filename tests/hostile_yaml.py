"""Hostile YAML for the config tests and the fuzz suite: an alias bomb ("billion laughs")
and a recursive alias."""

from __future__ import annotations


def alias_bomb(levels: int, *, key: str = "market_intel") -> str:
    """``levels`` anchors, each a list of ten aliases of the one before, under ``key``:
    10**levels leaves once expanded, from a few hundred bytes."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    lines.append(f"{key}: *a{levels - 1}")
    return "\n".join(lines) + "\n"


RECURSIVE_ALIAS = "market_intel: &loop\n  again: *loop\n"
"""A mapping that contains itself through an alias."""
