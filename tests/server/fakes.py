"""In-process stand-ins for the dispatcher's and the settler's surroundings: a fake
sender (replies by URL path, no network) and a clock the test moves."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pushq.server.config import Settings
from pushq.server.delivery import DeliveryFailed, DeliveryRequest, DeliveryResponse
from pushq.signing import generate_secret

OK = DeliveryResponse(200, {}, b"ok")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSender:
    """Answers each request by its URL's path: a response, or an exception to raise."""

    def __init__(self, replies: dict[str, DeliveryResponse | Exception] | None = None) -> None:
        self.replies = replies or {}
        self.sent: list[DeliveryRequest] = []

    async def send(self, request: DeliveryRequest) -> DeliveryResponse:
        self.sent.append(request)
        reply = self.replies.get(urlsplit(request.url).path, OK)
        if isinstance(reply, (DeliveryFailed, Exception)):
            raise reply
        return reply

    async def aclose(self) -> None:
        pass


def settings(tmp_path: Path, **changes: object) -> Settings:
    return Settings(
        api_token="t" * 20,
        signing_secrets=(generate_secret(),),
        data_dir=tmp_path,
        **changes,  # type: ignore[arg-type]
    )
