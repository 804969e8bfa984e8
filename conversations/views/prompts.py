"""The staff's named prompts a conversation may start from
(`{"prompt": "<name>"}` on POST api/conversations), listed for any signed-in
user: the chat page offers them for a new conversation."""

from django.http import HttpRequest, HttpResponse, JsonResponse

from .. import selectors
from ..serializers import prompt_json
from ..storage.threads import run_db
from .errors import api_view


@api_view("GET")
async def prompts(request: HttpRequest, user) -> HttpResponse:
    """Every prompt, by name: what it says it is for, and what it sets."""
    listed = await run_db(selectors.prompts)
    return JsonResponse({"prompts": [prompt_json(prompt) for prompt in listed]})
