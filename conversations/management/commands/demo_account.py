from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

USERNAME = "demo"
PASSWORD = "demo-password"  # DEBUG only: the command refuses to run otherwise


class Command(BaseCommand):
    help = "In DEBUG, make sure a staff 'demo' account exists and print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, url: str, **options) -> None:
        if not settings.DEBUG:
            self.stdout.write("DEBUG is off: no demo account is made. Use `manage.py createsuperuser`.")
            return
        User = get_user_model()
        user, created = User._default_manager.get_or_create(
            **{User.USERNAME_FIELD: USERNAME}, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(PASSWORD)
            user.save()
        self.stdout.write(
            f"\nchatstream is starting at {url}\n  log in as {USERNAME} / {PASSWORD}   (admin: {url}admin/)\n"
        )
