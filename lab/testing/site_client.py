"""Drive a stage's site over HTTP the way a browser does: upload, comment, view.

Every stage has the same pages and forms, so the tests of every stage and the outage drill share
this client. Each call is a fresh connection, like a separate visitor.
"""

from __future__ import annotations

import struct
import zlib

import requests

DEFAULT_TIMEOUT = 30.0


def tiny_png(seed: int = 0) -> bytes:
    """A valid 1x1 PNG; `seed` changes its colour so files differ."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixel = bytes([0, seed % 256, (seed * 7) % 256, (seed * 13) % 256])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(pixel))
        + chunk(b"IEND", b"")
    )


# A 1x1 GIF and the first bytes of a JPEG: what the site checks is the signature.
TINY_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
JPEG_START = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


class SiteClient:
    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")

    def url(self, path: str) -> str:
        return self.base_url + path

    def home(self, timeout: float = DEFAULT_TIMEOUT) -> requests.Response:
        return requests.get(self.url("/"), timeout=timeout)

    def photo_page(self, photo_id: int, timeout: float = DEFAULT_TIMEOUT) -> requests.Response:
        return requests.get(self.url(f"/photos/{photo_id}"), timeout=timeout)

    def upload(
        self,
        image: bytes | None = None,
        *,
        user: str = "alice",
        caption: str = "Check out this cool pic.",
        tweet: bool = True,
        filename: str = "photo.png",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> requests.Response:
        data = {"user": user, "caption": caption}
        if tweet:
            data["tweet"] = "1"
        files = {"photo": (filename, tiny_png() if image is None else image)}
        return requests.post(
            self.url("/upload"), data=data, files=files, timeout=timeout, allow_redirects=False
        )

    def comment_each(self, photo: int, bodies: list[str]) -> None:
        """One comment per body, each saved (303), one after another."""
        for body in bodies:
            assert self.comment(photo, body).status_code == 303, body

    def comment(
        self,
        photo_id: int,
        body: str,
        *,
        user: str = "bob",
        tweet: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> requests.Response:
        data = {"user": user, "body": body}
        if tweet:
            data["tweet"] = "1"
        return requests.post(
            self.url(f"/photos/{photo_id}/comments"), data=data, timeout=timeout, allow_redirects=False
        )

    def new_photo(self, **upload_options) -> int:
        """Upload a photo without tweeting it; its id."""
        response = self.upload(tweet=False, **upload_options)
        if response.status_code != 303:
            raise AssertionError(f"upload failed: {response.status_code} {response.text[:200]}")
        return photo_id_from(response)


def photo_id_from(response: requests.Response) -> int:
    """The photo id in a 303 redirect to /photos/<id>."""
    location = response.headers["Location"].split("#", 1)[0]
    return int(location.rstrip("/").rsplit("/", 1)[1])
