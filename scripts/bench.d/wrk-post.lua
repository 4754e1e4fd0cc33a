-- wrk script for scripts/bench.d/61-floor.sh: POST /collect with distinct report bodies.
-- Script arguments: FILE (one report body per line) and the number of wrk threads N; thread k
-- sends lines k, k+N, k+2N, … and starts over at its first line when they run out (the bench
-- script says so when a run sent more requests than the file has bodies).
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  local n = tonumber(args[2])
  reqs = {}
  local i = 0
  for body in io.lines(args[1]) do
    if i % n == tid then
      reqs[#reqs + 1] = wrk.format("POST", "/collect", { ["Content-Type"] = "application/json" }, body)
    end
    i = i + 1
  end
  idx = 0
end

function request()
  idx = idx + 1
  if idx > #reqs then idx = 1 end
  return reqs[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %.3f %.3f %.3f %d\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    e.status + e.connect + e.read + e.write + e.timeout))
end
