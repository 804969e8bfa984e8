"""Providers against the real fake upstream on loopback."""

import asyncio
import socket

import pytest

from conversations import exceptions
from conversations.providers import TEXT, Completion, load_provider_class
from conversations.providers.demo import DemoProvider, compose_answer
from conversations.providers.openai import OpenAIProvider, close_shared_session
from harness.fake_upstream import Behaviour

MESSAGES = [{"role": "user", "content": "Hello there"}]


def collect(provider, messages=MESSAGES) -> tuple[list[str], Completion, Exception | None]:
    """Run a provider's stream to its end; the texts, the completion, any error."""
    completion = Completion(model=provider.model)

    async def run():
        texts = []
        try:
            async for pieces in provider.stream(messages, completion):
                texts.append("".join(text for kind, text in pieces if kind == TEXT))
        except exceptions.UpstreamError as exc:
            return texts, exc
        finally:
            await close_shared_session()
        return texts, None

    texts, error = asyncio.run(run())
    return texts, completion, error


def test_openai_streams_text_finish_reason_and_usage(openai_provider, upstream):
    texts, completion, error = collect(openai_provider)
    assert error is None
    assert "".join(texts) == "".join(f"t{i} " for i in range(20))
    assert (completion.finish_reason, completion.tokens_in, completion.tokens_out) == ("stop", 11, 20)


def test_openai_sends_the_openai_request(openai_provider, upstream):
    collect(openai_provider)
    body = upstream.calls[-1].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "fake-model" and body["messages"] == MESSAGES


@pytest.mark.parametrize(
    ("upstream_reason", "reason"),
    [("length", "length"), ("content_filter", "content_filter"), ("tool_calls", "tool_calls")],
)
def test_openai_maps_finish_reasons(openai_provider, upstream, upstream_reason, reason):
    upstream.behaviour = Behaviour(tokens=3, finish_reason=upstream_reason)
    assert collect(openai_provider)[1].finish_reason == reason


def test_malformed_chunk_is_skipped_and_counted(openai_provider, upstream):
    upstream.behaviour = Behaviour(tokens=5, malformed_at=(2, 4))
    texts, completion, error = collect(openai_provider)
    assert error is None and "".join(texts) == "t0 t1 t2 t3 t4 "
    assert (completion.malformed_chunks, completion.deltas) == (2, 5)


@pytest.mark.parametrize("status", [400, 500, 503])
def test_error_status_becomes_upstream_status_error(openai_provider, upstream, status):
    upstream.behaviour = Behaviour(status=status)
    _, _, error = collect(openai_provider)
    assert isinstance(error, exceptions.UpstreamStatusError) and error.status == status
    assert f"fake failure {status}" in str(error)


def test_429_carries_retry_after(openai_provider, upstream):
    upstream.behaviour = Behaviour(status=429, retry_after="7")
    _, _, error = collect(openai_provider)
    assert isinstance(error, exceptions.UpstreamRateLimited) and error.retry_after == 7.0


def test_refused_connection_is_upstream_unavailable():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAIProvider(model="m", base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-secret")
    _, _, error = collect(provider)
    assert isinstance(error, exceptions.UpstreamUnavailable)
    assert "sk-secret" not in str(error)


def test_stream_cut_midway_is_incomplete(openai_provider, upstream):
    upstream.behaviour = Behaviour(tokens=10, cut_after=4)
    texts, _, error = collect(openai_provider)
    assert isinstance(error, exceptions.UpstreamIncomplete)
    assert "".join(texts) == "t0 t1 t2 t3 "


def test_stream_ending_without_finish_reason_is_incomplete(openai_provider, upstream):
    upstream.behaviour = Behaviour(tokens=3, finish_reason=None)
    texts, _, error = collect(openai_provider)
    assert isinstance(error, exceptions.UpstreamIncomplete) and "".join(texts) == "t0 t1 t2 "


def test_wrong_content_type_is_a_protocol_error(openai_provider, upstream):
    upstream.behaviour = Behaviour(content_type="text/html")
    _, _, error = collect(openai_provider)
    assert isinstance(error, exceptions.UpstreamProtocolError)


def test_huge_chunk_is_relayed_whole(openai_provider, upstream):
    huge = "x" * 300_000
    upstream.behaviour = Behaviour(text=huge, tokens_per_chunk=10**6)
    texts, _, error = collect(openai_provider)
    assert error is None and "".join(texts) == huge


def test_demo_is_deterministic_markdown_from_the_users_words():
    provider = DemoProvider(model="demo-1", tokens_per_second=0, first_token_delay=0)
    first, completion, _ = collect(provider, [{"role": "user", "content": "Explain streaming tokens"}])
    second, _, _ = collect(provider, [{"role": "user", "content": "Explain streaming tokens"}])
    answer = "".join(first)
    assert first == second and answer == compose_answer("Explain streaming tokens")
    assert "streaming" in answer and "```python" in answer and "\n- " in answer
    assert completion.finish_reason == "stop" and completion.tokens_out == len(first)


def test_provider_names_and_dotted_paths_load():
    assert load_provider_class("demo") is DemoProvider
    assert load_provider_class("conversations.providers.openai.OpenAIProvider") is OpenAIProvider
    with pytest.raises(ValueError):
        load_provider_class("conversations.models.Turn")
