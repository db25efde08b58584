-- Membership changes for `wrk`, one connection per thread (run with -t N -c N):
--   wrk ... BASE_URL -- ACCOUNTS ROUND KEY
-- Each thread invites a new user into a random account, acting as that account's admin
-- (u_admin_<n>), then removes them, and again. A 201 or 200 answer is one change made.
-- When the run is done, prints "BENCH_JSON {...}" with the changes, the unexpected answers
-- and the latency percentiles.

local threads = {}

function setup(thread)
  thread:set("number", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  accounts = tonumber(args[1])
  round = args[2]
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[3]
  math.randomseed(os.time() * 1000 + number)
  changes = 0
  unexpected = 0
  first_unexpected = ""
  serial = 0
  next_step = "invite"
  awaiting = nil
end

function request()
  if next_step == "invite" then
    serial = serial + 1
    account_number = math.random(0, accounts - 1)
    account = string.format("acc_%06d", account_number)
    admin = string.format("u_admin_%06d", account_number)
    user = string.format("u_w%s_%d_%d", round, number, serial)
    local role = (serial % 2 == 0) and "reader" or "collaborator"
    local body = string.format('{"user":"%s","role":"%s","acting_user":"%s"}', user, role, admin)
    awaiting = "invite"
    return wrk.format("POST", "/v1/accounts/" .. account .. "/members", nil, body)
  end
  awaiting = "remove"
  return wrk.format("DELETE", "/v1/accounts/" .. account .. "/members/" .. user .. "?acting_user=" .. admin)
end

function response(status, headers, body)
  if (awaiting == "invite" and status == 201) or (awaiting == "remove" and status == 200) then
    changes = changes + 1
    next_step = (awaiting == "invite") and "remove" or "invite"
  else
    unexpected = unexpected + 1
    if first_unexpected == "" then
      first_unexpected = awaiting .. " " .. status .. " " .. string.sub(body or "", 1, 200)
    end
    next_step = "invite"
  end
end

local function quoted(text)
  return '"' .. string.gsub(string.gsub(text, '\\', '\\\\'), '"', '\\"') .. '"'
end

function done(summary, latency, requests)
  local changes_made, unexpected_answers, first = 0, 0, ""
  for _, thread in ipairs(threads) do
    changes_made = changes_made + thread:get("changes")
    unexpected_answers = unexpected_answers + thread:get("unexpected")
    if first == "" then first = thread:get("first_unexpected") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "changes": %d, "unexpected": %d, "first_unexpected": %s, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p75": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, changes_made, unexpected_answers, quoted(first),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(75), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
