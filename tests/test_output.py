"""An answer's output reads back exactly what was appended, from any offset,
in the order its kinds streamed; and a saved turn's columns put it back
together the same, event ids and all."""

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from conversations.providers.kinds import REASONING, REFUSAL, STEP, TEXT, TOOL_CALL, TOOL_RESULT
from conversations.providers.tool_calls import call_text
from conversations.stream.output import MERGE_RUN, Output, result_text, saved_output, step_text

calls = st.builds(call_text, st.text(max_size=6), st.text(max_size=6), st.text(max_size=12))
outcomes = st.one_of(
    st.builds(lambda o: {"output": o}, st.text(max_size=8)), st.builds(lambda e: {"error": e}, st.text())
)
results = st.builds(
    lambda id, name, outcome, ms: result_text({"id": id, "name": name, **outcome, "duration_ms": ms}),
    st.text(max_size=6),
    st.text(max_size=6),
    outcomes,
    st.integers(0, 10**6),
)


def numbered_steps(parts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A tool loop's steps numbered from 2, as the relay numbers them."""
    steps = iter(range(2, len(parts) + 2))
    return [(kind, step_text(next(steps)) if kind == STEP else text) for kind, text in parts]


pieces = st.lists(
    st.one_of(
        st.tuples(st.sampled_from([TEXT, REASONING, REFUSAL]), st.text(min_size=1, max_size=8)),
        st.tuples(st.just(TOOL_CALL), calls),
        st.tuples(st.just(TOOL_RESULT), results),
        st.tuples(st.just(STEP), st.just("")),
    ),
    max_size=3 * MERGE_RUN + 5,
).map(numbered_steps)


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


def test_an_offset_inside_a_tool_result_or_step_gives_the_whole_of_it():
    result = result_text({"id": "c1", "name": "f", "output": "5", "duration_ms": 2})
    output = built([(TOOL_RESULT, result), (STEP, step_text(2)), (TEXT, "ok")])
    assert output.since(3) == [(TOOL_RESULT, result, len(result)), (STEP, '{"n":2}', len(result) + 7)] + [
        (TEXT, "ok", len(result) + 9)
    ]
    assert output.since(len(result) + 1)[0] == (STEP, '{"n":2}', len(result) + 7)


def test_a_results_text_does_not_depend_on_its_keys_order():
    stored = {"duration_ms": 2, "output": "5", "name": "f", "id": "c1"}  # jsonb reorders keys
    assert result_text(stored) == '{"id":"c1","name":"f","output":"5","duration_ms":2}'


def test_text_only_answers_save_no_runs():
    assert built([(TEXT, "a"), (TEXT, "b")]).parts().output_runs == []
    assert built([(REASONING, "a"), (TEXT, "b")]).parts().output_runs == [[REASONING, 1], [TEXT, 1]]


def test_pieces_are_merged_in_runs():
    output = Output()
    for index in range(10 * MERGE_RUN + 3):
        output.append(f"t{index} ")
    assert len(output._pieces) == 10 + 3
