"""chatstream's project settings, served on the stack CHATSTREAM_STACK names
(harness/stacks.py; `fast`, the project's own, by default)."""

import os

from chatstream.settings import *  # noqa: F403
from chatstream.settings import MIDDLEWARE, SILENCED_SYSTEM_CHECKS
from harness import stacks

STACK = stacks.checked(os.environ.get("CHATSTREAM_STACK", "fast"))
MIDDLEWARE = stacks.middleware(STACK, MIDDLEWARE)
if not stacks.uses_opt_in_middleware(STACK):
    # Django's own deploy checks see the stock middleware again.
    SILENCED_SYSTEM_CHECKS = [check for check in SILENCED_SYSTEM_CHECKS if not check.startswith("security.W00")]
