"""The answer's text store reads back exactly what was appended, from any offset."""

from hypothesis import given
from hypothesis import strategies as st

from conversations.stream.text import MERGE_RUN, AnswerText

pieces = st.lists(st.text(max_size=8), max_size=3 * MERGE_RUN + 5)


@given(pieces, st.data())
def test_since_any_offset_is_the_joined_text_after_it(parts, data):
    text = AnswerText()
    for part in parts:
        text.append(part)
    whole = "".join(parts)
    offset = data.draw(st.integers(min_value=0, max_value=len(whole) + 2))
    assert str(text) == whole and text.length == len(whole)
    assert text.since(offset) == whole[offset:]


@given(pieces)
def test_reading_as_it_grows_misses_and_repeats_nothing(parts):
    text, read = AnswerText(), []
    for part in parts:
        text.append(part)
        read.append(text.since(sum(map(len, read))))
    assert "".join(read) == "".join(parts)


def test_pieces_are_merged_in_runs():
    text = AnswerText()
    for index in range(10 * MERGE_RUN + 3):
        text.append(f"t{index} ")
    assert len(text._pieces) == 10 + 3
