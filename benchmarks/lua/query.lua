-- One query, run over and over. BENCH_QUERY is the document; BENCH_ARG names the variable
-- filled per request with an id drawn uniformly from every id in BENCH_DATA: "id" from the
-- orders, "customerId" from the customers, or nothing.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local document = string.gsub(os.getenv("BENCH_QUERY"), '"', '\\"')
local arg = os.getenv("BENCH_ARG") or ""
local fixed = string.format('{"query":"%s"}', document)

request = function()
  if arg == "id" then
    return common.post(string.format('{"query":"%s","variables":{"id":"%s"}}',
      document, common.pick(common.data.orders)))
  elseif arg == "customerId" then
    return common.post(string.format('{"query":"%s","variables":{"customerId":"%s"}}',
      document, common.pick(common.data.customers)))
  end
  return common.post(fixed)
end

local lists = { id = { orders = true }, customerId = { customers = true } }
common.install(false, lists[arg] or {})
