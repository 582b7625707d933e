from __future__ import annotations

import pytest

from core.patterns import PatternError, pattern_problem, pattern_search


def test_a_bad_or_oversized_pattern_is_named():
    assert pattern_problem("(unclosed")
    assert pattern_problem("x" * 600)
    assert pattern_problem(None) == "it must be text"
    assert pattern_problem(r"^\d+$") == ""


def test_a_search_matches_like_re():
    assert pattern_search(r"^acme-\d+$", "acme-42")
    assert not pattern_search(r"^acme-\d+$", "acme")


def test_a_backtracking_search_is_stopped_with_a_clear_error():
    with pytest.raises(PatternError, match=r"took longer than 0\.05 s"):
        pattern_search(r"(a|aa)+$", "a" * 60 + "b", timeout=0.05)


def test_an_invalid_pattern_raises_a_pattern_error():
    with pytest.raises(PatternError, match="invalid regular expression"):
        pattern_search("(", "anything")
