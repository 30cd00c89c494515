"""Widget state kept in the page's URL, so that a link (or a refresh) opens the same page with
the same filters, ranking and choices.

Streamlit forgets a widget's state once a run does not draw it (leaving a page reset its
"Rank by"). Here every stateful widget is declared with `restore(key, ...)` just before it is
drawn: the first time (a new session, a shared link, a refresh, or back on its page) its value
comes from the URL's query parameter of the same name, else its default. After the page is
drawn, `publish()` writes the values of the widgets drawn in this run back to the URL and
leaves the other pages' parameters alone, so they survive a visit elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import streamlit as st

_DRAWN = "_url_state_drawn"  # session key: the keys restored in this run, in order
_EMPTY = "-"  # the URL value of an emptied multiselect (no parameter means "the default")


def _decode_one(text: str, kind: type) -> Any:
    if kind is bool:
        return text == "1"
    if kind is date:
        return date.fromisoformat(text)
    return kind(text)


def _encode_one(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def start_run() -> None:
    """Call once at the top of the script: nothing is drawn yet in this run."""
    st.session_state[_DRAWN] = []


def _from_url(key: str, kind: type, many: bool) -> Any:
    if key not in st.query_params:
        return None
    texts = st.query_params.get_all(key)
    try:
        if many:
            return [] if texts == [_EMPTY] else [_decode_one(t, kind) for t in texts]
        return _decode_one(texts[-1], kind)
    except ValueError:  # a hand-edited link: fall back to the default
        return None


def restore(key: str, default: Any, options: Sequence | None = None, kind: type = str,
            many: bool = False, valid: Callable[[Any], bool] | None = None) -> None:
    """Give widget `key` its value from the URL (first draw) or keep the one it has, before it
    is drawn. Values outside `options` (or failing `valid`) are replaced by the default: a link
    may name a preset that has since been filtered out."""
    st.session_state[_DRAWN].append((key, many))
    drawn_before = key in st.session_state
    value = st.session_state[key] if drawn_before else _from_url(key, kind, many)
    if value is None:
        value = default
    fixed = value
    if options is not None:
        allowed = list(options)
        fixed = [v for v in value if v in allowed] if many else \
            (value if value in allowed else default)
    if valid is not None and not valid(fixed):
        fixed = default
    # a widget drawn before keeps its state untouched unless it became invalid: writing it
    # back would override what the user has just chosen
    if not drawn_before or fixed != value:
        st.session_state[key] = fixed


def publish() -> None:
    """Write the widgets drawn in this run to the URL (the other parameters stay)."""
    for key, many in st.session_state.get(_DRAWN, []):
        if key not in st.session_state:
            continue
        value = st.session_state[key]
        if many:
            encoded = [_encode_one(v) for v in value] or [_EMPTY]
            if st.query_params.get_all(key) != encoded:
                st.query_params[key] = encoded
        elif value is None:
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != _encode_one(value):
            st.query_params[key] = _encode_one(value)
