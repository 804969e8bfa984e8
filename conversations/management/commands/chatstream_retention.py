"""Run the retention sweep now, or say what it would delete (--dry-run)."""

from django.core.management.base import BaseCommand, CommandError

from conversations.conf import conf
from conversations.data import retention


class Command(BaseCommand):
    help = "Delete the conversations CHATSTREAM_RETENTION_DAYS makes due, now (--dry-run: only count them)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count and list what is due; delete nothing")

    def handle(self, *args, dry_run: bool = False, **options) -> None:
        if not conf.CHATSTREAM_RETENTION_DAYS:
            raise CommandError("Retention is off: set CHATSTREAM_RETENTION_DAYS to the days a conversation is kept.")
        if dry_run:
            due = retention.preview()
            self.stdout.write(f"{due['conversations']} conversations, {due['turns']} turns, {due['files']} files due")
            for conversation in due["oldest"]:
                self.stdout.write(
                    f"  {conversation.pk}  {conversation.owner}  last touched {conversation.updated_at:%Y-%m-%d}"
                )
            return
        counts = retention.run_sweep()
        self.stdout.write("deleted: " + (", ".join(f"{n} {name}" for name, n in counts.items()) or "nothing"))
