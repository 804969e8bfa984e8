"""chatstream's models, one module per concern; the migrations and every
import name them from here (`conversations.models`)."""

from .access import ApiKey
from .conversations import Conversation, Feedback, Prompt, ReviewItem, Turn
from .data import DataEvent
from .files import StoredFile
from .memory import ConversationMemory, TaskLease
from .queued import QueuedMessage
from .sharing import SharedLink
from .spend import Budget, ModelPrice, Reservation, Spend
from .tools import AnswerStep, ToolRun

__all__ = [
    "AnswerStep",
    "ApiKey",
    "Budget",
    "Conversation",
    "ConversationMemory",
    "DataEvent",
    "Feedback",
    "ModelPrice",
    "Prompt",
    "QueuedMessage",
    "Reservation",
    "ReviewItem",
    "SharedLink",
    "Spend",
    "StoredFile",
    "TaskLease",
    "ToolRun",
    "Turn",
]
