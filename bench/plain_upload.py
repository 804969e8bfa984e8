"""A plain Django upload view: the peer of bench/files.py.

Written as Django's documentation writes one: `settings.configure()`, one
sync view that saves `request.FILES["file"]` with `default_storage` (a
FileSystemStorage at MEDIA_ROOT), Django's own ASGI handler and upload
handlers (the body spooled by the handler, then the file in memory up to
FILE_UPLOAD_MAX_MEMORY_SIZE, in a temporary file past it). No
authentication, no database, no size limit, no look at what the file is:
the floor Django's stock handling sets, so every ratio to it flatters it.
bench/files.py runs it under the app's server, on the app's CPU.

    PLAIN_UPLOAD_MEDIA_ROOT=/tmp/media uvicorn bench.plain_upload:application
"""

import os
import uuid

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.files.storage import default_storage
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="plain-upload",
    INSTALLED_APPS=[],
    DATABASES={},
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    MEDIA_ROOT=os.environ["PLAIN_UPLOAD_MEDIA_ROOT"],
    DATA_UPLOAD_MAX_MEMORY_SIZE=None,  # the file part is not counted; the other fields are, and there are none
)


@csrf_exempt
@require_POST
def upload(request: HttpRequest) -> JsonResponse:
    upload = request.FILES["file"]
    name = default_storage.save(f"uploads/{uuid.uuid4().hex}", upload)
    return JsonResponse({"id": name, "size": upload.size}, status=201)


urlpatterns = [path("upload", upload)]

application = get_asgi_application()  # calls django.setup()
