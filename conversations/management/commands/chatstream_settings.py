"""`manage.py chatstream_settings`: every chatstream setting, its value here
and its default. `--markdown` prints the table docs/configuration.md holds,
`--env` the lines .env.example holds."""

from django.core.management.base import BaseCommand

from conversations.conf import Setting, Settings, conf


def _shown(value: object) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


def _default(setting: Setting) -> str:
    if setting.empty_means and not setting.default:
        return f"`{setting.empty_means}`"
    shown = _shown(setting.default)
    return f"`{shown}`" if shown else "empty"


def markdown_table() -> str:
    rows = ["| setting | default | |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {_default(s)} | {s.description} |" for s in Settings.declared()]
    return "\n".join(rows) + "\n"


def env_example() -> str:
    lines = []
    for setting in Settings.declared():
        lines.append(f"# {setting.description}")
        lines.append(f"# {setting.name}={_shown(setting.default)}")
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = "Show chatstream's settings: each one's value here and its default."

    def add_arguments(self, parser):
        formats = parser.add_mutually_exclusive_group()
        formats.add_argument("--markdown", action="store_true", help="the table of docs/configuration.md")
        formats.add_argument("--env", action="store_true", help="the app's part of .env.example")

    def handle(self, *args, markdown: bool, env: bool, **options) -> None:
        if markdown:
            self.stdout.write(markdown_table(), ending="")
            return
        if env:
            self.stdout.write(env_example(), ending="")
            return
        width = max(len(setting.name) for setting in Settings.declared())
        for setting in Settings.declared():
            value = getattr(conf, setting.name)
            shown = "(set)" if setting.secret and value else (_shown(value) or "(empty)")
            marker = "" if value == setting.default else "   (default: " + _default(setting).strip("`") + ")"
            self.stdout.write(f"{setting.name.ljust(width)}  {shown}{marker}")
