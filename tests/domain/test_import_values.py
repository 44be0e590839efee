"""How an import reads ids and cells: one identity for an id, invisible characters dropped."""

from __future__ import annotations

import sys
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from bidhub.domain.imports import FORMAT_CHARACTERS, clean_cell, id_key

IDS = st.text(alphabet=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."), min_size=1,
              max_size=12)
INVISIBLE = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u00ad"])


def full_width(text: str) -> str:
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


def test_the_invisible_characters_are_exactly_unicode_format_characters():
    for point in range(sys.maxunicode + 1):
        char = chr(point)
        category = unicodedata.category(char)
        matched = FORMAT_CHARACTERS.fullmatch(char) is not None
        # Code points later Unicode versions made format characters may be listed already.
        assert matched == (category == "Cf") or (matched and category == "Cn"), hex(point)


@settings(max_examples=200, deadline=None)
@given(IDS, st.lists(st.tuples(st.integers(0, 12), INVISIBLE), max_size=3),
       st.sampled_from([str.lower, str.upper, full_width, str]), st.sampled_from(["", " ", "\u3000"]))
def test_an_id_keeps_its_identity_in_any_case_width_or_with_invisible_characters(
        external_id, inserted, variant, space):
    written = variant(external_id)
    for position, char in inserted:
        written = written[:position] + char + written[position:]
    assert id_key(space + written + space) == id_key(external_id)


@settings(max_examples=200, deadline=None)
@given(IDS, IDS)
def test_ids_that_differ_other_than_in_case_are_different(first, second):
    if first.lower() != second.lower():
        assert id_key(first) != id_key(second)


def test_punctuation_in_an_id_is_significant_and_cells_lose_only_invisible_characters():
    assert len({id_key(value) for value in ("KA-20-11", "KA-2011", "ka_20_11")}) == 3
    assert id_key("KA-3001") == id_key("ka-3001") == id_key("ＫＡ－３００１")
    assert clean_cell("\ufeff 北京\u200b智联 \u3000") == "北京智联"
    assert clean_cell("ＡＢＣ") == "ＡＢＣ"  # names keep their width
