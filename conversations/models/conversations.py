"""Conversations and their turns: the instructions they start from (Prompt),
the conversation, each message and answer (Turn), staff's review of answers
and users' feedback on them."""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from ..instructions import parameters_problem, response_format_problem
from ..stream.events import FinishReason


class Prompt(models.Model):
    """A named system prompt with its parameters, kept by staff in the admin;
    a conversation started from one (`{"prompt": "<name>"}`) takes a copy
    of its instructions and records which it was."""

    name = models.SlugField(max_length=100, unique=True, help_text="What a request names it by")
    system_prompt = models.TextField(blank=True)
    parameters = models.JSONField(default=dict, blank=True, help_text='e.g. {"temperature": 0.2, "max_tokens": 800}')
    response_format = models.JSONField(null=True, blank=True, help_text='e.g. {"type": "json_object"}')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        problem = parameters_problem(self.parameters)
        if problem:
            raise ValidationError({"parameters": problem[1]})
        if self.response_format is not None and (wrong := response_format_problem(self.response_format)):
            raise ValidationError({"response_format": wrong})


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    model = models.CharField(
        max_length=200,
        blank=True,
        help_text="The catalogue's model its messages go to unless they name one (empty: the default)",
    )
    # Positions are handed out under a row lock, two at a time (the user's
    # message and the answer to it), so concurrent messages never collide even
    # though the answer's row is only written when its stream ends.
    next_position = models.PositiveIntegerField(default=0, editable=False)
    # The last turn of the branch shown (an answer may still be streaming:
    # its row comes when it ends). Not a foreign key for that reason; empty
    # for a conversation without turns.
    leaf = models.UUIDField(null=True, blank=True, editable=False, help_text="The shown branch's last turn")
    tools = models.BooleanField(default=True, help_text="Its answers may call the model's tools (CHATSTREAM_TOOLS)")
    # Its own instructions (instructions.py): read by the same UPDATE that reserves a message's positions.
    system_prompt = models.TextField(blank=True, help_text="Replaces LLM_SYSTEM_PROMPT for it (empty: that one)")
    parameters = models.JSONField(default=dict, blank=True, help_text="temperature, top_p, max_tokens, seed…")
    response_format = models.JSONField(null=True, blank=True, help_text="The JSON its answers must be")
    # By name (a prompt in use keeps its name: the admin will not change it), so
    # the API says which without a query.
    prompt = models.ForeignKey(
        Prompt,
        to_field="name",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversations",
        help_text="The staff's prompt it was started from",
    )
    # A front end's own name for it (the AI SDK's useChat makes short random
    # ids, not UUIDs): api/ui/chat finds the conversation by it, per owner.
    client_id = models.CharField(max_length=200, blank=True, help_text="The front end's id for it (api/ui/chat)")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent")]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "client_id"], condition=~models.Q(client_id=""), name="conversation_client_id"
            )
        ]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.id}"


class Turn(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete"  # the model finished its answer
        INTERRUPTED = "interrupted"  # cut short: length, filter, cancel, client gone
        FAILED = "failed"  # an error ended it; error_code says which

    class UsageSource(models.TextChoices):
        REPORTED = "reported"  # the server's usage chunk
        ESTIMATED = "estimated"  # the stream ended before it: counted here
        NONE = "none"  # no call was accepted

    FinishReason = FinishReason  # the stream's vocabulary (stream/events.py)
    siblings: list[uuid.UUID]  # its versions' ids, itself among them: set by branches.Branches

    # Made in Python so the stream can name the answer's turn before its row
    # exists: the row is written once, when the stream ends.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    class Review(models.TextChoices):
        OPEN = "", "Not reviewed"
        FINE = "fine", "Fine"
        NEEDS_WORK = "needs_work", "Needs work"
        ESCALATED = "escalated", "Escalated"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    position = models.PositiveIntegerField()
    # The turn before it on its branch: an answer's is its question; a
    # question's, the answer it follows (none for the first). Versions of a
    # turn share their parent. An id, not a foreign key: a message may
    # follow an answer whose row is written only when its stream ends.
    parent = models.UUIDField(null=True, blank=True, editable=False, db_index=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    finish_reason = models.CharField(max_length=32, choices=FinishReason.choices, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_detail = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True, help_text="The upstream model id that answered")
    model_name = models.CharField(
        max_length=200, blank=True, help_text="The catalogue's model that was asked (LLM_MODELS)"
    )
    route = models.JSONField(null=True, blank=True, help_text='For "model": "auto", the model LLM_ROUTER chose and why')
    provider = models.CharField(max_length=64, blank=True)
    trace_id = models.CharField(max_length=64, blank=True)
    ttft_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Time to the first output of any kind (reasoning, a tool call, text)"
    )
    ttft_answer_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to the answer's first text")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(null=True, blank=True)
    tokens_out = models.PositiveIntegerField(null=True, blank=True)
    tokens_estimated = models.BooleanField(default=False, help_text="The upstream sent no usage; counts are estimates")
    tokens_cached = models.PositiveIntegerField(null=True, blank=True, help_text="Prompt tokens read from the cache")
    tokens_reasoning = models.PositiveIntegerField(null=True, blank=True, help_text="Output tokens spent thinking")
    usage_source = models.CharField(
        max_length=16, choices=UsageSource.choices, blank=True, help_text="Where the token counts came from"
    )
    cost = models.DecimalField(
        max_digits=18, decimal_places=10, null=True, blank=True, help_text="In the prices' currency; empty: no price"
    )
    api_key = models.ForeignKey(
        "ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The key that asked"
    )
    reasoning = models.TextField(blank=True, help_text="What the model thought before answering")
    refusal = models.TextField(blank=True, help_text="The model's refusal, if it refused")
    tool_calls = models.JSONField(default=list, blank=True, help_text="Tools the model asked for: id, name, arguments")
    tool_results = models.JSONField(
        default=list, blank=True, help_text="The tool calls' results: id, name, output or error, duration_ms"
    )
    approvals = models.JSONField(
        default=list,
        blank=True,
        help_text="Calls that waited for approval: id, name, arguments, and who decided, when and how",
    )
    output_runs = models.JSONField(
        default=list,
        blank=True,
        help_text="The order the kinds of output streamed in: [kind, length] (empty: text only)",
    )
    files = models.JSONField(
        default=list, blank=True, help_text="A message's files, as they were when it was sent: id, name, type, size"
    )
    file_cuts = models.JSONField(
        default=list,
        blank=True,
        help_text="Files whose text did not fit the answer's prompt: id, name, characters sent of how many",
    )
    malformed_chunks = models.PositiveIntegerField(default=0, help_text="Upstream chunks skipped as unreadable")
    redactions = models.PositiveIntegerField(default=0, help_text="E-mail addresses, phone and card numbers masked")
    cancel_latency_ms = models.FloatField(
        null=True, blank=True, help_text="From the cancel (or the client leaving) to the upstream request closed"
    )
    tokens_after_cancel = models.PositiveIntegerField(
        null=True, blank=True, help_text="Text pieces the upstream sent after the cancel"
    )
    token_gaps = models.BinaryField(
        default=b"", blank=True, help_text="The wait for each piece of text in ms (16-bit each): the timeline"
    )
    attempts = models.JSONField(
        default=list, blank=True, help_text="Model calls that failed before this answer: model, error code, message"
    )
    # A user's message: the key its client sent (one message per key and
    # conversation) and the id of its answer, so a repeat finds the answer.
    idempotency_key = models.CharField(max_length=200, blank=True)
    # The newest version of its answer (see `parent`).
    reply_id = models.UUIDField(null=True, blank=True, editable=False, db_index=True)
    prompt_turns = models.PositiveIntegerField(null=True, blank=True, help_text="Earlier turns sent with the prompt")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True, help_text="Estimated tokens of the prompt")
    parameters = models.JSONField(default=dict, blank=True, help_text="The parameters its model call was made with")
    output_valid = models.BooleanField(
        null=True, blank=True, help_text="With a response_format: whether the answer is JSON of that format"
    )
    review_status = models.CharField(max_length=16, choices=Review.choices, blank=True, default=Review.OPEN)
    review_notes = models.TextField(blank=True, help_text="Staff's notes on this answer")
    review_flag = models.CharField(
        max_length=500, blank=True, help_text="Why a guardrail's after() flagged it: first in the review queue"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["conversation", "position"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "position"], name="turn_unique_position"),
            models.UniqueConstraint(
                fields=["conversation", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="turn_unique_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["finish_reason"], name="turn_finish_reason"),
            models.Index(fields=["model"], name="turn_model"),
            models.Index(fields=["created_at"], name="turn_created_at"),
            models.Index(fields=["trace_id"], name="turn_trace_id"),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.position} of {self.conversation_id}"


class ReviewItem(Turn):
    """An answer as staff review it: the admin's review queue."""

    class Meta:
        proxy = True
        verbose_name = "answer to review"
        verbose_name_plural = "review queue"


class Feedback(models.Model):
    """A user's rating of an answer, with an optional comment: one per answer."""

    class Rating(models.TextChoices):
        UP = "up", "Good answer"
        DOWN = "down", "Bad answer"

    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, primary_key=True, related_name="feedback")
    rating = models.CharField(max_length=8, choices=Rating.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "feedback"
        indexes = [models.Index(fields=["rating", "-updated_at"], name="feedback_rating_recent")]

    def __str__(self) -> str:
        return f"{self.rating} on {self.turn_id}"
