"""The export's memory: a user's zip (`GET api/me/export`) of MB megabytes
of files, read through as the response would send it, with the process's
peak RSS measured over the export alone.

    python -m bench.export [--mb 50] [--files 25]

In one process, on SQLite in a temporary folder (the rows are few; the
bytes are the point), with FileSystemStorage in another. The files' bytes
are random (incompressible: deflate cannot shrink what is held). The peak
(VmHWM) is reset just before the export (`clear_refs` 5) and read after;
growth is that peak less the RSS before. Beside it, the same zip built in a
BytesIO, as an export that is not streamed would: its growth is the size.
"""

import argparse
import asyncio
import io
import os
import tempfile
import zipfile
from pathlib import Path

MIB = 1024 * 1024


def status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def reset_peak() -> int:
    Path("/proc/self/clear_refs").write_text("5")
    return status("VmRSS")


def setup(folder: str) -> None:
    os.environ.update(
        SECRET_KEY="bench", DATABASE_URL=f"sqlite:///{folder}/db.sqlite3", CHATSTREAM_ENV_FILE="", DEBUG="false"
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatstream.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.STORAGES = {
        **settings.STORAGES,
        "chatstream": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": folder}},
    }
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def user_with_files(total_mb: int, count: int):
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile

    from conversations import services
    from conversations.files.storage import file_storage, new_path
    from conversations.models import StoredFile

    user = get_user_model().objects.create_user("exporter")
    conversation = services.create_conversation(owner=user)
    size = total_mb * MIB // count
    for n in range(count):
        path = file_storage().save(new_path(user.pk), ContentFile(os.urandom(size)))
        StoredFile.objects.create(
            owner=user,
            conversation=conversation,
            name=f"f{n}.bin",
            kind="text",
            content_type="text/plain",
            size=size,
            path=path,
        )
    return user


async def streamed(user) -> int:
    from conversations.data.export import ExportZip

    sent = 0
    async for chunk in ExportZip(user):
        sent += len(chunk)  # as the server sends it on: nothing kept
    return sent


async def in_memory(user) -> int:
    from conversations.data.export import ExportZip

    whole = io.BytesIO()
    async for chunk in ExportZip(user):
        whole.write(chunk)
    zipfile.ZipFile(whole).testzip()
    return len(whole.getvalue())


def measure(label: str, run, user) -> None:
    before = reset_peak()
    size = asyncio.run(run(user))
    growth = status("VmHWM") - before
    print(f"{label:>10}: zip {size / MIB:6.1f} MiB, peak RSS growth {growth / MIB:6.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--files", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        setup(folder)
        user = user_with_files(args.mb, args.files)
        print(f"{args.mb} MiB in {args.files} files")
        asyncio.run(streamed(user))  # warm: imports, the database threads, the first connection
        measure("streamed", streamed, user)
        measure("in memory", in_memory, user)


if __name__ == "__main__":
    main()
