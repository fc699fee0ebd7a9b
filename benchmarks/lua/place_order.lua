-- placeOrder with three lines of three different products, for a random customer.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local document = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) "
  .. "{ orderId version userErrors { code message } } }"

request = function()
  local products = common.data.products
  local n = #products
  local a = math.random(n)
  local b = (a + math.random(n - 1) - 1) % n + 1
  local c = a
  while c == a or c == b do c = math.random(n) end
  local lines = string.format(
    '[{"productId":"%s","quantity":%d},{"productId":"%s","quantity":%d},{"productId":"%s","quantity":%d}]',
    products[a], math.random(3), products[b], math.random(3), products[c], math.random(3))
  local body = string.format(
    '{"query":"%s","variables":{"input":{"customerId":"%s","lines":%s}}}',
    document, common.pick(common.data.customers), lines)
  return common.post(body)
end

common.install(true)
