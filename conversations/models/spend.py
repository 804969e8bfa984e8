"""Prices, budgets and the ledger of what each model call cost (spend/)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from .access import ApiKey


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


class Reservation(models.Model):
    """The most an answer's model call may still cost, held against the
    budgets while it streams (spend/reservations.py): settled when the
    answer's ledger row is written (in the same transaction), and lapsing
    at `expires_at` unless the process streaming it renews it, so a crashed
    process holds no budget for long. One per answer."""

    turn_id = models.UUIDField(primary_key=True, help_text="The answer's turn")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    cost = models.DecimalField(
        max_digits=18, decimal_places=10, default=0, help_text="Reserved, in the prices' currency (0: no price)"
    )
    tokens = models.PositiveIntegerField(default=0, help_text="Reserved, prompt and output")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="reservation_user_expiry")]

    def __str__(self) -> str:
        return f"{self.cost} and {self.tokens} tokens reserved for {self.turn_id}"
