"""The streaming redaction filter: masks what it should, and its output does
not depend on how the upstream split the text."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conversations.stream.redaction import Redactor, luhn_valid, redact
from harness.fake_upstream import Behaviour

from .helpers import post_and_read, saved_answer


def streamed(chunks: list[str]) -> str:
    redactor = Redactor()
    return "".join(redactor.feed(chunk) for chunk in chunks) + redactor.finish()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write to ada.lovelace+notes@example.co.uk today.", "Write to [email] today."),
        ("Card 4111 1111 1111 1111, thanks", "Card [card], thanks"),
        ("Card 4111-1111-1111-1112 is not valid", "Card 4111-1111-1111-1112 is not valid"),
        ("Call +44 20 7946 0958 or (555) 123-4567.", "Call [phone] or [phone]."),
        ("In 1984 there were 3 of us, at 12:30.", "In 1984 there were 3 of us, at 12:30."),
        ("Order ref: 2024-05-01, item 12345678", "Order ref: 2024-05-01, item 12345678"),
    ],
)
def test_masks_what_it_should_and_nothing_else(text, expected):
    assert redact(text) == expected


def test_luhn():
    assert luhn_valid("4111 1111 1111 1111") and not luhn_valid("4111 1111 1111 1112")


def test_text_that_cannot_start_a_match_is_not_held():
    redactor = Redactor()
    assert redactor.feed("Hello there, ") == "Hello there, "
    assert redactor.feed("mail me at bob") == "mail me at "  # "bob" may begin an address
    assert redactor.feed("@example.com now") == "[email] "  # "now" too, until a space or the end
    assert redactor.finish() == "now"


pieces = st.text(alphabet=st.sampled_from(list("ab1234567890 -+().@x.comy\n")), max_size=60)


@settings(max_examples=400)
@given(text=pieces, cuts=st.lists(st.integers(0, 60), max_size=8))
@example(text="a@b.com 4111111111111111 +1 555 123 4567", cuts=[3, 10, 20, 30])
# A match whose next part has not come yet: "+44 20 7946 " | "0958", "a@ex.com.a" | "u".
@example(text="call +44 20 7946 0958;", cuts=[17])
@example(text="x ada@ex.com.au y", cuts=[13])
def test_the_output_does_not_depend_on_the_chunking(text, cuts):
    bounds = sorted({0, len(text), *(cut for cut in cuts if cut <= len(text))})
    chunks = [text[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]
    assert streamed(chunks) == redact(text)


@given(text=st.text(max_size=200))
def test_any_text_one_character_at_a_time(text):
    assert streamed(list(text)) == redact(text)


SECRET_ANSWER = "Mail ada@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111. Bye"
MASKED_ANSWER = "Mail [email] or call [phone]; card [card]. Bye"


@pytest.mark.parametrize("piece_chars", [1, 3, 7])
def test_the_client_and_the_saved_turn_see_the_masked_text(alice, upstream, settings, piece_chars):
    settings.CHATSTREAM_REDACT = True
    upstream.behaviour = Behaviour(text=SECRET_ANSWER, piece_chars=piece_chars)
    conversation_id, events, _ = post_and_read(alice)
    seen = "".join(event["data"]["text"] for event in events if event["event"] == "delta")
    assert seen == saved_answer(conversation_id).content == MASKED_ANSWER
    assert int(events[-1]["id"]) == len(MASKED_ANSWER)  # ids count the text the client got
    assert saved_answer(conversation_id).redactions == 3  # the review queue shows these first
