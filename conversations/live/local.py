"""One process: the answers being generated are in this process's registry."""

import uuid
from typing import TYPE_CHECKING, Any, cast

from ..stream import registry
from .base import LiveAnswer

if TYPE_CHECKING:
    from ..stream.relay import AnswerRelay


class LocalAnswers:
    async def publish(self, relay: "AnswerRelay") -> None:
        """Nothing to do: `relay.start()` has registered it."""

    async def find(self, turn_id: uuid.UUID) -> LiveAnswer | None:
        return cast("LiveAnswer | None", registry.find(turn_id))

    async def generating_in(self, conversation_id: uuid.UUID) -> list[dict[str, Any]]:
        answers = sorted(registry.in_conversation(conversation_id), key=lambda answer: answer.prepared.answer_position)
        return [
            {"turn_id": str(answer.prepared.answer_turn_id), "position": answer.prepared.answer_position}
            for answer in answers
        ]
