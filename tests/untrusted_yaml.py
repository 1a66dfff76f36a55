"""Hostile YAML for the tests that config is handled as untrusted input."""

from __future__ import annotations


def alias_bomb(levels: int) -> str:
    """A ConfigMap of a few hundred bytes whose aliases stand for 9**levels strings."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}", "data:",
             '  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]"
              for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"
