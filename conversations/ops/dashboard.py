"""The admin's stream dashboard and a turn's token timeline, drawn as plain
SVG on the server (no script, nothing to vendor).

    the dashboard      time to first output and to the first answer token
                       (p50, p95) and tokens per second by day and model,
                       finish reasons, and spend by day, model, user and
                       API key, over DAYS days
    a turn's page      its tokens' arrival: one bar per gap, tall and red
                       where the stream stalled
"""

import datetime
import math
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from ..models import Spend, Turn

DAYS = 14
WIDTH, HEIGHT, PAD = 640, 180, 36
COLOURS = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")
STALL_MS = 1000  # a gap this long between tokens is drawn as a stall


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class Chart:
    title: str
    unit: str
    days: list[datetime.date]
    lines: list[dict]  # {"label", "colour", "points": "x,y x,y"}
    ceiling: float

    @property
    def ticks(self) -> list[dict]:
        return [
            {"y": _y(self.ceiling * share, self.ceiling), "label": f"{self.ceiling * share:.0f}"}
            for share in (0, 0.5, 1)
        ]

    @property
    def day_labels(self) -> list[dict]:
        step = max(1, len(self.days) // 7)  # the newest day is always labelled
        return [
            {"x": _x(i, len(self.days)), "label": day.strftime("%d %b")}
            for i, day in enumerate(self.days)
            if (len(self.days) - 1 - i) % step == 0
        ]


def _x(index: int, count: int) -> float:
    return PAD + (WIDTH - 2 * PAD) * (index / max(1, count - 1))


def _y(value: float, ceiling: float) -> float:
    return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value / ceiling if ceiling else 0)


def _line_chart(title: str, unit: str, days: list, series: dict[str, dict]) -> Chart:
    """series: label -> {day: value}; days without a value are skipped."""
    ceiling = max((v for values in series.values() for v in values.values()), default=0) * 1.1 or 1
    lines = []
    for number, (label, values) in enumerate(sorted(series.items())):
        dots = [
            (f"{_x(i, len(days)):.1f}", f"{_y(values[day], ceiling):.1f}")
            for i, day in enumerate(days)
            if day in values
        ]
        points = " ".join(f"{x},{y}" for x, y in dots)
        lines.append({"label": label, "colour": COLOURS[number % len(COLOURS)], "points": points, "dots": dots})
    return Chart(title, unit, days, lines, ceiling)


def dashboard_data(now: datetime.datetime | None = None) -> dict:
    now = now or timezone.now()
    first_day = (now - datetime.timedelta(days=DAYS - 1)).date()
    days = [first_day + datetime.timedelta(days=i) for i in range(DAYS)]
    rows = (
        Turn.objects.filter(role=Turn.Role.ASSISTANT, created_at__date__gte=first_day)
        .annotate(day=TruncDate("created_at"))
        .values_list("day", "model", "finish_reason", "ttft_ms", "ttft_answer_ms", "duration_ms", "tokens_out")
    )
    ttft: defaultdict[tuple, list[float]] = defaultdict(list)
    ttft_answer: defaultdict[tuple, list[float]] = defaultdict(list)
    speed: defaultdict[tuple, list[float]] = defaultdict(list)
    reasons: Counter[str] = Counter()
    for day, model, finish_reason, ttft_ms, ttft_answer_ms, duration_ms, tokens_out in rows:
        reasons[finish_reason or "—"] += 1
        if ttft_answer_ms is not None:
            ttft_answer[(model, day)].append(ttft_answer_ms)
        if ttft_ms is not None:
            ttft[(model, day)].append(ttft_ms)
            if duration_ms and tokens_out and duration_ms > ttft_ms:
                speed[(model, day)].append(tokens_out / ((duration_ms - ttft_ms) / 1000))
    charts = []
    for title, unit, samples in (
        ("Time to first output", "ms", ttft),
        ("Time to first answer token", "ms", ttft_answer),
        ("Tokens per second", "tokens/s", speed),
    ):
        series: defaultdict[str, dict] = defaultdict(dict)
        for (model, day), values in samples.items():
            for share in (0.5, 0.95):
                series[f"{model or '—'} p{round(share * 100)}"][day] = percentile(values, share)
        charts.append(_line_chart(title, unit, days, series))
    total = sum(reasons.values())
    finish = [
        {"reason": reason, "count": count, "width": round(100 * count / total, 1)}
        for reason, count in reasons.most_common()
    ]
    return {
        "charts": charts,
        "finish_reasons": finish,
        "spend": spend_tables(first_day),
        "answers": total,
        "days": DAYS,
        "width": WIDTH,
        "height": HEIGHT,
    }


SPEND_ROWS = 20  # the biggest spenders shown per table


def spend_tables(first_day: datetime.date) -> list[dict]:
    """Spend and tokens since `first_day`, by day, model, user and API key,
    from the ledger: every model call (answers, the router's classifier,
    memory updates), deleted conversations' included."""
    calls = Spend.objects.filter(created_at__date__gte=first_day)
    login = f"user__{get_user_model().USERNAME_FIELD}"
    groups = (
        ("Day", calls.annotate(day=TruncDate("created_at")), "day", "-day"),
        ("Model", calls, "model", "-spend"),
        ("User", calls, login, "-spend"),
        ("API key", calls.filter(api_key__isnull=False), "api_key__prefix", "-spend"),
    )
    tables = []
    for title, queryset, field, order in groups:
        rows = (
            queryset.values(field)
            .annotate(spend=Sum("cost"), calls=Count("id"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"))
            .order_by(order)[:SPEND_ROWS]
        )
        heading = title if title.isupper() or " " in title else title.lower()
        tables.append(
            {"title": title, "heading": heading, "rows": [{**row, "label": row[field] or "—"} for row in rows]}
        )
    return tables


# --- a turn's timeline ---------------------------------------------------------------


def encode_gaps(gaps_ms: array) -> bytes:
    return gaps_ms.tobytes()


def decode_gaps(raw: bytes | memoryview | None) -> list[int]:
    gaps = array("H")
    if raw:
        gaps.frombytes(bytes(raw))
    return gaps.tolist()


def timeline_svg(raw: bytes | memoryview | None) -> str:
    """The wait for the first token as a grey band, then one bar per later
    piece of text at its arrival, as tall as the gap before it (red from
    STALL_MS up): a slow start, a steady stream or a stall at a glance."""
    gaps = decode_gaps(raw)
    if not gaps:
        return "—"
    first, later = gaps[0], gaps[1:]
    total, tallest = sum(gaps) or 1, max(later, default=0) or 1
    width, height = 600, 90
    scale = (width - 8) / total
    bars, at = [], first
    for gap in later:
        at += gap
        bar = max(1.0, (height - 20) * gap / tallest)
        colour = "#dc2626" if gap >= STALL_MS else "#2563eb"
        bars.append((f"{4 + at * scale:.1f}", f"{height - 14 - bar:.1f}", f"{bar:.1f}", colour, gap))
    stalls = sum(gap >= STALL_MS for gap in later)
    caption = (
        f"first token after {first} ms · {len(gaps)} pieces over {total / 1000:.2f} s"
        f" · longest gap {max(later, default=0)} ms · {stalls} stall(s) ≥ {STALL_MS} ms"
    )
    return format_html(
        '<svg class="token-timeline" width="{}" height="{}" role="img" aria-label="{}">'
        '<rect x="4" y="6" width="{}" height="{}" fill="#e5e7eb"><title>first token: {} ms</title></rect>{}'
        '<text x="4" y="{}" font-size="11">{}</text></svg>',
        width,
        height,
        caption,
        f"{first * scale:.1f}",
        height - 20,
        first,
        format_html_join("", '<rect x="{}" y="{}" width="1.5" height="{}" fill="{}"><title>{} ms</title></rect>', bars),
        height - 2,
        caption,
    )
