"""Inline `<think>…</think>` is split from the answer the same however the
server cut the text into chunks."""

from hypothesis import given
from hypothesis import strategies as st

from conversations.providers.kinds import REASONING, TEXT
from conversations.providers.think import ThinkSplitter

words = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="<>\x00"), min_size=1, max_size=30)


def split(text: str, cuts: list[int]) -> list[tuple[str, str]]:
    splitter, out = ThinkSplitter(), []
    bounds = sorted({min(cut, len(text)) for cut in cuts} | {0, len(text)})
    for start, end in zip(bounds, bounds[1:], strict=False):
        out += splitter.feed(text[start:end])
    out += splitter.finish()
    merged: list[tuple[str, str]] = []
    for kind, piece in out:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + piece)
        else:
            merged.append((kind, piece))
    return merged


@given(words, words, st.lists(st.integers(0, 80), max_size=12))
def test_any_chunking_gives_the_same_reasoning_and_answer(thought, answer, cuts):
    thought, answer = thought.strip() or "hm", answer.strip() or "ok"
    text = f"\n<think>\n{thought}\n</think>\n\n{answer}"
    assert split(text, cuts) == [(REASONING, thought), (TEXT, answer)]


@given(words, st.lists(st.integers(0, 40), max_size=8))
def test_text_without_a_leading_tag_is_all_answer(answer, cuts):
    answer = "x" + answer  # not blank, not the start of a tag
    assert split(answer, cuts) == [(TEXT, answer)]


def test_reasoning_cut_short_is_kept_as_reasoning():
    assert split("<think>still thinking</th", [5, 12]) == [(REASONING, "still thinking</th")]


def test_a_tag_later_in_the_answer_is_text():
    assert split("Use <think> tags", [3, 6]) == [(TEXT, "Use <think> tags")]
