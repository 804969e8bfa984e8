"""A message to answer, as a view reads it from its request (NewMessage),
and the new version of a saved turn it may be (Version): what
answering.send_message is given."""

import uuid
from dataclasses import dataclass, field
from typing import Any

from .files import parts, sending
from .instructions import Instructions
from .models import Turn
from .providers import Message


@dataclass(frozen=True)
class Version:
    """A new version of a saved turn: an edited question (EDIT, the message's
    content replaces it), or an answer made again (REGENERATE) or carried on
    from where it stopped (CONTINUE), or from its tool calls, which the
    client ran (ANSWERED: the Responses door's function_call_output, its
    `results` as ToolResult.event()s)."""

    EDIT, REGENERATE, CONTINUE, ANSWERED = "edit", "regenerate", "continue", "answered"

    action: str
    turn: Turn
    results: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class NewMessage:
    """A message to answer, as a view read it from its request."""

    content: str
    idempotency_key: str = ""
    model_name: str = ""  # "", a catalogue name, or "auto" (routing.py)
    prompt: list[Message] | None = None  # the OpenAI door: the whole prompt, as the client sent it
    with_memory: bool = False  # the OpenAI door: the conversation's memory goes with that prompt
    request_options: dict[str, Any] = field(default_factory=dict)  # the OpenAI door: tools, temperature…
    version: Version | None = None  # a new version of a turn, not a message after the shown branch
    file_ids: tuple[uuid.UUID, ...] = ()  # files uploaded with POST api/files, sent with it
    files: tuple[dict[str, Any], ...] = ()  # those files, checked (files/sending.py): what its turn keeps
    instructions: Instructions = field(default_factory=Instructions)  # over the conversation's, for its answer
    # The Responses door's previous_response_id: the question follows this
    # answer (not the shown branch's leaf), and the prompt is chatstream's
    # history as the API's is; the client's tools and options go with it.
    follows: uuid.UUID | None = None
    door: bool = False  # a door's message without a prompt of its own: its tools and options are the client's

    @property
    def clients_options(self) -> bool:
        """Its request options are the client's (an OpenAI door's), and no server tool runs."""
        return self.prompt is not None or self.door

    # A queued message starting (queued/): the ids it was given when queued;
    # start_turn's transaction claims its row.
    turn_id: uuid.UUID | None = None
    answer_turn_id: uuid.UUID | None = None

    @property
    def has_images(self) -> bool:
        return sending.sends_images(self.files) or parts.client_sends_images(self.prompt or [])
