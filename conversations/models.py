import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .instructions import parameters_problem, response_format_problem
from .stream.events import FinishReason


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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent")]

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


class StoredFile(models.Model):
    """A file a user uploaded: its bytes in Django's storage (files/storage.py),
    never in a column; the row keeps what it is, whose, and where. Sent in a
    message, it belongs to that conversation and goes with it."""

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        PDF = "pdf", "PDF"
        TEXT = "text", "Text"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chatstream_files")
    conversation = models.ForeignKey(
        Conversation,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="files",
        help_text="Where it was first sent (empty: an upload no message has named yet)",
    )
    name = models.CharField(max_length=255, help_text="The name it came with, for display only")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    content_type = models.CharField(max_length=100, help_text="Read from the content, not the client's word")
    size = models.PositiveBigIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # Where the bytes are, and a PDF's or a text file's text (extracted once,
    # at upload): chatstream's own names in its storage, none from the client.
    path = models.CharField(max_length=255, editable=False)
    text_path = models.CharField(max_length=255, blank=True, editable=False)
    text_chars = models.PositiveIntegerField(default=0, help_text="Characters of text the model can be given")
    pages = models.PositiveIntegerField(null=True, blank=True, help_text="A PDF's pages")
    pages_read = models.PositiveIntegerField(null=True, blank=True, help_text="Of them, those whose text was read")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "file"
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="file_owner_recent"),
            models.Index(fields=["conversation"], name="file_conversation"),
            models.Index(fields=["created_at"], name="file_unsent", condition=models.Q(conversation=None)),
        ]

    def __str__(self) -> str:
        return self.name


class ToolRun(models.Model):
    """One tool call of an answer, written before the tool runs and again when
    it ends: a call id recorded once is never run again (tool_runs.claim_call)."""

    class Approval(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        DENIED = "denied"
        UNDECIDED = "undecided"  # the answer ended first: a timeout, a Stop, its process lost

    turn_id = models.UUIDField(help_text="The answer's turn (its row comes when the answer ends)")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="tool_runs")
    call_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    arguments = models.TextField(blank=True)
    # None and "" differ here: a tool may return "", and a call still running has neither.
    output = models.TextField(null=True, blank=True)  # noqa: DJ001
    error = models.TextField(null=True, blank=True)  # noqa: DJ001
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    # A tool with needs_approval: recorded `pending` before the request goes
    # out; the decision is written here by whichever process served it.
    approval = models.CharField(max_length=16, choices=Approval.choices, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["started_at"]
        constraints = [models.UniqueConstraint(fields=["turn_id", "call_id"], name="tool_run_unique_call")]

    def __str__(self) -> str:
        return f"{self.name} {self.call_id} of {self.turn_id}"


class AnswerStep(models.Model):
    """One model call of a tool loop, saved when its tools have run, before
    the next call: what it streamed (with its calls, approvals and results)
    and what it cost. An answer whose process dies mid-loop is saved from
    these (recovery.py); an answer that ends keeps them for the admin's
    timeline."""

    turn_id = models.UUIDField(help_text="The answer's turn (its row comes when the answer ends)")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="answer_steps")
    n = models.PositiveSmallIntegerField(help_text="The model call, counted from 1")
    model = models.CharField(max_length=200, blank=True)
    output = models.JSONField(default=list, help_text="What it streamed, in order: [kind, text] pairs")
    tokens_in = models.PositiveIntegerField(null=True, blank=True)
    tokens_out = models.PositiveIntegerField(null=True, blank=True)
    tokens_cached = models.PositiveIntegerField(null=True, blank=True)
    tokens_reasoning = models.PositiveIntegerField(null=True, blank=True)
    tokens_estimated = models.BooleanField(default=False)
    usage_source = models.CharField(max_length=16, blank=True)
    cost = models.DecimalField(max_digits=18, decimal_places=10, null=True, blank=True)
    ended_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["turn_id", "n"]
        constraints = [models.UniqueConstraint(fields=["turn_id", "n"], name="answer_step_unique")]

    def __str__(self) -> str:
        return f"step {self.n} of {self.turn_id}"


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


class ConversationMemory(models.Model):
    """A rolling summary of a conversation and the facts its user stated,
    kept by a background task (memory/tasks.py) so that a prompt
    needs only the memory and the latest turns, not the whole history."""

    class Status(models.TextChoices):
        EMPTY = "empty"  # nothing covered yet
        CURRENT = "current"  # the last update succeeded
        RETRYING = "retrying"  # the last model call failed; another attempt is queued
        FAILED = "failed"  # every attempt failed; the next turn tries again

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, primary_key=True, related_name="memory")
    summary = models.TextField(blank=True)
    facts = models.JSONField(default=list, blank=True)
    # Compare-and-set: an update writes only over the version it read, so two
    # workers updating one conversation cannot lose each other's work.
    version = models.PositiveIntegerField(default=0)
    covers_position = models.IntegerField(default=-1, help_text="Position of the last turn the memory includes")
    covers_turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.EMPTY)
    error = models.TextField(blank=True)
    failed_attempts = models.PositiveIntegerField(default=0)
    model = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "conversation memories"

    def __str__(self) -> str:
        return f"memory v{self.version} of {self.conversation_id}"


class TaskLease(models.Model):
    """A background job's lease, renewed by the worker running it
    (memory/leases.py): a running job whose lease ran out lost its worker."""

    task_id = models.UUIDField(primary_key=True, help_text="The job's id in the tasks backend")
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="task_lease_expires_at")]

    def __str__(self) -> str:
        return f"lease of job {self.task_id} until {self.expires_at:%H:%M:%S}"


class ApiKey(models.Model):
    """A per-user key for `Authorization: Bearer`. Only its hash is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part of the key, for lookup and display")
    hashed_secret = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ModelPrice(models.Model):
    """A model's prices per million tokens, over LLM_PRICES."""

    model = models.CharField(max_length=200, unique=True, help_text="The upstream model id, as turns record it")
    input = models.DecimalField(max_digits=12, decimal_places=6, help_text="Per million prompt tokens")
    cached_input = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Per million cached prompt tokens (empty: input)",
    )
    output = models.DecimalField(max_digits=12, decimal_places=6, help_text="Per million output tokens")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model


class Budget(models.Model):
    """A user's or an API key's budget for a day or a month (UTC), over
    CHATSTREAM_DAILY_BUDGET / CHATSTREAM_MONTHLY_BUDGET."""

    class Period(models.TextChoices):
        DAY = "day"
        MONTH = "month"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="chatstream_budgets"
    )
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="budgets")
    period = models.CharField(max_length=8, choices=Period.choices)
    max_spend = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True, help_text="In the prices' currency (empty: no limit)"
    )
    max_tokens = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Prompt and output tokens together (empty: no limit)"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, api_key__isnull=True)
                | models.Q(user__isnull=True, api_key__isnull=False),
                name="budget_user_or_key",
            ),
            models.UniqueConstraint(fields=["user", "period"], name="budget_unique_user_period"),
            models.UniqueConstraint(fields=["api_key", "period"], name="budget_unique_key_period"),
        ]

    def __str__(self) -> str:
        return f"{self.period} budget of {self.user or self.api_key}"


class Spend(models.Model):
    """One model call's cost, for the budgets: an answer, the router's
    classifier, a memory update. A ledger kept apart from the turns, so
    deleting a conversation (while its answer streams or after) takes none
    of what it cost with it."""

    class Kind(models.TextChoices):
        ANSWER = "answer"
        ROUTING = "routing", "Routing classifier"
        MEMORY = "memory", "Memory update"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chatstream_spend")
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The key that asked"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    model = models.CharField(max_length=200, help_text="The upstream model id")
    # Plain ids, not foreign keys: the row outlives the conversation and turn.
    conversation_id = models.UUIDField(null=True, blank=True)
    turn_id = models.UUIDField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(null=True, blank=True)
    tokens_cached = models.PositiveIntegerField(null=True, blank=True)
    tokens_out = models.PositiveIntegerField(null=True, blank=True)
    tokens_estimated = models.BooleanField(default=False)
    cost = models.DecimalField(
        max_digits=18, decimal_places=10, null=True, blank=True, help_text="In the prices' currency; empty: no price"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "spend"
        indexes = [
            models.Index(fields=["user", "created_at"], name="spend_user_time"),
            models.Index(fields=["api_key", "created_at"], name="spend_key_time"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["turn_id"], condition=models.Q(kind="answer"), name="spend_one_row_per_answer"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.model}: {self.cost if self.cost is not None else 'unpriced'}"
