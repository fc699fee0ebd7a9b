"""The playground's server side: GraphiQL's page, the examples, the dashboard and its files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from graphql import OperationType, parse, validate
from graphql.language import OperationDefinitionNode

from app.schema import schema
from app.web.playground.examples import EXAMPLES, Example
from devtools.servers import ServerUnderTest

CONTRACT = Path(__file__).resolve().parents[2].parent / "shared" / "contract" / "schema.graphql"
ROOTS = {"Query": "query", "Mutation": "mutation", "Subscription": "subscription"}


def contract_root_fields() -> set[tuple[str, str]]:
    """(operation type, field) for every root field the public contract declares."""
    document = parse(CONTRACT.read_text())
    fields = set()
    for definition in document.definitions:
        name = getattr(getattr(definition, "name", None), "value", None)
        if name in ROOTS:
            fields |= {(ROOTS[name], f.name.value) for f in definition.fields}
    return fields


def example_root_fields() -> set[tuple[str, str]]:
    fields = set()
    for example in EXAMPLES:
        for definition in parse(example.document).definitions:
            assert isinstance(definition, OperationDefinitionNode)
            kind = definition.operation.value
            fields |= {(kind, s.name.value) for s in definition.selection_set.selections}
    return fields


def test_every_contract_operation_has_an_example() -> None:
    missing = contract_root_fields() - example_root_fields()
    assert contract_root_fields(), "the contract declares no root fields?"
    assert not missing, f"no playground example for {sorted(missing)}"


def _title(example: Example) -> str:
    return str(parse(example.document).definitions[0].name.value)


@pytest.mark.parametrize("example", EXAMPLES, ids=_title)
def test_each_example_is_valid_and_named_with_matching_variables(example: Example) -> None:
    document = parse(example.document)
    assert validate(schema._schema, document) == []
    (operation,) = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    assert operation.name is not None, "GraphiQL titles a tab by its operation's name"
    declared = {v.variable.name.value for v in operation.variable_definitions or ()}
    assert set(example.variables) == declared
    if operation.operation is OperationType.SUBSCRIPTION:
        assert len(operation.selection_set.selections) == 1


async def test_graphiql_is_served_from_this_package(server: ServerUnderTest) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        page = await client.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert not re.findall(r'(?:src|href)="(?:https?:)?//', html), "no file from elsewhere"
        tabs = json.loads(re.search(r'id="example-tabs"[^>]*>(.*?)</script>', html, re.S)[1])
        assert [tab["query"] for tab in tabs] == [e.document for e in EXAMPLES]
        assert [json.loads(tab["variables"]) for tab in tabs] == [e.variables for e in EXAMPLES]
        for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            asset = await client.get(src)
            assert asset.status_code == 200, src
            assert len(asset.content) > 1000, src


async def test_the_dashboard_and_its_files_are_served(server: ServerUnderTest) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        page = await client.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        sources = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
        assert "/static/vendor/graphql-ws.min.js" in sources
        for src in sources:
            asset = await client.get(src)
            assert asset.status_code == 200, src
        missing = await client.get("/static/../settings.py")
        assert missing.status_code == 404
