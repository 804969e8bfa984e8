"""Two tools for the offline demo, to be named in CHATSTREAM_TOOLS:

    CHATSTREAM_TOOLS=conversations.tools.demo.current_time,conversations.tools.demo.lookup_order

`current_time` needs nothing; `lookup_order` reads the user through its
ToolContext (the ORM, from its thread) and needs the user's approval.
Nothing here is real: the order is made up from its number.
"""

import datetime
import hashlib
import zoneinfo
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field

from .context import ToolContext
from .definition import tool

PRODUCTS = ["Espresso beans, 1 kg", "Pour-over kettle", "Ceramic dripper", "Paper filters (100)", "Hand grinder"]
STATUSES = ["processing", "shipped", "delivered"]


@tool
def current_time(
    timezone: Annotated[str, Field(description="An IANA time zone, such as Europe/Paris or America/New_York")] = "UTC",
) -> dict[str, str]:
    """The current date and time in a time zone (UTC unless one is given)."""
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{timezone!r} is not an IANA time zone; try one such as Europe/Paris.") from None
    now = datetime.datetime.now(zone)
    return {"timezone": timezone, "time": now.isoformat(timespec="seconds"), "weekday": now.strftime("%A")}


class OrderLine(BaseModel):
    product: str
    quantity: int
    price: Decimal


class Order(BaseModel):
    order_id: str
    customer: str
    status: str
    placed_on: datetime.date
    lines: list[OrderLine]
    total: Decimal


@tool(needs_approval=True)
def lookup_order(
    order_id: Annotated[str, Field(description="The order's number, e.g. A-1042", min_length=1, max_length=40)],
    context: ToolContext,
) -> Order:
    """Look up one of the user's orders: its status, what it holds and its total."""
    # The same made-up order each time for one user and number.
    seed = hashlib.sha256(f"{context.user_id}:{order_id}".encode()).digest()
    lines = [
        OrderLine(product=PRODUCTS[(seed[i] + i) % len(PRODUCTS)], quantity=1 + seed[i + 3] % 3, price=_price(seed[i]))
        for i in range(1 + seed[0] % 3)
    ]
    return Order(
        order_id=order_id,
        customer=context.user.get_username(),  # as that user: read through the ORM on the tool's thread
        status=STATUSES[seed[1] % len(STATUSES)],
        placed_on=datetime.date.today() - datetime.timedelta(days=seed[2] % 30),
        lines=lines,
        total=sum((line.price * line.quantity for line in lines), Decimal("0")),
    )


def _price(byte: int) -> Decimal:
    return Decimal(5 + byte % 60) + Decimal("0.99")
