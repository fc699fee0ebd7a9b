"""The playground and the dashboard in a real browser: headless Chromium via Playwright."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect
from pydantic import SecretStr

from app.config.settings import Settings
from app.projections.registry import PROJECTIONS
from app.security.principal import UserRole
from app.security.tokens import mint_token
from devtools.graphql_client import CREATE_PRODUCT, PAY_ORDER, REGISTER_CUSTOMER, GraphQLClient
from devtools.servers import ServerUnderTest, running_server
from tests.support.browser import PageErrors, chromium

pytestmark = pytest.mark.xdist_group("browser")

TIMEOUT_MS = 20_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield await context.new_page()
    finally:
        await context.close()


# GraphiQL applies an edit to the active tab after a short debounce and saves its tabs to
# localStorage; a test waits for the saved tab rather than sleeping.
ACTIVE_TAB = """() => {
  const state = JSON.parse(localStorage.getItem("graphiql:tabState") || "null");
  return state && state.tabs[state.activeTabIndex];
}"""


async def open_tab(page: Page, operation: str) -> None:
    """Switch GraphiQL to the example tab of `operation`, ready to run."""
    tab = page.locator(".graphiql-tab-button").filter(has_text=re.compile(f"^{operation}$"))
    await tab.click()
    await page.wait_for_function(f"name => ({ACTIVE_TAB})()?.operationName === name", arg=operation)


async def set_variables(page: Page, variables: dict[str, object]) -> None:
    """Replace the active tab's variables (GraphiQL's CodeMirror editor)."""
    text = json.dumps(variables)
    editor = page.locator(".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror")
    await editor.evaluate("(el, text) => el.CodeMirror.setValue(text)", text)
    await page.wait_for_function(f"text => ({ACTIVE_TAB})()?.variables === text", arg=text)


async def test_a_subscription_in_graphiql_follows_a_mutation(
    server: ServerUnderTest, gql: GraphQLClient, page: Page
) -> None:
    customer = await gql.customer()
    product = await gql.product(stock=5)
    order_id = (await gql.order(customer, (product, 1)))["orderId"]
    errors = PageErrors(page)

    await page.goto(server.graphql_url)
    await open_tab(page, "OrderUpdated")
    await set_variables(page, {"id": order_id})
    await page.locator(".graphiql-execute-button").click()

    response = page.locator(".graphiql-response")
    await expect(response).to_contain_text(order_id)
    await expect(response).to_contain_text('"PLACED"')

    await gql.ok(PAY_ORDER, orderId=order_id)
    await expect(response).to_contain_text('"PAID"')
    await expect(response).not_to_contain_text('"PLACED"')
    assert errors.messages == []


async def test_graphiql_runs_the_example_queries_and_mutations(
    server: ServerUnderTest, page: Page
) -> None:
    errors = PageErrors(page)
    await page.goto(server.graphql_url)
    await open_tab(page, "RegisterCustomer")
    await page.locator(".graphiql-execute-button").click()
    response = page.locator(".graphiql-response")
    await expect(response).to_contain_text('"customerId"')
    await expect(response).to_contain_text("ada@example.com")

    await open_tab(page, "Welcome")
    await page.locator(".graphiql-execute-button").click()
    await expect(response).to_contain_text("customer_summary")
    assert errors.messages == []


async def test_the_dashboard_places_an_order_and_shows_it_live(
    server: ServerUnderTest, gql: GraphQLClient, page: Page
) -> None:
    errors = PageErrors(page)
    await page.goto(f"{server.base_url}/dashboard")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#projection-rows tr")).to_have_count(len(PROJECTIONS))
    await expect(page.locator('#projection-rows tr[data-projection="order_view"]')).to_be_visible()

    # An empty shop: the dashboard offers demo data, then lists it in the form.
    await expect(page.locator("#empty-hint")).to_be_visible()
    await page.locator("#seed").click()
    await expect(page.locator("#empty-hint")).to_be_hidden()
    await expect(page.locator("#customer option")).to_have_count(1)
    await expect(page.locator("#product option")).to_have_count(1)

    await page.locator("#quantity").fill("3")
    await page.locator("#place").click()
    # The live feed may show the order before the mutation answers: either way it is shown.
    await expect(page.locator("#form-message")).to_contain_text(
        re.compile("is in the read model|placed and already shown")
    )
    row = page.locator("#order-rows tr")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-status", "PLACED")

    # The row is the order the write side accepted.
    order_id = await row.get_attribute("data-order-id")
    listed = await gql.data("{ orders { edges { node { id itemCount } } } }")
    assert listed["orders"]["edges"] == [{"node": {"id": order_id, "itemCount": 3}}]
    await expect(page.locator("#product option")).to_contain_text("97 in stock")

    # A change made elsewhere reaches the open page.
    await gql.ok(PAY_ORDER, orderId=order_id)
    await expect(row).to_have_attribute("data-status", "PAID")
    assert errors.messages == []


async def test_the_dashboard_shows_a_refused_order_and_writes_nothing(
    server: ServerUnderTest, gql: GraphQLClient, page: Page
) -> None:
    customer = await gql.ok(REGISTER_CUSTOMER, email="ada@example.com", name="Ada")
    product = await gql.ok(CREATE_PRODUCT, sku="SKU-1", name="Widget", priceCents=250, stock=2)
    # The page lists what the read store holds when it loads: both must be projected by then.
    await gql.data(
        "query($c: String, $p: String) { customers(consistentWith: $c) { totalCount }"
        " products(consistentWith: $p) { totalCount } }",
        {"c": customer["consistencyToken"], "p": product["consistencyToken"]},
    )
    await page.goto(f"{server.base_url}/dashboard")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#customer option")).to_have_count(1)
    await expect(page.locator("#product option")).to_have_count(1)
    await page.locator("#quantity").fill("5")
    await page.locator("#place").click()
    await expect(page.locator("#form-message")).to_contain_text("INSUFFICIENT_STOCK")
    await expect(page.locator("#form-message")).to_have_class(re.compile(r"\berror\b"))
    listed = await gql.data("{ orders { totalCount } }")
    assert listed["orders"]["totalCount"] == 0
    await expect(page.locator("#order-rows tr")).to_have_count(0)


async def test_the_dashboard_sends_the_token_it_is_given_on_a_secured_server(
    settings: Settings, page: Page
) -> None:
    secret = "browser-test-secret-of-32-bytes-or-more"
    secured = settings.model_copy(update={"jwt_secret": SecretStr(secret)})
    async with running_server(secured) as server:
        await page.goto(f"{server.base_url}/dashboard")
        # Without a token the live panels are refused, and the page says why.
        await expect(page.locator("#form-message")).to_contain_text("credentials")
        await expect(page.locator("#projection-rows tr")).to_have_count(0)

        await page.locator("#token").fill(mint_token(secret, UserRole.ADMIN, "admin", 600))
        async with page.expect_navigation():
            await page.locator("#token").press("Enter")
        # projectionStatus is for admins only: rows prove the WebSocket sent the token.
        await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        await expect(page.locator("#projection-rows tr")).to_have_count(len(PROJECTIONS))
        await expect(page.locator("#form-message")).not_to_contain_text("credentials")
