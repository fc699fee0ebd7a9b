"""The playground's pages and static files."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app.web.playground.examples import EXAMPLES

STATIC = Path(__file__).parent / "static"
STATIC_PREFIX = "/static"


@cache
def graphiql_html() -> str:
    """GraphiQL with one tab per example; the JSON is safe inside a <script> element."""
    tabs = [
        {"query": example.document, "variables": json.dumps(example.variables, indent=2)}
        for example in EXAMPLES
    ]
    payload = json.dumps(tabs).replace("<", "\\u003c")
    return (
        (Path(__file__).parent / "graphiql.html").read_text().replace("__EXAMPLE_TABS__", payload)
    )


async def dashboard(request: Request) -> FileResponse:
    """The live dashboard: a static page that talks GraphQL to /graphql."""
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


def routes() -> list[Route | Mount]:
    """The dashboard and the static files both pages load."""
    return [
        Route("/dashboard", dashboard),
        Mount(STATIC_PREFIX, StaticFiles(directory=STATIC), name="static"),
    ]


def graphiql_response() -> HTMLResponse:
    return HTMLResponse(graphiql_html())
