-- wrk script for scripts/load.sh: at the end of a run, prints one machine-readable line
--   RESULT requests=<n> rps=<n> p50_ms=<n> p99_ms=<n> errors=<n> non2xx=<n> socket=<n>
-- errors = responses with status >= 400 + socket errors (connect, read, write, timeout).
-- Use it as is for GET scenarios (-s scripts/wrk_report.lua); other scripts dofile() it.

function done(summary, latency, requests)
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d socket=%d\n",
    summary.requests,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    e.status + socket,
    e.status,
    socket))
end
