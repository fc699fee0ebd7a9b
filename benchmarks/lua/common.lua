-- Shared by the benchmark scripts: POST GraphQL, count failed responses, report them.
-- BENCH_DATA names a plain text file of id lists written by the harness (write_lua_data):
-- a line "#name" starts the list `name`, each line after it is one id. Each wrk thread reads
-- it in `init`, before the timed run starts; a list may hold every id of the data set (a
-- million orders), which a Lua table literal could not (LuaJIT would not load it).
local M = {}

M.data = {}

local threads = {}

-- Fill M.data from the file; with `wanted` (a set of names), only those lists.
local function read_lists(path, wanted)
  local list, n = nil, 0
  for line in io.lines(path) do
    if string.sub(line, 1, 1) == "#" then
      local name = string.sub(line, 2)
      if wanted == nil or wanted[name] then
        list, n = {}, 0
        M.data[name] = list
      else
        list = nil
      end
    elseif list ~= nil and line ~= "" then
      n = n + 1
      list[n] = line
    end
  end
end

-- A uniformly drawn element of `list`.
function M.pick(list)
  return list[math.random(#list)]
end

function M.post(body)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

-- A response fails if it is not 200, carries GraphQL errors, or (for mutations) userErrors.
-- `wanted`: the names of the id lists the script uses (nil: all of them).
function M.install(check_user_errors, wanted)
  function setup(thread)
    table.insert(threads, thread)
  end
  function init(args)
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
    local path = os.getenv("BENCH_DATA")
    if path ~= nil and path ~= "" then
      read_lists(path, wanted)
    end
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
