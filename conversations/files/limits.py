"""How large an upload may be: read by the views and by the ASGI guard,
which runs before the models are loaded (so nothing here imports them)."""

from ..conf import conf
from ..exceptions import ApiError

# A multipart body is its file plus boundaries and part headers: this much
# over the file limit is allowed in Content-Length before it is refused.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def file_too_large() -> ApiError:
    limit = conf.CHATSTREAM_MAX_FILE_BYTES
    return ApiError(413, "file_too_large", f"The file is larger than {limit} bytes, the most a file may be.")


def body_limit() -> int:
    """The largest upload request body, file and multipart framing."""
    return conf.CHATSTREAM_MAX_FILE_BYTES + MULTIPART_OVERHEAD_BYTES
