"""What kind of image a file is, judged by its first bytes, never by its name."""

# magic bytes -> (extension, content type)
SIGNATURES = [
    (b"\xff\xd8\xff", ("jpg", "image/jpeg")),
    (b"\x89PNG\r\n\x1a\n", ("png", "image/png")),
    (b"GIF87a", ("gif", "image/gif")),
    (b"GIF89a", ("gif", "image/gif")),
]


def sniff(data: bytes) -> tuple[str, str] | None:
    """(extension, content type) for a JPEG, PNG or GIF; None for anything else."""
    for magic, kind in SIGNATURES:
        if data.startswith(magic):
            return kind
    return None
