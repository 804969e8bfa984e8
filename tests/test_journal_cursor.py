"""A remote reader's cursor: journal entries arriving in any mix (caught up
from the journal, live from the group, some repeated, some lost) give out
the answer's text with no gap and nothing twice."""

import orjson
from hypothesis import given
from hypothesis import strategies as st

from conversations.live.remote import Cursor


def text_given(events) -> str:
    return "".join(text for _, text, _ in events)


def journal(pieces: list[str], final: str = "done") -> list[dict]:
    """The entries the publisher writes for an answer cut into `pieces`."""
    entries, written = [], 0
    for piece in pieces:
        entries.append({"k": "delta", "s": written, "e": written + len(piece), "d": piece})
        written += len(piece)
    entries.append({"k": final, "s": written, "e": written, "d": orjson.dumps({"finish_reason": "stop"}).decode()})
    return entries


pieces_strategy = st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=30)


@given(pieces=pieces_strategy, data=st.data())
def test_live_messages_in_any_state_then_the_journal_give_the_text_once(pieces, data):
    entries = journal(pieces)
    text = "".join(pieces)
    after = data.draw(st.integers(0, len(text)))
    # What the group delivered: some entries lost, some twice, in order.
    live = [entry for entry in entries for _ in range(data.draw(st.integers(0, 2)))]
    cursor = Cursor(after)
    received = text_given(cursor.take(live))
    if cursor.final is None:  # a gap or a lost end: the reader reads the journal
        cursor.gap = False
        received += text_given(cursor.take(entries))
    assert received == text[after:]
    assert cursor.final is not None and cursor.final[2] == len(text)


def test_a_gap_holds_back_the_text_after_it():
    entries = journal(["ab", "cd", "ef"])
    cursor = Cursor(0)
    assert text_given(cursor.take([entries[0], entries[2]])) == "ab"
    assert cursor.gap and cursor.sent == 2 and cursor.final is None
    assert cursor.take([entries[3]]) == [] and cursor.final is None  # the end, but "cd" and "ef" are missing


def test_a_reader_that_starts_mid_entry_gets_its_tail():
    assert Cursor(3).take(journal(["ab", "cdef"])[:2]) == [("delta", "def", 6)]


def test_once_the_text_is_lost_only_the_end_counts():
    cursor = Cursor(0)
    cursor.text_lost = True  # the journal was trimmed: the saved row will have the text
    entries = journal(["ab", "cd"])
    assert cursor.take(entries[1:]) == [] and cursor.final is not None and not cursor.gap


def test_tool_results_and_steps_stay_whole():
    result, step = '{"id":"c1","name":"f","output":"5","duration_ms":1}', '{"n":2}'
    end = len(result)
    entries = [
        {"k": "tool_result", "s": 0, "e": end, "d": result},
        {"k": "step", "s": end, "e": end + len(step), "d": step},
    ]
    assert Cursor(0).take(entries) == [("tool_result", result, end), ("step", step, end + len(step))]


def test_kinds_stay_apart_and_a_tool_call_whole():
    call = orjson.dumps({"id": "c1", "name": "f", "arguments": "{}"}).decode()
    entries = [
        {"k": "reasoning", "s": 0, "e": 2, "d": "hm"},
        {"k": "reasoning", "s": 2, "e": 4, "d": "m."},
        {"k": "tool_call", "s": 4, "e": 4 + len(call), "d": call},
        {"k": "delta", "s": 4 + len(call), "e": 6 + len(call), "d": "ok"},
    ]
    assert Cursor(1).take(entries) == [
        ("reasoning", "mm.", 4),
        ("tool_call", call, 4 + len(call)),
        ("delta", "ok", 6 + len(call)),
    ]
