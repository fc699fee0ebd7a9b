-- Shared by the benchmark scripts: POST GraphQL, count failed responses, report them.
-- BENCH_DATA names a Lua file of id arrays written by the harness.
local M = {}

M.data = dofile(os.getenv("BENCH_DATA"))

local threads = {}

function M.pick(list)
  return list[math.random(#list)]
end

function M.post(body)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

-- A response fails if it is not 200, carries GraphQL errors, or (for mutations) userErrors.
function M.install(check_user_errors)
  function setup(thread)
    table.insert(threads, thread)
  end
  function init(args)
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
    failures = 0
    first_failure = ""
  end
  function response(status, headers, body)
    local bad = status ~= 200 or string.find(body, '"errors"', 1, true) ~= nil
    if check_user_errors and not string.find(body, '"userErrors":[]', 1, true) then
      bad = true
    end
    if bad then
      failures = failures + 1
      if first_failure == "" then
        first_failure = string.sub(body, 1, 300)
      end
    end
  end
  function done(summary, latency, requests)
    local total, first = 0, ""
    for _, thread in ipairs(threads) do
      total = total + thread:get("failures")
      if first == "" then first = thread:get("first_failure") end
    end
    io.write("graphql_failures=" .. total .. "\n")
    io.write("first_failure=" .. (string.gsub(first, "\n", " ")) .. "\n")
  end
end

return M
