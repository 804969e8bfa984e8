"""Sending a message and starting its answer.

`send_message` counts the message against the user's limits, asks the router
which model for "auto", then `start_turn` (one transaction, on a database
thread) saves the user's message, reserves the answer's position and builds
the prompt; the answer's generation task (`stream/relay.py`) is started and
published for other processes to find. It saves its turn through
`services.record_answer` when it ends. A message repeated with its
Idempotency-Key gets the first one's answer.
"""

import asyncio
import dataclasses
import logging
import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction

from . import recovery, routing, selectors, services
from .access.api_keys import key_id_of
from .catalogue import AUTO, ModelEntry, default_entry, entry_named
from .conf import conf
from .exceptions import ApiError, DuplicateMessage, GuardrailRefused, NotItsTurn
from .files import parts, sending
from .guardrails.output import output_guard
from .guardrails.prompt import screened_prompt
from .guardrails.refusals import CODE as REFUSED
from .guardrails.refusals import record_refusal
from .guardrails.review import review_later
from .instructions import Instructions, output_check, request_options
from .live import LiveAnswer, live_answers
from .memory.prompt import Prompt, assemble, carried_on, continuation, given_prompt, largest_message_tokens
from .messages import NewMessage, Version
from .models import Conversation, Spend, Turn
from .ops import metrics
from .providers import Message, Provider, provider_for
from .providers.kinds import STEP, TOOL_RESULT
from .spend import budgets, holds, ledger
from .spend.limits import close_stream_later, limits
from .spend.reservations import Holder
from .storage import queue_claims, sql
from .storage.rows import RowInsert
from .storage.threads import run_db
from .stream import ends
from .stream.answer import Answer, PreparedTurn
from .stream.output import result_text, saved_output, step_text
from .stream.relay import AnswerRelay
from .stream.tool_loop import Toolbox, answer_messages, output_messages
from .tool_runs import DatabaseToolRecords
from .tools import Tool, atools_for

logger = logging.getLogger(__name__)

TITLE_CHARS = 60
# A repeated message waits up to REPEAT_LOOKUPS x REPEAT_LOOKUP_PAUSE seconds
# for the first one's answer to start.
REPEAT_LOOKUPS, REPEAT_LOOKUP_PAUSE = 40, 0.05

_insert_turn = RowInsert(Turn)


# --- the message's turn --------------------------------------------------------------


def start_turn(
    *, owner: AbstractBaseUser, conversation_id: uuid.UUID, message: NewMessage, route: dict[str, str] | None = None
) -> PreparedTurn:
    """Save the user's message and reserve the answer's position, before the
    model is called. Raises Conversation.DoesNotExist for a foreign id,
    DuplicateMessage for a key already used in this conversation (checked
    first; the unique constraint settles two that arrive together), and
    ApiError 429 when a budget is spent (nothing saved). The message's
    `model_name` is the catalogue's model (routing has replaced "auto";
    `route` says why); empty, the conversation's, or the default."""
    key = message.idempotency_key
    if key:
        _raise_if_duplicate(owner, conversation_id, key)
    budgets.check(user_id=owner.pk, api_key_id=key_id_of(owner))
    try:
        return _start_turn(owner, conversation_id, message, route)
    except IntegrityError:
        if not key:
            raise
        _raise_if_duplicate(owner, conversation_id, key)
        raise


def _raise_if_duplicate(owner: AbstractBaseUser, conversation_id: uuid.UUID, key: str) -> None:
    earlier = Turn.objects.filter(conversation_id=conversation_id, conversation__owner_id=owner.pk, idempotency_key=key)
    reply_id = earlier.values_list("reply_id", flat=True).first()
    if reply_id is not None:
        raise DuplicateMessage(reply_id)


@transaction.atomic
def _start_turn(
    owner: AbstractBaseUser, conversation_id: uuid.UUID, message: NewMessage, route: dict[str, str] | None
) -> PreparedTurn:
    content, version = message.content, message.version
    answer_turn_id = message.answer_turn_id or uuid.uuid4()
    with connection.cursor() as cursor:
        reserved = sql.reserve_positions(
            cursor, conversation_id=conversation_id, owner_id=owner.pk, title=_title_from(content)
        )
        if reserved is None:
            raise Conversation.DoesNotExist
        position, leaf = reserved.position, reserved.leaf
        if message.turn_id is not None:  # a queued message: its row, under the conversation's lock
            queue_claims.claim(conversation_id=conversation_id, message_id=message.turn_id, leaf=leaf)
        model = _model_for(message.model_name or reserved.model)
        given = message.instructions.over(reserved.instructions)
        if message.prompt is None:  # (the OpenAI door's prompt and options are the client's own)
            model.refuse_disallowed(given.parameters)  # before anything is written: a 400 saves nothing
        sending.refuse_images_unseen(model, images=message.has_images)
        if message.files:
            sending.claim(owner_id=owner.pk, conversation_id=conversation_id, files=message.files)
        if version is None or version.action == Version.EDIT:
            # A message follows the branch shown; an edited one stands beside the original.
            question_id = message.turn_id or uuid.uuid4()
            _insert_turn(
                cursor,
                id=question_id,
                conversation_id=conversation_id,
                position=position,
                parent=(message.follows or leaf) if version is None else version.turn.parent,
                role=Turn.Role.USER,
                content=content,
                idempotency_key=message.idempotency_key,
                reply_id=answer_turn_id,
                files=list(message.files),
            )
        else:
            assert version.turn.parent is not None, "an answer's parent is its question"
            question_id = version.turn.parent
            sql.reply_is(cursor, question_id, answer_turn_id)
        sql.show_leaf(cursor, conversation_id, answer_turn_id)
        if message.prompt is not None:
            memory = sql.memory_of(cursor, conversation_id)[:2] if message.with_memory else None
            built = given_prompt(message.prompt, memory=memory)
            _refuse_over_budget(built, model)
        else:
            built = _for_sight_of(_assembled(cursor, conversation_id, model, question_id, given.system_prompt), model)
    prefix = []
    if version is not None and version.action == Version.CONTINUE:
        built = continuation(built, _said(version.turn))
        prefix = [(kind, text) for kind, text, _ in saved_output(version.turn).since(0)]
    elif version is not None and version.action == Version.ANSWERED:
        prefix = answered_output(version)
        built = carried_on(built, output_messages(prefix))
    # Last, in this transaction: a reservation that does not fit undoes the message.
    reserved_out = holds.reserve_first_call(
        Holder(answer_turn_id, owner.pk, key_id_of(owner)),
        models=_models_called(model),
        prompt=built.tokens,
        options={**given.parameters, **model.fixed, **message.request_options},
    )
    return PreparedTurn(
        conversation_id=conversation_id,
        owner_id=owner.pk,
        user_turn_id=question_id,
        answer_turn_id=answer_turn_id,
        answer_position=position + 1,
        messages=sending.located(built.messages),
        file_cuts=built.file_cuts,
        prompt_turns=built.turns,
        prompt_tokens=built.tokens,
        api_key_id=key_id_of(owner),
        model_name=model.name,
        route=route,
        parent_id=question_id,
        prefix=prefix,
        # The OpenAI door's prompt is the client's, tools and all: no server tools there.
        server_tools=reserved.tools and not message.clients_options,
        reserved_out=reserved_out,
        # The OpenAI door's request options are the client's (its own prompt, its own instructions).
        **({} if message.prompt is not None else _instructed(given, model)),
    )


def _models_called(model: ModelEntry) -> list[str]:
    """The upstream models an answer may call: its own, then the fallbacks."""
    return [model.model, *conf.LLM_FALLBACK_MODELS]


def _instructed(given: Instructions, model: ModelEntry) -> dict[str, Any]:
    options = request_options(given.parameters, given.response_format)
    parameters = {**given.parameters, **model.fixed}  # as the call is made (ModelEntry.bounded)
    return {"request_options": options, "response_format": given.response_format, "parameters": parameters}


def answered_output(version: Version) -> list[tuple[str, str]]:
    """What an ANSWERED version starts with: the answer's output, the
    client's results for its calls, then the step the model call makes."""
    said = [(kind, text) for kind, text, _ in saved_output(version.turn).since(0)]
    steps = sum(kind == STEP for kind, _ in said)
    results = [(TOOL_RESULT, result_text(result)) for result in version.results]
    return [*said, *results, (STEP, step_text(steps + 2))]  # model calls counted from 1; this is the next


def _said(answer: Turn) -> str | list[Message]:
    """What a stopped answer said, as its continuation's prompt carries it:
    its text, or a tool loop's steps (calls and results) and its text."""
    if not answer.tool_calls:
        return answer.content
    runs = {"tool_calls": answer.tool_calls, "tool_results": answer.tool_results, "output_runs": answer.output_runs}
    return answer_messages(answer.content, **runs)


def _assembled(
    cursor, conversation_id: uuid.UUID, model: ModelEntry, question_id: uuid.UUID, system_prompt: str | None
) -> Prompt:
    """The system prompt (the conversation's or the message's, else
    LLM_SYSTEM_PROMPT), the memory, then the branch's newest turns up to the
    question, read only as far as the model's budget goes. A memory made on another branch
    (before a regenerate, an edit, a switch) is left out: it may hold what
    this branch never said."""
    summary, facts, covers, covers_position = sql.memory_of(cursor, conversation_id)
    if covers is not None and not sql.on_branch(cursor, conversation_id, question_id, covers, covers_position):
        summary, facts = "", []
    return assemble(
        system=system_prompt or conf.LLM_SYSTEM_PROMPT,
        summary=summary,
        facts=facts,
        newest_first=sql.branch_newest_first(
            cursor, conversation_id, question_id, with_reasoning=conf.LLM_REASONING_IN_PROMPT
        ),
        budget=model.context_tokens,
    )


def _for_sight_of(prompt: Prompt, model: ModelEntry) -> Prompt:
    """The prompt as `model` can take it: a question with images (asked again:
    a regenerate, a continue) is refused if it cannot see them, as the
    question would have been; earlier turns' images become notes."""
    if model.vision:
        return prompt
    *earlier, newest = prompt.messages
    sending.refuse_images_unseen(
        model, images=sending.sends_images([part["file"] for part in parts.placeholders(newest)])
    )
    return dataclasses.replace(prompt, messages=[*map(parts.images_noted, earlier), newest])


def _refuse_over_budget(prompt: Prompt, model: ModelEntry) -> None:
    """A client's whole prompt (the OpenAI door) is held to what the API's own
    can be: the model's prompt budget, or one message at the message limit."""
    limit = max(model.context_tokens, largest_message_tokens())
    if prompt.tokens > limit:
        raise ApiError(
            400,
            "context_length_exceeded",
            f"The prompt has about {prompt.tokens} tokens; {model.name!r} takes at most {limit}.",
            details={"type": "invalid_request_error", "param": "messages"},
        )


def _model_for(name: str) -> ModelEntry:
    """The catalogue's entry; a name it no longer has (a conversation's
    default after LLM_MODELS changed) gets the default."""
    try:
        return entry_named(name)
    except KeyError:
        return default_entry()


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


# --- the answer ------------------------------------------------------------------------


def answer_relay(
    prepared: PreparedTurn,
    *,
    trace_id: str,
    received_at: float,
    provider: Provider | None = None,
    tools: list[Tool] | None = None,
) -> AnswerRelay:
    """The generation task for a prepared turn (from the configured provider
    unless given one), saving through record_answer; with `tools`
    (answer_tools) run by its loop."""

    async def save(answer: Answer) -> Answer:
        if prepared.response_format is not None:
            valid, _ = output_check(answer.content, prepared.response_format)
            answer = dataclasses.replace(answer, output_valid=valid)
        saved = await run_db(services.record_answer, prepared=prepared, answer=answer)
        if saved is not None:
            review_later(prepared.answer_turn_id, trace_id)  # the after() guardrails, beside the stream
        return saved or answer

    toolbox, hold = None, None
    if provider is None:
        entry = _model_for(prepared.model_name)
        provider = provider_for(entry)
        provider.request_options = entry.bounded(prepared.request_options)
        toolbox = _toolbox(prepared, tools or [])
        if toolbox is not None:
            provider.request_options["tools"] = toolbox.specs()
        if prepared.reserved_out:
            hold = holds.AnswerHold(prepared, _models_called(entry))
    return AnswerRelay(
        prepared=prepared,
        provider=provider,
        trace_id=trace_id,
        received_at=received_at,
        save=save,
        toolbox=toolbox,
        hold=hold,
        guard=output_guard(trace_id),
    )


async def answer_tools(prepared: PreparedTurn) -> list[Tool]:
    """The answer's model's tools (atools_for: MCP servers listed at first
    use), unless the conversation turned them off or the prompt is a
    client's (the OpenAI door)."""
    return await atools_for(_model_for(prepared.model_name)) if prepared.server_tools else []


def _toolbox(prepared: PreparedTurn, tools: list[Tool]) -> Toolbox | None:
    """The answer's tools, their calls, decisions and steps kept in the
    database (tool_runs.py)."""
    return Toolbox(tools=tools, records=DatabaseToolRecords(prepared)) if tools else None


async def send_message(
    *, owner: AbstractBaseUser, conversation_id: uuid.UUID, message: NewMessage, trace_id: str, received_at: float
) -> LiveAnswer | Turn:
    """Save the user's message and start its answer, within the user's limits
    (ApiError 429 over them, nothing saved). A message repeated with its
    Idempotency-Key gets the first one's answer, live or saved: never a
    second model call."""
    await recovery.save_lost_answers_once()
    await limits().count_message(owner.pk)
    slot = uuid.uuid4()
    await limits().open_stream(owner.pk, slot)
    try:
        answer = await _start_answer(owner, conversation_id, message, trace_id, received_at)
    except BaseException:
        await asyncio.shield(limits().close_stream(owner.pk, slot))
        raise
    if not isinstance(answer, AnswerRelay):
        await limits().close_stream(owner.pk, slot)
        return answer  # a repeated message: the first one's answer
    owner_id, turn_id = owner.pk, answer.turn_id  # not the user object: it would live as long as the stream
    # Its slot given back first: the conversation's next queued message (queued/) may start and take it.
    answer.add_done_callback(
        lambda: close_stream_later(owner_id, slot, then=lambda: ends.answer_ended(conversation_id, turn_id))
    )
    return answer


async def _start_answer(
    owner: AbstractBaseUser, conversation_id: uuid.UUID, message: NewMessage, trace_id: str, received_at: float
) -> LiveAnswer | Turn:
    why = None
    if message.file_ids:
        files = await run_db(
            sending.attachable, owner_id=owner.pk, conversation_id=conversation_id, ids=message.file_ids
        )
        message = dataclasses.replace(message, files=files)
    if message.model_name == AUTO:
        route = await _route(owner, conversation_id, message)
        message, why = (
            dataclasses.replace(message, model_name=route.model),
            {"model": route.model, "reason": route.reason},
        )
    start = asyncio.ensure_future(
        run_db(start_turn, owner=owner, conversation_id=conversation_id, message=message, route=why)
    )
    try:
        prepared = await asyncio.shield(start)
    except DuplicateMessage as duplicate:
        return await answer_to_repeat(owner, duplicate.reply_id)
    except asyncio.CancelledError:
        await answer_abandoned(start, trace_id, received_at)
        raise
    if message.clients_options:  # an OpenAI door: the client's options as it sent them
        options = {**prepared.request_options, **message.request_options}  # over the conversation's, if any
        prepared = dataclasses.replace(prepared, request_options=options)
    try:
        prepared = await _with_files_read(prepared)
        tools = await answer_tools(prepared)
        prepared = await _screened(
            prepared, trace_id, asks=message.version is None or message.version.action == Version.EDIT
        )
    except asyncio.CancelledError:  # the client left while files were read, tools listed or guardrails asked
        await _abandon(prepared, trace_id, received_at)
        raise
    relay = answer_relay(prepared, trace_id=trace_id, received_at=received_at, tools=tools)
    relay.start()
    try:
        await live_answers().publish(relay)
    except asyncio.CancelledError:
        await relay.close()  # the client left: no reader will come, so the policy applies now
        raise
    return relay


async def _with_files_read(prepared: PreparedTurn) -> PreparedTurn:
    """The prompt's files read from storage (on a thread: a storage may be
    a network away), outside the transaction that built it."""
    if not any(parts.placeholders(message) for message in prepared.messages):
        return prepared
    return dataclasses.replace(prepared, messages=await asyncio.to_thread(parts.resolve, prepared.messages))


async def _screened(prepared: PreparedTurn, trace_id: str, *, asks: bool) -> PreparedTurn:
    """The prompt as the before() guardrails let it go (guardrails/prompt.py).
    A refused message is saved with the reason and answered 422, before any
    model is called. `asks`: the question is new (a message, an edit), not
    one asked again (regenerate, continue), which keeps its other answers."""
    try:
        messages = await screened_prompt(prepared.messages, trace_id=trace_id)
    except GuardrailRefused as refused:
        reason = str(refused)
        await run_db(record_refusal, prepared=prepared, reason=reason, trace_id=trace_id, question=asks)
        raise ApiError(422, REFUSED, reason) from None
    return prepared if messages is prepared.messages else dataclasses.replace(prepared, messages=messages)


async def _route(owner: AbstractBaseUser, conversation_id: uuid.UUID, message: NewMessage) -> routing.Route:
    """The router's choice for a message sent to "auto" (routing.py). A spent
    budget refuses the message before the classifier is asked; what the
    classifier cost goes in the ledger."""
    router = routing.router()
    if router is None:
        raise ApiError(404, "model_not_found", '"auto" needs LLM_ROUTER; choose a model from GET api/models.')
    await run_db(budgets.check, user_id=owner.pk, api_key_id=key_id_of(owner))

    async def count_turns() -> int:
        owned = Conversation.objects.filter(pk=conversation_id, owner_id=owner.pk)
        return await run_db(lambda: owned.values_list("next_position", flat=True).first() or 0)

    route = await router.route(message.content, count_turns, images=message.has_images)
    metrics.ROUTES.labels(route.model).inc()
    if route.classifier is not None:
        await run_db(
            ledger.record_call,
            kind=Spend.Kind.ROUTING,
            completion=route.classifier,
            user_id=owner.pk,
            api_key_id=key_id_of(owner),
            conversation_id=conversation_id,
        )
    return route


async def answer_to_repeat(owner: AbstractBaseUser, reply_id: uuid.UUID) -> LiveAnswer | Turn:
    # The first message's answer may not be findable yet: its row is
    # committed a moment before its process starts and shares the answer.
    for _ in range(REPEAT_LOOKUPS):
        answer = await selectors.find_answer(owner=owner, turn_id=reply_id)
        if answer is not None:
            return answer
        await asyncio.sleep(REPEAT_LOOKUP_PAUSE)
    raise ApiError(409, "duplicate_in_progress", "This message is already being answered; retry in a moment.")


async def answer_abandoned(start: asyncio.Future, trace_id: str, received_at: float) -> None:
    """The client left while its message was being saved. The message stays,
    so its answer's turn is written too, empty and marked as the client's
    doing, without calling the model."""
    try:
        prepared = await start
    except (Conversation.DoesNotExist, DuplicateMessage, NotItsTurn, ApiError):
        return
    await _abandon(prepared, trace_id, received_at)


async def _abandon(prepared: PreparedTurn, trace_id: str, received_at: float) -> None:
    relay = answer_relay(prepared, trace_id=trace_id, received_at=received_at)
    relay.start()
    await relay.close()  # cancels as client_disconnected before the model is called, then saves
