"""An answer's output reads back exactly what was appended, from any offset,
in the order its kinds streamed; and a saved turn's columns put it back
together the same, event ids and all."""

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from conversations.providers.kinds import REASONING, REFUSAL, TEXT, TOOL_CALL
from conversations.providers.tool_calls import call_text
from conversations.stream.output import MERGE_RUN, Output, saved_output

calls = st.builds(call_text, st.text(max_size=6), st.text(max_size=6), st.text(max_size=12))
pieces = st.lists(
    st.one_of(
        st.tuples(st.sampled_from([TEXT, REASONING, REFUSAL]), st.text(min_size=1, max_size=8)),
        st.tuples(st.just(TOOL_CALL), calls),
    ),
    max_size=3 * MERGE_RUN + 5,
)


def built(parts) -> Output:
    output = Output()
    for kind, text in parts:
        output.append(text, kind)
    return output


def boundaries(parts) -> list[int]:
    """Every offset an event id can name: the ends of the pieces."""
    ends, total = [0], 0
    for _, text in parts:
        total += len(text)
        ends.append(total)
    return ends


@given(pieces, st.data())
def test_since_gives_the_rest_in_order(parts, data):
    output = built(parts)
    whole = "".join(text for _, text in parts)
    offset = data.draw(st.sampled_from(boundaries(parts)))
    segments = output.since(offset)
    assert str(output) == whole and output.length == len(whole)
    assert "".join(text for _, text, _ in segments) == whole[offset:]
    kinds_after = [kind for kind, text in parts for _ in text][offset:]
    assert [kind for kind, text, _ in segments for _ in text] == kinds_after
    if segments:
        assert segments[-1][2] == len(whole)


@given(pieces)
def test_reading_as_it_grows_misses_and_repeats_nothing(parts):
    output, read = Output(), []
    for kind, text in parts:
        output.append(text, kind)
        read += output.since(sum(len(text) for _, text, _ in read))
    assert "".join(text for _, text, _ in read) == "".join(text for _, text in parts)
    assert [end for _, _, end in read] == sorted({end for _, _, end in read})


@given(pieces, st.data())
def test_a_saved_turn_replays_the_same_events(parts, data):
    output = built(parts)
    saved = output.parts()
    turn = SimpleNamespace(**vars(saved))
    offset = data.draw(st.sampled_from(boundaries(parts)))
    assert saved_output(turn).since(offset) == output.since(offset)


def test_an_offset_inside_a_tool_call_gives_the_whole_call():
    call = call_text("call_1", "lookup", '{"q": "x"}')
    output = built([(REASONING, "hmm"), (TOOL_CALL, call), (TEXT, "ok")])
    assert output.since(5) == [(TOOL_CALL, call, 3 + len(call)), (TEXT, "ok", 5 + len(call))]


def test_text_only_answers_save_no_runs():
    assert built([(TEXT, "a"), (TEXT, "b")]).parts().output_runs == []
    assert built([(REASONING, "a"), (TEXT, "b")]).parts().output_runs == [[REASONING, 1], [TEXT, 1]]


def test_pieces_are_merged_in_runs():
    output = Output()
    for index in range(10 * MERGE_RUN + 3):
        output.append(f"t{index} ")
    assert len(output._pieces) == 10 + 3
