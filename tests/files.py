"""Files for the upload tests: made here, small and real."""

import io
from pathlib import Path

import httpx
from PIL import Image


def upload(api_user, name: str, content: bytes, content_type: str = "application/octet-stream") -> httpx.Response:
    return api_user.client.post("/api/files", files={"file": (name, content, content_type)})


def on_disk(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def png(width: int = 4, height: int = 3, color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def image(kind: str, width: int = 5, height: int = 2) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "blue").save(buffer, format=kind)
    return buffer.getvalue()
