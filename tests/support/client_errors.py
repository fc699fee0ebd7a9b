"""What every answer to a client's request must be, however bad the request: no 5xx, JSON,
no internals (stack traces, SQL, driver messages), and never the masked INTERNAL error, which
is for the server's own faults, not for input the client controls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

# Compared case-insensitively with every string of a response body. Inputs that hold one of
# them are not sent (see `leaks_in`), so a value echoed back is never mistaken for a leak.
LEAK_MARKERS = (
    "Traceback", 'File "', "sqlalchemy", "asyncpg", "psycopg", "SELECT ", "INSERT ", "UPDATE ",
    "DELETE FROM", "syntax error at", "invalid byte sequence", "violates", "duplicate key",
    "DataError", "OverflowError", "UnicodeEncodeError", "KeyError", "AttributeError",
)  # fmt: skip


def leaks_in(text: str) -> list[str]:
    """The markers of leaked internals that a text holds."""
    folded = text.casefold()
    return [marker for marker in LEAK_MARKERS if marker.casefold() in folded]


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def sound(response: httpx.Response) -> Any:
    """The JSON body of an answer, after checking it is one a client may get for any input."""
    context = f"{response.request.method} -> {response.status_code}: {response.text[:2000]}"
    assert response.status_code < 500, context
    assert response.headers.get("content-type", "").startswith("application/json"), context
    body = json.loads(response.text)
    for text in _strings(body):
        assert not leaks_in(text), f"leaked {leaks_in(text)}: {context}"
    errors = (body.get("errors") if isinstance(body, dict) else None) or []
    codes = [(error.get("extensions") or {}).get("code") for error in errors]
    assert "INTERNAL" not in codes, context
    return body


def refusal(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    """The error of a request refused before GraphQL ran: `status`, and errors[0] in JSON."""
    body = sound(response)
    assert response.status_code == status, response.text
    error: dict[str, Any] = body["errors"][0]
    assert error["message"], body
    assert error["extensions"]["code"], body
    return error


async def post_json(client: httpx.AsyncClient, url: str, body: object) -> httpx.Response:
    """POST a JSON body written with ASCII escapes, so lone surrogates ("\\ud800") reach the
    server as JSON allows (httpx's own `json=` encodes UTF-8, which cannot hold them)."""
    content = json.dumps(body)
    return await client.post(url, content=content, headers={"Content-Type": "application/json"})
