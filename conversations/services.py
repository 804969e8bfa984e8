"""Writes, and the start of an answer's life.

Each sync function is one transaction, keyword-only and typed, and is called
from async code through `storage.threads.run_db` (Django's ORM is sync, and a
transaction must stay on one thread). The async functions below them are
what the views call to send a message, follow an answer or stop one: they
check the user's limits, save through those functions, and start, find or
stop the answer's generation task.
"""

import asyncio
import dataclasses
import functools
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils.crypto import salted_hmac

from . import budgets, ledger, recovery, routing, selectors
from .api_keys import key_id_of
from .branches import Branches
from .catalogue import AUTO, ModelEntry, default_entry, entry_named
from .conf import conf
from .exceptions import ApiError
from .limits import close_stream_later, limits
from .live import LiveAnswer, live_answers
from .memory.prompt import Prompt, assemble, continuation, given_prompt, largest_message_tokens
from .memory.tasks import enqueue_update
from .models import Conversation, Feedback, Spend, Turn
from .ops import metrics
from .providers import Message, Provider, provider_for
from .storage import sql
from .storage.rows import RowInsert
from .storage.threads import run_db
from .stream.answer import Answer, PreparedTurn
from .stream.output import saved_output
from .stream.relay import AnswerRelay

logger = logging.getLogger(__name__)

TITLE_CHARS = 60
# A repeated message waits up to REPEAT_LOOKUPS x REPEAT_LOOKUP_PAUSE seconds
# for the first one's answer to start.
REPEAT_LOOKUPS, REPEAT_LOOKUP_PAUSE = 40, 0.05

_insert_turn = RowInsert(Turn)


class DuplicateMessage(Exception):
    """This conversation already has a message with the client's Idempotency-Key."""

    def __init__(self, reply_id: uuid.UUID) -> None:
        super().__init__(reply_id)
        self.reply_id = reply_id


@dataclass(frozen=True)
class Version:
    """A new version of a saved turn: an edited question (EDIT, the message's
    content replaces it), or an answer made again (REGENERATE) or carried on
    from where it stopped (CONTINUE)."""

    EDIT, REGENERATE, CONTINUE = "edit", "regenerate", "continue"

    action: str
    turn: Turn


# --- conversations -------------------------------------------------------------


def create_conversation(*, owner: AbstractBaseUser, title: str = "", model: str = "") -> Conversation:
    return Conversation.objects.create(owner_id=owner.pk, title=title[:200], model=model)


def conversation_for_key(*, owner: AbstractBaseUser, key: str) -> Conversation:
    """The conversation an Idempotency-Key names for this user, made on its
    first use. Its id comes from the key (keyed with SECRET_KEY, so it is no
    easier to guess than any other): two calls with the same key, even at
    once, reach one conversation, where the key's unique constraint lets
    only one of them save a message and call the model."""
    digest = salted_hmac("chatstream.idempotency-conversation", f"{owner.pk}\n{key}", algorithm="sha256").digest()
    conversation, _ = Conversation.objects.get_or_create(
        pk=uuid.UUID(bytes=digest[:16], version=4), owner_id=owner.pk, defaults={"title": ""}
    )
    return conversation


def update_conversation(
    *, conversation: Conversation, title: str | None = None, model: str | None = None
) -> Conversation:
    """Rename it, or give it another default model ("": the catalogue's default)."""
    if title is not None:
        conversation.title = title.strip()[:200]
    if model is not None:
        conversation.model = model
    conversation.save(update_fields=["title", "model", "updated_at"])
    return conversation


@transaction.atomic
def delete_conversation(*, conversation: Conversation) -> None:
    # Its row locked first: an answer being saved meanwhile (which locks it
    # too, services.record_answer) is either committed before the turns are
    # collected, and deleted with them, or finds the conversation gone.
    # Without the lock, PostgreSQL refused the delete at commit: a turn
    # committed in between still referred to the conversation.
    Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
    conversation.delete()


async def delete_conversation_and_answers(*, owner: AbstractBaseUser, conversation_id: uuid.UUID) -> None:
    """Delete a conversation of the owner's (Conversation.DoesNotExist for
    another's) and stop its answers still being generated, here or in another
    process: their model calls are closed and what they cost is recorded in
    the ledger, though their turns have nowhere to go."""
    owned = Conversation.objects.filter(pk=conversation_id, owner_id=owner.pk)
    await run_db(lambda: delete_conversation(conversation=owned.get()))
    for generating in await live_answers().generating_in(conversation_id):
        answer = await live_answers().find(uuid.UUID(generating["turn_id"]))
        if answer is not None and answer.owner_id == owner.pk:
            await answer.stop()


def show_branch(*, conversation: Conversation, turn_id: uuid.UUID) -> Conversation:
    """Show the branch through one of the conversation's turns (a version
    chosen with ‹ ›): from it, the newest of each turn's next versions down.
    ApiError 400 for a turn of another conversation."""
    tree = Branches(list(conversation.turns.all()))
    turn = tree.by_id.get(turn_id)
    if turn is None:
        raise ApiError(400, "invalid_leaf", "The leaf must be the id of one of this conversation's turns.")
    conversation.leaf = tree.newest_leaf_under(turn)
    conversation.save(update_fields=["leaf"])  # choosing a version is not an update: the list keeps its order
    return conversation


# --- feedback ---------------------------------------------------------------------


def rate_answer(*, owner: AbstractBaseUser, turn_id: uuid.UUID, rating: str, comment: str) -> Feedback:
    """The user's rating of one of their answers, replacing any earlier one.
    Raises Turn.DoesNotExist unless the user has a saved answer with this id."""
    turn = selectors.saved_answer(owner=owner, turn_id=turn_id)
    feedback, _ = Feedback.objects.update_or_create(turn=turn, defaults={"rating": rating, "comment": comment})
    return feedback


def unrate_answer(*, owner: AbstractBaseUser, turn_id: uuid.UUID) -> None:
    turn = selectors.saved_answer(owner=owner, turn_id=turn_id)
    Feedback.objects.filter(turn=turn).delete()


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


# --- turns ---------------------------------------------------------------------


def start_turn(
    *,
    owner: AbstractBaseUser,
    conversation_id: uuid.UUID,
    content: str,
    idempotency_key: str = "",
    model_name: str = "",
    route: dict[str, str] | None = None,
    prompt: list[Message] | None = None,
    with_memory: bool = False,
    version: Version | None = None,
) -> PreparedTurn:
    """Save the user's message and reserve the answer's position, before the
    model is called. Raises Conversation.DoesNotExist for a foreign id,
    DuplicateMessage for a key already used in this conversation (checked
    first; the unique constraint settles two that arrive together), and
    ApiError 429 when a budget is spent (nothing saved). `model_name`: the
    catalogue's model asked for; empty, the conversation's, or the default.
    `prompt`: the whole prompt, as an OpenAI client sends it (no history
    read, and the memory only `with_memory`); `content` is then its last
    user message. `version`: the message is a new version of a turn (an
    edited question; a regenerated or continued answer saves no message)."""
    if idempotency_key:
        _raise_if_duplicate(owner, conversation_id, idempotency_key)
    budgets.check(user_id=owner.pk, api_key_id=key_id_of(owner))
    try:
        return _start_turn(
            owner=owner,
            conversation_id=conversation_id,
            content=content,
            key=idempotency_key,
            model_name=model_name,
            route=route,
            prompt=prompt,
            with_memory=with_memory,
            version=version,
        )
    except IntegrityError:
        if not idempotency_key:
            raise
        _raise_if_duplicate(owner, conversation_id, idempotency_key)
        raise


def _raise_if_duplicate(owner: AbstractBaseUser, conversation_id: uuid.UUID, key: str) -> None:
    earlier = Turn.objects.filter(conversation_id=conversation_id, conversation__owner_id=owner.pk, idempotency_key=key)
    reply_id = earlier.values_list("reply_id", flat=True).first()
    if reply_id is not None:
        raise DuplicateMessage(reply_id)


@transaction.atomic
def _start_turn(
    *,
    owner: AbstractBaseUser,
    conversation_id: uuid.UUID,
    content: str,
    key: str,
    model_name: str,
    route: dict[str, str] | None,
    prompt: list[Message] | None,
    with_memory: bool,
    version: Version | None,
) -> PreparedTurn:
    answer_turn_id = uuid.uuid4()
    with connection.cursor() as cursor:
        reserved = sql.reserve_positions(
            cursor, conversation_id=conversation_id, owner_id=owner.pk, title=_title_from(content)
        )
        if reserved is None:
            raise Conversation.DoesNotExist
        position, conversation_model, leaf = reserved
        model = _model_for(model_name or conversation_model)
        if version is None or version.action == Version.EDIT:
            # A message follows the branch shown; an edited one stands beside the original.
            question_id = uuid.uuid4()
            _insert_turn(
                cursor,
                id=question_id,
                conversation_id=conversation_id,
                position=position,
                parent=leaf if version is None else version.turn.parent,
                role=Turn.Role.USER,
                content=content,
                idempotency_key=key,
                reply_id=answer_turn_id,
            )
        else:
            assert version.turn.parent is not None, "an answer's parent is its question"
            question_id = version.turn.parent
            sql.reply_is(cursor, question_id, answer_turn_id)
        sql.show_leaf(cursor, conversation_id, answer_turn_id)
        if prompt is not None:
            memory = sql.memory_of(cursor, conversation_id)[:2] if with_memory else None
            built = given_prompt(prompt, memory=memory)
            _refuse_over_budget(built, model)
        else:
            built = _assembled(cursor, conversation_id, model, question_id)
    prefix = []
    if version is not None and version.action == Version.CONTINUE:
        built = continuation(built, version.turn.content)
        prefix = [(kind, text) for kind, text, _ in saved_output(version.turn).since(0)]
    return PreparedTurn(
        conversation_id=conversation_id,
        owner_id=owner.pk,
        user_turn_id=question_id,
        answer_turn_id=answer_turn_id,
        answer_position=position + 1,
        messages=built.messages,
        prompt_turns=built.turns,
        prompt_tokens=built.tokens,
        api_key_id=key_id_of(owner),
        model_name=model.name,
        route=route,
        parent_id=question_id,
        prefix=prefix,
    )


def _assembled(cursor, conversation_id: uuid.UUID, model: ModelEntry, question_id: uuid.UUID) -> Prompt:
    """The memory, then the branch's newest turns up to the question, read
    only as far as the model's budget goes. A memory made on another branch
    (before a regenerate, an edit, a switch) is left out: it may hold what
    this branch never said."""
    summary, facts, covers, covers_position = sql.memory_of(cursor, conversation_id)
    if covers is not None and not sql.on_branch(cursor, conversation_id, question_id, covers, covers_position):
        summary, facts = "", []
    return assemble(
        system=conf.LLM_SYSTEM_PROMPT,
        summary=summary,
        facts=facts,
        newest_first=sql.branch_newest_first(
            cursor, conversation_id, question_id, with_reasoning=conf.LLM_REASONING_IN_PROMPT
        ),
        budget=model.context_tokens,
    )


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


def status_for(finish_reason: str) -> str:
    if finish_reason in (Turn.FinishReason.STOP, Turn.FinishReason.TOOL_CALLS):
        return Turn.Status.COMPLETE
    if finish_reason == Turn.FinishReason.ERROR:
        return Turn.Status.FAILED
    return Turn.Status.INTERRUPTED


def priced(answer: Answer) -> Answer:
    cost = ledger.price(
        answer.model, tokens_in=answer.tokens_in, tokens_cached=answer.tokens_cached, tokens_out=answer.tokens_out
    )
    return dataclasses.replace(answer, cost=cost)


@transaction.atomic
def record_answer(*, prepared: PreparedTurn, answer: Answer) -> Answer | None:
    """Write the answer's turn, priced, and its cost in the ledger: once,
    when its stream has ended, however it ended. The answer as saved; None if
    the conversation was deleted meanwhile (its cost is recorded all the same)."""
    answer = priced(answer)
    ledger.record_answer(prepared, answer)
    with connection.cursor() as cursor:
        # Touching the conversation first also locks its row (on PostgreSQL),
        # so a delete cannot slip in between this check and the insert.
        if not sql.touch_conversation(cursor, prepared.conversation_id):
            logger.info("conversation %s was deleted while answering; its cost is kept", prepared.conversation_id)
            return None
        _insert_turn(
            cursor,
            id=prepared.answer_turn_id,
            conversation_id=prepared.conversation_id,
            position=prepared.answer_position,
            role=Turn.Role.ASSISTANT,
            status=status_for(answer.finish_reason),
            prompt_turns=prepared.prompt_turns,
            prompt_tokens=prepared.prompt_tokens,
            api_key_id=prepared.api_key_id,
            model_name=prepared.model_name,
            route=prepared.route,
            parent=prepared.parent_id,
            **vars(answer),
        )
    # Queued only if this transaction commits: a rolled-back answer queues
    # nothing, a committed one exactly one update.
    transaction.on_commit(functools.partial(enqueue_update, prepared.conversation_id))
    return answer


# --- answers: sending, following, stopping ----------------------------------------


def answer_relay(
    prepared: PreparedTurn, *, trace_id: str, received_at: float, provider: Provider | None = None
) -> AnswerRelay:
    """The generation task for a prepared turn (from the configured provider
    unless given one), saving through record_answer."""

    async def save(answer: Answer) -> Answer:
        return await run_db(record_answer, prepared=prepared, answer=answer) or answer

    if provider is None:
        entry = _model_for(prepared.model_name)
        provider = provider_for(entry)
        provider.request_options = entry.bounded(prepared.request_options)
    return AnswerRelay(prepared=prepared, provider=provider, trace_id=trace_id, received_at=received_at, save=save)


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
    owner_id = owner.pk  # not the user object: it would live as long as the stream
    answer.add_done_callback(lambda: close_stream_later(owner_id, slot))
    return answer


async def _start_answer(
    owner: AbstractBaseUser, conversation_id: uuid.UUID, message: NewMessage, trace_id: str, received_at: float
) -> LiveAnswer | Turn:
    route, model_name = None, message.model_name
    if model_name == AUTO:
        route = await _route(owner, conversation_id, message.content)
        model_name = route.model
    start = asyncio.ensure_future(
        run_db(
            start_turn,
            owner=owner,
            conversation_id=conversation_id,
            content=message.content,
            idempotency_key=message.idempotency_key,
            model_name=model_name,
            route=None if route is None else {"model": route.model, "reason": route.reason},
            prompt=message.prompt,
            with_memory=message.with_memory,
            version=message.version,
        )
    )
    try:
        prepared = await asyncio.shield(start)
    except DuplicateMessage as duplicate:
        return await _answer_to_repeat(owner, duplicate.reply_id)
    except asyncio.CancelledError:
        await answer_abandoned(start, trace_id, received_at)
        raise
    prepared = dataclasses.replace(prepared, request_options=message.request_options)
    relay = answer_relay(prepared, trace_id=trace_id, received_at=received_at)
    relay.start()
    try:
        await live_answers().publish(relay)
    except asyncio.CancelledError:
        await relay.close()  # the client left: no reader will come, so the policy applies now
        raise
    return relay


async def _route(owner: AbstractBaseUser, conversation_id: uuid.UUID, content: str) -> routing.Route:
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

    route = await router.route(content, count_turns)
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


async def _answer_to_repeat(owner: AbstractBaseUser, reply_id: uuid.UUID) -> LiveAnswer | Turn:
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
    except (Conversation.DoesNotExist, DuplicateMessage, ApiError):
        return
    relay = answer_relay(prepared, trace_id=trace_id, received_at=received_at)
    relay.start()
    await relay.close()  # cancels as client_disconnected before the model is called, then saves


async def stop_answer(*, owner: AbstractBaseUser, turn_id: uuid.UUID) -> Turn:
    """Stop an answer being generated (from any tab or script, here or in
    another process) and return its saved turn. ApiError 404 if the user has
    no such answer, 409 if it had already ended, 503 if it is being generated
    but cannot be reached, 504 if it is not saved in time."""
    live = await live_answers().find(turn_id)
    if live is None or live.owner_id != owner.pk:
        try:
            turn = await run_db(selectors.saved_answer, owner=owner, turn_id=turn_id)
        except Turn.DoesNotExist:
            raise await _no_live_answer(owner, turn_id) from None
        raise ApiError(409, "turn_finished", f"The answer has already ended ({turn.finish_reason}).")
    await live.stop()
    try:
        return await run_db(selectors.saved_answer, owner=owner, turn_id=turn_id)
    except Turn.DoesNotExist:
        raise ApiError(504, "cancel_unconfirmed", "The answer was told to stop but is not saved yet.") from None


async def _no_live_answer(owner: AbstractBaseUser, turn_id: uuid.UUID) -> ApiError:
    """Why an answer with no row could not be found. With Redis, one that a
    question still waits for is being generated by a process this one cannot
    reach now (Redis down, or back empty and not yet told of it again): 503,
    try again, rather than a 404 that says there is no such answer."""
    awaited = bool(conf.REDIS_URL) and await run_db(selectors.answer_awaited, owner=owner, turn_id=turn_id)
    if awaited:
        message = "The answer is being generated by another server that cannot be reached now; try again."
        return ApiError(503, "answer_unreachable", message, headers={"Retry-After": "1"})
    return ApiError(404, "turn_not_found", "No turn with that id belongs to you.")
