"""A file's size for people to read, the one way the admin and the
exports write it: "512 bytes", "12 KB", "1.2 MB" (1024 to a KB)."""

UNITS = ("KB", "MB", "GB", "TB")


def human_size(size: int) -> str:
    if size < 1024:
        return "1 byte" if size == 1 else f"{size} bytes"
    value = float(size)
    for unit in UNITS:
        value /= 1024
        if value < 1024 or unit == UNITS[-1]:
            break
    shown = f"{value:.1f}".removesuffix(".0") if value < 10 else f"{value:.0f}"
    return f"{shown} {unit}"
