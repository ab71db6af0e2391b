-- wrk script for bench/scale.sh: GET /v1/me, each request with the next credential from a
-- file (one header value per line), round robin; prints a machine-readable summary line.
-- Usage: wrk -s rotate.lua URL -- FILE HEADER
local values, header, index = {}, "Cookie", 0

function init(args)
  for line in io.lines(args[1]) do
    values[#values + 1] = line
  end
  header = args[2] or header
end

function request()
  index = index % #values + 1
  return wrk.format("GET", "/v1/me", { [header] = values[index] })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "rps": %.2f, "p50_us": %d, "p99_us": %d, "non2xx": %d, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50.0), latency:percentile(99.0), e.status,
    e.connect + e.read + e.write + e.timeout))
end
