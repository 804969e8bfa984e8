"""Versions of turns (regenerate, edit, continue), the branch a conversation
shows, and what follows it: the next prompt, the memory, the export. Through
a real ASGI server, against the fake upstream, on SQLite and PostgreSQL."""

import json

import pytest
from django.db import connection

from conversations.memory.prompt import CONTINUE_INSTRUCTION
from conversations.memory.tasks import read_snapshot
from conversations.models import Conversation, ConversationMemory, Turn
from harness.fake_upstream import Behaviour

from .helpers import read_events, read_until_deltas, send, sse_events, text_of


def act(api_user, turn_id: str, action: str, **body) -> list[dict]:
    response = api_user.client.post(f"/api/turns/{turn_id}/{action}", json=body)
    assert response.status_code == 200, response.text
    return read_events(response)


def shown(api_user, conversation_id: str) -> list[dict]:
    return api_user.client.get(f"/api/conversations/{conversation_id}").json()["turns"]


def contents(turns: list[dict]) -> list[str]:
    return [turn["content"] for turn in turns]


def prompt_sent(upstream) -> list[tuple[str, str]]:
    """The conversation part of the last prompt the model was sent."""
    return [(m["role"], m["content"]) for m in upstream.calls[-1].body["messages"] if m["role"] != "system"]


@pytest.fixture
def two_exchanges(alice, upstream) -> str:
    upstream.behaviour.tokens = 3
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, "First question")
    send(alice, conversation_id, "Second question")
    return conversation_id


def test_regenerate_keeps_the_earlier_answer_as_a_version(alice, upstream, two_exchanges):
    first_answer = shown(alice, two_exchanges)[-1]
    upstream.behaviour.tokens = 5
    events = act(alice, first_answer["id"], "regenerate")
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    # The model was asked the same question again, without the answer it replaces.
    assert prompt_sent(upstream)[-1] == ("user", "Second question")
    assert ("assistant", "t0 t1 t2 ") in prompt_sent(upstream)  # the first exchange's answer stays
    assert len(prompt_sent(upstream)) == 3

    turns = shown(alice, two_exchanges)
    new_answer = turns[-1]
    assert contents(turns) == ["First question", "t0 t1 t2 ", "Second question", "t0 t1 t2 t3 t4 "]
    assert new_answer["siblings"] == [first_answer["id"], new_answer["id"]]
    assert new_answer["parent"] == turns[-2]["id"] == first_answer["parent"]
    assert all(len(turn["siblings"]) == 1 for turn in turns[:-1])

    # Showing the earlier version: the API, then a reload, show it.
    detail = alice.client.patch(f"/api/conversations/{two_exchanges}", json={"leaf": first_answer["id"]}).json()
    assert detail["leaf"] == first_answer["id"] and detail["turns"][-1]["content"] == "t0 t1 t2 "
    assert shown(alice, two_exchanges)[-1]["id"] == first_answer["id"]


def test_an_edited_question_starts_a_branch_and_the_next_message_follows_it(alice, upstream, two_exchanges):
    first_question = shown(alice, two_exchanges)[0]
    upstream.behaviour.tokens = 2
    events = act(alice, first_question["id"], "edit", content="First question, better")
    assert text_of(events) == "t0 t1 "
    assert prompt_sent(upstream) == [("user", "First question, better")]  # nothing of the other branch

    turns = shown(alice, two_exchanges)
    assert contents(turns) == ["First question, better", "t0 t1 "]
    assert turns[0]["siblings"] == [first_question["id"], turns[0]["id"]] and turns[0]["parent"] is None

    send(alice, two_exchanges, "And then?")
    assert prompt_sent(upstream) == [("user", "First question, better"), ("assistant", "t0 t1 "), ("user", "And then?")]
    assert contents(shown(alice, two_exchanges)) == ["First question, better", "t0 t1 ", "And then?", "t0 t1 "]

    # The original question's branch is whole, down to its newest turn.
    detail = alice.client.patch(f"/api/conversations/{two_exchanges}", json={"leaf": first_question["id"]}).json()
    assert contents(detail["turns"]) == ["First question", "t0 t1 t2 ", "Second question", "t0 t1 t2 "]


def test_continue_carries_on_a_stopped_answer_in_one_new_version(alice, upstream):
    upstream.behaviour.tokens, upstream.behaviour.pace = 400, 0.005
    conversation_id = alice.new_conversation()
    with alice.client.stream(
        "POST", f"/api/conversations/{conversation_id}/messages", json={"content": "Tell me everything"}
    ) as response:
        events = sse_events(response)  # kept: a dropped generator closes the response
        turn_id, _, _ = read_until_deltas(events, 5)
        assert alice.client.post(f"/api/turns/{turn_id}/cancel").status_code == 200
        list(events)
    stopped = Turn.objects.get(pk=turn_id)
    assert stopped.finish_reason == "cancelled" and stopped.content

    upstream.behaviour = type(upstream.behaviour)(tokens=3)
    response = alice.client.post(f"/api/turns/{turn_id}/continue", json={})
    events = read_events(response)
    deltas = [event for event in events if event["event"] == "delta"]
    # The stream starts with what was already written, then the rest follows it.
    # (The first delta may carry the first new tokens too: a reader takes what is there.)
    assert deltas[0]["data"]["text"].startswith(stopped.content)
    assert text_of(events) == stopped.content + "t0 t1 t2 "
    assert events[-1]["data"]["finish_reason"] == "stop" and events[-1]["data"]["usage"]["tokens_out"] == 3
    assert prompt_sent(upstream)[-2:] == [("assistant", stopped.content), ("user", CONTINUE_INSTRUCTION)]

    answer = shown(alice, conversation_id)[-1]
    assert answer["content"] == stopped.content + "t0 t1 t2 " and answer["siblings"] == [turn_id, answer["id"]]
    # A resume from any event id of the new version gives exactly the rest.
    after = len(stopped.content) + 3
    resumed = alice.client.get(f"/api/turns/{answer['id']}/events", headers={"Last-Event-ID": str(after)})
    assert text_of(read_events(resumed)) == answer["content"][after:]

    finished = alice.client.post(f"/api/turns/{answer['id']}/continue", json={})
    assert (finished.status_code, finished.json()["error"]["code"]) == (409, "not_continuable")


def test_actions_check_the_turn(alice, bob, upstream, two_exchanges):
    question, answer = shown(alice, two_exchanges)[:2]
    for turn_id, action in ((question["id"], "regenerate"), (answer["id"], "edit"), (question["id"], "continue")):
        response = alice.client.post(f"/api/turns/{turn_id}/{action}", json={"content": "x"})
        assert (response.status_code, response.json()["error"]["code"]) == (409, "wrong_role")
    assert bob.client.post(f"/api/turns/{answer['id']}/regenerate", json={}).status_code == 404
    assert alice.client.post(f"/api/turns/{question['id']}/edit", json={"content": " "}).status_code == 400
    assert alice.client.post("/api/turns/nope/regenerate").status_code == 404
    bad_leaf = alice.client.patch(f"/api/conversations/{two_exchanges}", json={"leaf": bob.new_conversation()})
    assert (bad_leaf.status_code, bad_leaf.json()["error"]["code"]) == (400, "invalid_leaf")
    assert alice.client.patch(f"/api/conversations/{two_exchanges}", json={"leaf": 3}).status_code == 400
    assert Turn.objects.count() == 4  # nothing was saved by any of them


def test_a_message_sent_while_an_answer_streams_follows_that_answer(alice, upstream):
    """Two tabs: the second message's parent is the answer still streaming,
    so once both are saved the branch holds all four turns in order."""
    upstream.behaviour = Behaviour(tokens=20, pace=0.05)  # 1 s: the second message takes a tenth of it
    conversation_id = alice.new_conversation()
    with alice.client.stream(
        "POST", f"/api/conversations/{conversation_id}/messages", json={"content": "One"}
    ) as response:
        events = sse_events(response)
        read_until_deltas(events, 2)
        # A behaviour of its own for the second call: the first answer keeps
        # its pace (changing the shared one sped it up, and it could end, and
        # be saved, before the second message was: it did once in CI).
        upstream.behaviour = Behaviour(tokens=2)
        send(alice, conversation_id, "Two")
        # The prompt had the first question; its answer was not written yet.
        assert prompt_sent(upstream) == [("user", "One"), ("user", "Two")]
        list(events)
    turns = shown(alice, conversation_id)
    assert [turn["role"] for turn in turns] == ["user", "assistant", "user", "assistant"]
    assert contents(turns)[2:] == ["Two", "t0 t1 "] and turns[2]["parent"] == turns[1]["id"]


def test_the_memory_follows_the_branch_shown(alice, upstream, two_exchanges):
    branch = shown(alice, two_exchanges)
    turn_ids = [turn["id"] for turn in branch]
    ConversationMemory.objects.update_or_create(
        conversation_id=two_exchanges,
        defaults={"summary": "old branch", "covers_turn_id": turn_ids[-1], "covers_position": 3},
    )
    assert read_snapshot(two_exchanges).turns == []  # covered to the end

    act(alice, turn_ids[-1], "regenerate")
    snapshot = read_snapshot(two_exchanges)
    # The memory covered an answer this branch no longer has: made again from the start.
    assert snapshot.summary == "" and [str(t.pk) for t in snapshot.turns][:3] == turn_ids[:3]
    assert len(snapshot.turns) == 4 and str(snapshot.turns[-1].pk) != turn_ids[-1]
    # ...and the prompt left that memory out (it covered the replaced answer).
    assert all("old branch" not in m["content"] for m in upstream.calls[-1].body["messages"])


def test_feedback_is_one_per_answer_and_shows_in_the_turn(alice, bob, upstream, two_exchanges):
    question, answer = shown(alice, two_exchanges)[:2]
    given = alice.client.put(f"/api/turns/{answer['id']}/feedback", json={"rating": "up"})
    assert given.status_code == 200 and given.json()["rating"] == "up" and given.json()["comment"] == ""
    changed = alice.client.put(f"/api/turns/{answer['id']}/feedback", json={"rating": "down", "comment": " Wrong "})
    assert changed.json()["comment"] == "Wrong"
    assert shown(alice, two_exchanges)[1]["feedback"]["rating"] == "down"
    assert shown(alice, two_exchanges)[0]["feedback"] is None

    for body, code in (({"rating": "meh"}, "invalid_rating"), ({"rating": "up", "comment": 3}, "invalid_comment")):
        response = alice.client.put(f"/api/turns/{answer['id']}/feedback", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert alice.client.put(f"/api/turns/{question['id']}/feedback", json={"rating": "up"}).status_code == 404
    assert bob.client.put(f"/api/turns/{answer['id']}/feedback", json={"rating": "up"}).status_code == 404
    assert bob.client.delete(f"/api/turns/{answer['id']}/feedback").status_code == 404

    assert alice.client.delete(f"/api/turns/{answer['id']}/feedback").status_code == 204
    assert shown(alice, two_exchanges)[1]["feedback"] is None


def test_search_finds_conversations_by_title_and_text(alice, bob, upstream):
    upstream.behaviour.text, upstream.behaviour.piece_chars = "Volcanoes erupt when magma rises.", 5
    about_volcanoes = alice.new_conversation()
    send(alice, about_volcanoes, "Tell me about mountains")
    upstream.behaviour.text = "Tides follow the moon."
    about_tides = alice.new_conversation()
    send(alice, about_tides, "Why the sea moves")
    theirs = bob.new_conversation()
    send(bob, theirs, "Magma please")

    def found(words: str) -> list[str]:
        response = alice.client.get("/api/conversations", params={"q": words})
        assert response.status_code == 200
        return [conversation["id"] for conversation in response.json()["results"]]

    assert found("magma") == [about_volcanoes]  # a word of an answer; never another user's
    assert found("MOUNTAINS") == [about_volcanoes]  # of a title
    assert found("moon") == [about_tides]
    assert found("magma moon") == []  # every word must be there
    assert found("zebra") == []
    assert sorted(found("")) == sorted([about_volcanoes, about_tides])  # no words: the whole list
    assert alice.client.get("/api/conversations", params={"q": "x" * 201}).status_code == 400


def test_search_stems_words_on_postgresql(alice, upstream):
    if connection.vendor != "postgresql":
        pytest.skip("full-text search is PostgreSQL's; elsewhere a plain match")
    upstream.behaviour.text = "The rivers were flooding."
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, "Weather")
    response = alice.client.get("/api/conversations", params={"q": "river floods"})
    assert [c["id"] for c in response.json()["results"]] == [conversation_id]


def test_export_as_markdown_and_json_holds_the_branch_shown(alice, upstream):
    upstream.behaviour.script = [
        {"reasoning_content": "Think of Paris."},
        {"content": "Let me look it up."},
        {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
    ]
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, "Weather in Paris?")
    alice.client.patch(f"/api/conversations/{conversation_id}", json={"title": "Paris: weather"})

    markdown = alice.client.get(f"/api/conversations/{conversation_id}/export", params={"format": "md"})
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.headers["content-disposition"] == 'attachment; filename="Paris-weather.md"'
    text = markdown.text
    assert text.startswith("# Paris: weather\n")
    assert "## You\n\nWeather in Paris?" in text and "Let me look it up." in text
    assert "<summary>Reasoning</summary>\n\nThink of Paris." in text
    assert '**Tool call** `weather`\n\n```json\n{\n  "city": "Paris"\n}\n```' in text

    exported = alice.client.get(f"/api/conversations/{conversation_id}/export", params={"format": "json"})
    document = exported.json()
    assert exported.headers["content-disposition"] == 'attachment; filename="Paris-weather.json"'
    assert document["title"] == "Paris: weather"
    assert document["turns"] == json.loads(json.dumps(shown(alice, conversation_id)))
    assert document["turns"][1]["tool_calls"] == [{"id": "c1", "name": "weather", "arguments": '{"city": "Paris"}'}]

    bad = alice.client.get(f"/api/conversations/{conversation_id}/export", params={"format": "pdf"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_format")


def test_turns_saved_before_versions_form_one_branch(db, django_user_model):
    from django.apps import apps

    from conversations.migrations import __name__ as package

    chain_existing_turns = __import__(f"{package}.0009_versions_feedback_review", fromlist=["x"]).chain_existing_turns
    owner = django_user_model.objects.create_user("legacy")
    conversation = Conversation.objects.create(owner=owner)
    turns = [
        Turn.objects.create(conversation=conversation, position=position, role=role, content=f"turn {position}")
        for position, role in enumerate(["user", "assistant", "user", "assistant"])
    ]
    chain_existing_turns(apps, None)
    parents = [turn.parent for turn in Turn.objects.order_by("position")]
    assert parents == [None, turns[0].pk, turns[1].pk, turns[2].pk]
    conversation.refresh_from_db()
    assert conversation.leaf == turns[-1].pk
