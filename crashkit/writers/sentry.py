"""Sending events to a Sentry-protocol server (Sentry, bugsink), through the
official sentry-sdk's transport.

sentry-sdk's own client sends from a background thread and drops what fails
(it is made for a live program that must never wait on its error
reporting). crashkit must know, per crash, whether the server took it, so
that a failure is retried on the next run: this transport builds the
envelope with sentry-sdk's Envelope and Attachment, compresses, signs and
posts it with sentry-sdk's HttpTransport machinery (DSN parsing, the
X-Sentry-Auth header, gzip/brotli, proxies, CA bundle, rate-limit headers),
and returns the server's answer to the caller instead of queueing it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from crashkit.errors import InputError

if TYPE_CHECKING:
    from sentry_sdk._types import Event

ATTACHMENT_LIMIT = 1 << 20  # bytes of report.md sent; Sentry takes far more, bugsink ignores it


@dataclass(frozen=True)
class Answer:
    """What the server said to one event."""

    ok: bool
    status: int | None  # HTTP status, None when nothing was answered
    detail: str  # the server's body (cut) or the network error
    retry_after: float | None = None  # seconds, from a 429's headers


def target_of(dsn: str) -> str:
    """Where a DSN sends, without its key: the index's name for the server
    and project (keys rotate; the project stays)."""
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        d = Dsn(dsn)
    except BadDsn as exc:
        raise InputError(f"not a Sentry DSN ({exc}): expected "
                         "https://KEY@HOST/PROJECT_ID", path="--sentry") from None
    return f"{d.scheme}://{d.netloc}{d.path}{d.project_id}"


class Sender:
    """One server. ``send`` posts one event (and its attachments) and waits."""

    def __init__(self, dsn: str, *, timeout: float = 30.0) -> None:
        from sentry_sdk.consts import DEFAULT_OPTIONS
        from sentry_sdk.transport import HttpTransport

        target_of(dsn)  # a bad DSN is bad input, before anything is sent
        options = dict(DEFAULT_OPTIONS)
        options.update(dsn=dsn, send_client_reports=False)

        class _Transport(HttpTransport):
            TIMEOUT = int(timeout)

        self._transport = _Transport(options)
        self.dsn = dsn

    def send(self, event: dict[str, Any],
             attachments: tuple[tuple[str, bytes, str], ...] = ()) -> Answer:
        """Post ``event`` with (filename, bytes, content type) attachments."""
        from sentry_sdk.attachments import Attachment
        from sentry_sdk.consts import EndpointType
        from sentry_sdk.envelope import Envelope
        from urllib3.exceptions import HTTPError

        t = self._transport
        envelope = Envelope(headers={"event_id": event["event_id"],
                                     "sent_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                              time.gmtime())})
        envelope.add_event(cast("Event", event))
        for name, data, content_type in attachments:
            envelope.add_item(Attachment(bytes=data[:ATTACHMENT_LIMIT], filename=name,
                                         content_type=content_type).to_envelope_item())
        prepared = t._prepare_envelope(envelope)
        if prepared is None:  # every item is under a rate limit the server set
            return Answer(False, 429, "the server asked to wait (rate limit)")
        _envelope, body, headers = prepared
        t._update_headers(headers)
        try:
            response = t._request("POST", EndpointType.ENVELOPE, body.getvalue(), headers)
        except (HTTPError, OSError) as exc:  # refused, DNS, TLS, timeout
            return Answer(False, None, self._unreachable(exc))
        try:
            t._update_rate_limits(response)
            status = int(response.status)
            text = bytes(response.data or b"")[:300].decode("utf-8", "replace")
            retry = response.headers.get("Retry-After")
        finally:
            response.close()
        try:
            retry_after = float(retry) if retry else None
        except ValueError:
            retry_after = None
        return Answer(200 <= status < 300, status, _one_line(text), retry_after)

    def _unreachable(self, exc: BaseException) -> str:
        """urllib3's error in a few words: "cannot reach HOST:PORT: Connection refused"."""
        reason = str(getattr(exc, "reason", None) or exc)
        if "] " in reason and "[Errno" in reason:
            reason = reason.rsplit("] ", 1)[1]
        elif ": " in reason:
            reason = reason.rsplit(": ", 1)[1]
        d = self._transport.parsed_dsn
        where = d.netloc if d is not None else "the server"
        return _one_line(f"cannot reach {where}: {reason.strip(chr(34) + chr(39) + ')')}")

    def close(self) -> None:
        self._transport.kill()


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
