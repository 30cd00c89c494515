"""Closest-name suggestions for unknown names ("did you mean ...?")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to `name`, best first (substring matches count as close)."""
    known = list(known)
    matches = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
    for candidate in known:
        if len(matches) >= n:
            break
        if candidate not in matches and (name in candidate or candidate in name):
            matches.append(candidate)
    return matches


def unknown_name_message(kind: str, name: str, known: Iterable[str]) -> str:
    """'unknown strategy 'lorsuu' (did you mean: lorsu?)' -- or the full list when nothing is close."""
    known = sorted(known)
    suggestions = closest(name, known)
    if suggestions:
        return f"unknown {kind} '{name}' (did you mean: {', '.join(suggestions)}?)"
    return f"unknown {kind} '{name}' (known: {', '.join(known)})"
