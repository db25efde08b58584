-- Drives one endpoint of the service for `wrk`.
--   wrk ... URL                       GET the URL as it is (the /healthz floor)
--   wrk ... URL -- BODIES_FILE KEY    POST the JSON bodies of BODIES_FILE (one a line), in turn, with the API key
-- When the run is done, prints one line "BENCH_JSON {...}" with the exact counts and latency percentiles.

local prepared = {}
local next_request = 1
local threads = 0

-- Each thread starts at its own place in the bodies (at its share of them), so no two threads send the same
-- body at the same moment: with many distinct bodies (bench/large.py), every request is a cold decision.
function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  if args[1] == nil then
    return
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[2]
  for line in io.lines(args[1]) do
    prepared[#prepared + 1] = wrk.format(nil, nil, nil, line)
  end
  next_request = 1 + ((thread_number or 0) * math.floor(#prepared / 2)) % #prepared
end

function request()
  if #prepared == 0 then
    return wrk.format()
  end
  local chosen = prepared[next_request]
  next_request = next_request % #prepared + 1
  return chosen
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p75": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(75), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
