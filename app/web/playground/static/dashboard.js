// The live dashboard: plain browser JavaScript, no build step.
// Queries and mutations go over HTTP POST to /graphql; the two live panels are
// subscriptions over one WebSocket (graphql-transport-ws, the vendored graphql-ws client).
"use strict";

const ENDPOINT = new URL("/graphql", window.location.href).toString();
const RECENT = 20;

const ORDER_FIELDS = `id status version itemCount totalCents placedAt updatedAt
  customer { id name }`;

const $ = (id) => document.getElementById(id);

// ---- credentials (docs/security.md) --------------------------------------------------
// On a server with SHOP_JWT_SECRET set, paste a token from `shop token --role admin`; it is
// kept in this browser's localStorage and sent as the Authorization header and in the
// WebSocket's connection_init payload. An open server needs none.

const TOKEN_KEY = "cqrs-shop:token";
const token = () => localStorage.getItem(TOKEN_KEY) || "";
const credentials = () => (token() ? { Authorization: `Bearer ${token()}` } : {});

// ---- GraphQL over HTTP -------------------------------------------------------------

async function gql(query, variables) {
  const response = await fetch(ENDPOINT, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", ...credentials() },
    body: JSON.stringify({ query, variables }),
  });
  let body;
  try {
    body = await response.json();
  } catch (_) {
    throw new Error(`HTTP ${response.status} from ${ENDPOINT}`);
  }
  if (body.errors && body.errors.length) {
    throw new Error(body.errors.map((e) => e.message).join("; "));
  }
  return body.data;
}

function uuid4() {
  // crypto.randomUUID needs a secure context; getRandomValues works everywhere.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ---- rendering helpers (textContent only: nothing from the server becomes markup) ---

const money = (cents) => (Number(cents) / 100).toFixed(2);
const time = (iso) => new Date(iso).toLocaleTimeString();

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

function say(text, isError) {
  const p = $("form-message");
  p.textContent = text;
  p.classList.toggle("error", Boolean(isError));
}

// ---- recent orders -----------------------------------------------------------------

const orders = new Map(); // id -> newest known state
const fresh = new Set();
let awaited = null; // {id, since}: the order this page placed and waits to see

function keep(order) {
  const known = orders.get(order.id);
  if (known && known.version >= order.version) return false; // never older over newer
  orders.set(order.id, order);
  return true;
}

function renderOrders() {
  const newest = [...orders.values()]
    .sort((a, b) => (a.placedAt < b.placedAt ? 1 : a.placedAt > b.placedAt ? -1 : 0))
    .slice(0, RECENT);
  for (const id of orders.keys()) {
    if (!newest.some((o) => o.id === id)) orders.delete(id);
  }
  const rows = newest.map((o) => {
    const tr = document.createElement("tr");
    tr.dataset.orderId = o.id;
    tr.dataset.status = o.status;
    if (fresh.has(o.id)) tr.className = "fresh";
    tr.append(
      cell(o.id.slice(0, 8)),
      cell(time(o.placedAt)),
      cell(o.customer.name),
      cell(String(o.itemCount), "num"),
      cell(money(o.totalCents), "num"),
      cell(o.status),
      cell(String(o.version), "num"),
    );
    return tr;
  });
  fresh.clear();
  $("order-rows").replaceChildren(...rows);
}

function onOrder(order) {
  if (!keep(order)) return;
  fresh.add(order.id);
  renderOrders();
  if (awaited && awaited.id === order.id) {
    const ms = Math.round(performance.now() - awaited.since);
    say(`Order ${order.id.slice(0, 8)} is in the read model (${ms} ms after the click).`);
    awaited = null;
  }
}

async function loadRecentOrders() {
  const data = await gql(
    `query RecentOrders($first: Int) { orders(first: $first) { edges { node { ${ORDER_FIELDS} } } } }`,
    { first: RECENT },
  );
  for (const edge of data.orders.edges) keep(edge.node);
  renderOrders();
}

// ---- projections -------------------------------------------------------------------

function renderProjections(statuses) {
  const rows = statuses.map((p) => {
    const tr = document.createElement("tr");
    tr.dataset.projection = p.name;
    tr.append(
      cell(p.name),
      cell(p.state, `state-${p.state}`),
      cell(String(p.lagEvents), "num"),
      cell(p.lagSeconds.toFixed(2), "num"),
      cell(String(p.eventsApplied), "num"),
      cell(String(p.deadLetters), "num"),
    );
    return tr;
  });
  $("projection-rows").replaceChildren(...rows);
}

// ---- the order form ----------------------------------------------------------------

async function loadChoices(tokens) {
  // With consistency tokens, each list includes its command's effects (read-your-writes).
  const data = await gql(
    `query Choices($customers: String, $products: String) {
      customers(first: 100, orderBy: NAME, consistentWith: $customers) {
        edges { node { id name email } }
      }
      products(first: 100, filter: { inStock: true }, consistentWith: $products) {
        edges { node { id name sku priceCents stock } }
      }
    }`,
    { customers: (tokens && tokens.customers) || null, products: (tokens && tokens.products) || null },
  );
  const customers = data.customers.edges.map((e) => e.node);
  const products = data.products.edges.map((e) => e.node);
  const chosen = { customer: $("customer").value, product: $("product").value };
  $("customer").replaceChildren(...customers.map((c) => option(c.id, `${c.name} <${c.email}>`)));
  $("product").replaceChildren(
    ...products.map((p) => option(p.id, `${p.name} (${p.sku}) · ${money(p.priceCents)} · ${p.stock} in stock`)),
  );
  if (chosen.customer) $("customer").value = chosen.customer;
  if (chosen.product) $("product").value = chosen.product;
  $("empty-hint").hidden = customers.length > 0 && products.length > 0;
  $("place").disabled = !(customers.length && products.length);
}

function userErrors(payload) {
  return payload.userErrors.map((e) => `${e.code}: ${e.message}`).join("; ");
}

async function placeOrder(event) {
  event.preventDefault();
  const quantity = Number($("quantity").value);
  $("place").disabled = true;
  try {
    const since = performance.now();
    const data = await gql(
      `mutation PlaceOrder($input: PlaceOrderInput!) {
        placeOrder(input: $input) { orderId consistencyToken userErrors { code message } }
      }`,
      {
        input: {
          commandId: uuid4(),
          customerId: $("customer").value,
          lines: [{ productId: $("product").value, quantity }],
        },
      },
    );
    const payload = data.placeOrder;
    if (payload.userErrors.length) {
      say(userErrors(payload), true);
      return;
    }
    if (orders.has(payload.orderId)) {
      say(`Order ${payload.orderId.slice(0, 8)} placed and already shown.`);
    } else {
      awaited = { id: payload.orderId, since };
      say(`Order ${payload.orderId.slice(0, 8)} accepted; waiting for the projection…`);
    }
    const token = payload.consistencyToken;
    await loadChoices({ customers: token, products: token }); // stock went down
  } catch (err) {
    say(err.message, true);
  } finally {
    $("place").disabled = false;
  }
}

async function seed() {
  const tag = uuid4().slice(0, 6);
  try {
    const data = await gql(
      `mutation Seed($customer: RegisterCustomerInput!, $product: CreateProductInput!) {
        registerCustomer(input: $customer) { customerId consistencyToken userErrors { code message } }
        createProduct(input: $product) { productId consistencyToken userErrors { code message } }
      }`,
      {
        customer: { email: `demo-${tag}@example.com`, name: `Demo customer ${tag}` },
        product: { sku: `DEMO-${tag}`, name: `Demo product ${tag}`, priceCents: 1250, stock: 100 },
      },
    );
    const problems = [data.registerCustomer, data.createProduct].map(userErrors).filter(Boolean);
    if (problems.length) {
      say(problems.join("; "), true);
      return;
    }
    await loadChoices({
      customers: data.registerCustomer.consistencyToken,
      products: data.createProduct.consistencyToken,
    });
    say("Demo customer and product added.");
  } catch (err) {
    say(err.message, true);
  }
}

// ---- the WebSocket ------------------------------------------------------------------

function connect() {
  const badge = $("connection");
  const show = (state, text) => {
    badge.dataset.state = state;
    badge.textContent = text;
  };
  const client = graphqlWs.createClient({
    url: ENDPOINT.replace(/^http/, "ws"),
    connectionParams: credentials,
    lazy: false,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    on: {
      connected: () => {
        show("connected", "live");
        // Changes made while the socket was down are not replayed: read them now.
        loadRecentOrders().catch((err) => say(err.message, true));
      },
      closed: () => show("reconnecting", "reconnecting…"),
    },
  });
  const report = (what) => (err) => {
    const text = Array.isArray(err) ? err.map((e) => e.message).join("; ") : err.message || String(err);
    say(`${what}: ${text}`, true);
  };
  client.subscribe(
    { query: `subscription RecentOrders { ordersChanged { ${ORDER_FIELDS} } }` },
    { next: (r) => r.data && onOrder(r.data.ordersChanged), error: report("ordersChanged"), complete: () => {} },
  );
  client.subscribe(
    {
      query: `subscription Lag { projectionStatus(intervalMs: 1000) {
        name state lagEvents lagSeconds eventsApplied deadLetters } }`,
    },
    { next: (r) => r.data && renderProjections(r.data.projectionStatus), error: report("projectionStatus"), complete: () => {} },
  );
}

$("token").value = token();
$("token").addEventListener("change", (event) => {
  const value = event.target.value.trim().replace(/^Bearer\s+/i, "");
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
  window.location.reload(); // reconnect everything with the new credentials
});
$("order-form").addEventListener("submit", placeOrder);
$("seed").addEventListener("click", seed);
loadChoices().catch((err) => say(err.message, true));
connect();
