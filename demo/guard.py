"""What the app's HTTP server refuses before Gradio sees a request (DESIGN §8b): oversized bodies, remote files.

Gradio streams uploads to disk under its own `max_file_size`, but a JSON body (an API call carrying a base64
data: URL, or any payload) has no limit of its own, and a FileData whose "path" is an http(s) URL makes Gradio
download that URL on the server before the app's code runs. `RequestGuard` closes both, for every route.
"""

from __future__ import annotations

import json
from typing import Any

REMOTE_FILE_MESSAGE = (
    "This app does not fetch files from URLs. Upload the photo itself (POST /gradio_api/upload), "
    "then send the path Gradio returned."
)


def names_a_remote_file(value: Any) -> bool:
    """Whether a decoded JSON payload holds a Gradio file object (a dict with "meta") whose "path" is a URL.

    Gradio downloads such a file server-side before any handler runs; a dict without "meta" is not a file
    object to Gradio and reaches the app's own check (`demo.ui.upload_source`).
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            path = item.get("path")
            if "meta" in item and isinstance(path, str) and "://" in path:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class RequestGuard:
    """ASGI middleware: 413 for request bodies over `max_bytes`, 400 for JSON that names a file by URL.

    The body is read (at most `max_bytes`) before the app sees it, then handed on unchanged; a declared
    Content-Length over the limit is refused without reading anything.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        too_big = (
            f"The request is larger than {self.max_bytes // 2**20} MB. Send smaller photos "
            "(a few megapixels each is plenty)."
        )
        if declared and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _reply(send, 413, too_big)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _reply(send, 413, too_big)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        # FastAPI reads a body as JSON whatever its content type says, so look at the bytes themselves.
        if body.lstrip()[:1] in (b"{", b"[") and (b"://" in body or b"\\u" in body):
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None  # not our business: the route answers malformed JSON itself
            if names_a_remote_file(payload):
                await _reply(send, 400, REMOTE_FILE_MESSAGE)
                return

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
