-- wrk script for scripts/bench-targets. From the environment:
--   WRK_BODY     a JSON body: the requests become POSTs of it;
--   WRK_TOKENS   a file of access tokens, one per line: each request carries the next one as
--                `Authorization: Bearer` (round robin), so a pool larger than the server's
--                verified-token cache makes every request verify a signature;
--   WRK_COOKIES  a file of `Cookie` header values, one per line, used the same way.
-- Prints one machine-readable line at the end: WRKJSON {...}.
local body = os.getenv("WRK_BODY")
if body and body ~= "" then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local pool, header, next_index = nil, nil, 1
local function load(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then lines[#lines + 1] = line end
  end
  assert(#lines > 0, "empty pool file " .. path)
  return lines
end
if os.getenv("WRK_TOKENS") and os.getenv("WRK_TOKENS") ~= "" then
  pool, header = load(os.getenv("WRK_TOKENS")), "Authorization"
  for i = 1, #pool do pool[i] = "Bearer " .. pool[i] end
elseif os.getenv("WRK_COOKIES") and os.getenv("WRK_COOKIES") ~= "" then
  pool, header = load(os.getenv("WRK_COOKIES")), "Cookie"
end

if pool then
  local headers = {}
  request = function()
    headers[header] = pool[next_index]
    next_index = next_index % #pool + 1
    return wrk.format(nil, nil, headers)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "rps": %.2f, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "non2xx": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50.0), latency:percentile(99.0), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
