-- Reads under load, for wrk: the same GET again and again.
--
-- wrk -s bench/get.lua URL -- PATH [HEADER: VALUE ...]
--
-- The request is static and there is no response() callback, so wrk spends as little as it
-- can per request (a callback costs it about 6% here). wrk counts answers >= 400 itself; the
-- driver checks the expected status with one request before the load.

function init(args)
  wrk.path = args[1]
  for i = 2, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"received":%d,"elapsed_us":%d,"bytes":%d,"status_errors":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, errors.status,
    errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean))
end
