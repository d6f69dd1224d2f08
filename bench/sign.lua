-- Signatures under load, for wrk: every request carries its own pre-issued token and email.
--
-- wrk -s bench/sign.lua URL -- BODIES SECONDS THREADS PATH [reuse | paths]
--   BODIES   a file of JSON request bodies, one a line; thread k of THREADS takes the lines
--            k, k + THREADS, ... so no body is ever sent twice
--   SECONDS  how long each thread sends new requests
--   PATH     the sign endpoint's path
--   reuse    start the bodies over when they run out (only for the bare baseline, which reads
--            no body; our server would rightly refuse a used token)
--   paths    each line of BODIES is a path instead, POSTed once with an empty form body, as
--            a browser sends the button of a confirmation page (PATH is then unused, but must
--            be a valid path: wrk parses the request made to count requests per string)
--
-- When its time is up (or its bodies run out) a thread sends nothing more, waits until every
-- request it sent has been answered, says "drained" on stderr and stops. The driver then ends
-- wrk with SIGINT. So no signature is left in flight, unanswered but perhaps committed, and
-- the responses counted here can be compared with the rows stored.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]]
local clock = ffi.new("bench_timeval")

local function now_us()
  ffi.C.gettimeofday(clock, nil)
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_usec)
end

-- Main state: remember the threads to sum their counters in done().
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Thread state. Globals, so that done() can read them with thread:get().
sent, received, first_us, last_us, exhausted = 0, 0, 0, 0, 0
statuses = {}

local bodies, path, duration_us, deadline, reuse, post
local index, closing, announced = 0, false, false

local function post_body(body)
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
  }, body)
end

local function post_path(line)
  return wrk.format("POST", line, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Accept"] = "text/html",
  }, "")
end

-- wrk calls request() once in thread 0's state before the thread starts, only to count how
-- many requests the string holds; that call must not take a body nor start the clock.
local verified

function init(args)
  local file, threads_n = args[1], tonumber(args[3])
  duration_us = tonumber(args[2]) * 1000000
  path = args[4]
  reuse = args[5] == "reuse"
  post = args[5] == "paths" and post_path or post_body
  verified = id ~= 0
  bodies = {}
  local line_no = 0
  for line in io.lines(file) do
    if line_no % threads_n == id then
      bodies[#bodies + 1] = line
    end
    line_no = line_no + 1
  end
end

local function finish()
  if not announced and received == sent then
    announced = true
    io.stderr:write("drained\n")
    io.stderr:flush()
    wrk.thread:stop()
  end
end

function request()
  if not verified then
    verified = true
    return post_body("{}")
  end
  local now = now_us()
  if reuse and index >= #bodies then
    index = 0
  end
  if deadline == nil then
    first_us = now
    deadline = now + duration_us
  end
  if not closing and (now >= deadline or index >= #bodies) then
    closing = true
    if index >= #bodies and now < deadline then
      exhausted = 1
    end
  end
  if closing then
    finish()
    return "" -- nothing is written: the connection stays idle until the thread stops
  end
  index = index + 1
  sent = sent + 1
  return post(bodies[index])
end

function response(status, headers, body)
  received = received + 1
  last_us = now_us()
  statuses[status] = (statuses[status] or 0) + 1
  if closing then
    finish()
  end
end

local function statuses_json(all)
  local parts = {}
  for status, n in pairs(all) do
    parts[#parts + 1] = string.format('"%d":%d', status, n)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local total = { sent = 0, received = 0, exhausted = 0, first = nil, last = 0 }
  local all = {}
  for _, thread in ipairs(threads) do
    total.sent = total.sent + thread:get("sent")
    total.received = total.received + thread:get("received")
    total.exhausted = total.exhausted + thread:get("exhausted")
    local first, last = thread:get("first_us"), thread:get("last_us")
    if first > 0 and (total.first == nil or first < total.first) then
      total.first = first
    end
    if last > total.last then
      total.last = last
    end
    for status, n in pairs(thread:get("statuses")) do
      all[status] = (all[status] or 0) + n
    end
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"sent":%d,"received":%d,"exhausted":%d,"elapsed_us":%d,' ..
    '"statuses":%s,"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    total.sent, total.received, total.exhausted, total.last - (total.first or total.last),
    statuses_json(all), errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean))
end
