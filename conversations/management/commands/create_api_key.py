from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from conversations.access import api_keys


class Command(BaseCommand):
    help = "Create an API key for a user and print it. It is shown this once only."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label to recognise the key by in the admin.")

    def handle(self, *args, username: str, name: str, **options) -> None:
        try:
            user = get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"There is no user {username!r}. Create one with `manage.py createsuperuser`.") from None
        key, raw = api_keys.create_api_key(user=user, name=name)
        self.stderr.write(f"API key {key.prefix} for {username}; it will not be shown again:")
        self.stdout.write(raw)
