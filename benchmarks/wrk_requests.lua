-- wrk walks a list of requests, each sent once, for benchmarks/mock_vs_prism.py.
--
--   wrk -t2 -c16 -d10s --latency -s benchmarks/wrk_requests.lua http://127.0.0.1:PORT -- FILE TOKEN THREADS
--
-- FILE has one request a line: METHOD <tab> PATH <tab> BODY (BODY may be empty). Every request carries
-- `Authorization: Bearer TOKEN`, and `Content-Type: application/json` when it has a body. Thread i of
-- THREADS (each has its own Lua state) takes the lines i, i + THREADS, i + 2 * THREADS, ... in order;
-- with fewer lines than threads, every thread takes them all, so a file of one line sends the same
-- request over and over. A thread that has sent all of its lines starts over, and counts what it sends
-- after that as `reused`: a stateful server refuses a second retry of an execution and a used nonce, so
-- the caller prepares more lines than the run can send, and checks that none was reused.
--
-- At the end one line `WRK_RESULT {json}` gives what the caller reads: requests, duration (us), errors,
-- latency percentiles (us) and `reused`; with WRK_HISTOGRAM=FILE in the environment, FILE gets the
-- latency histogram, one "microseconds count" a line.

local threads = {}
local next_index = 0

function setup(thread)
   thread:set("index", next_index)
   next_index = next_index + 1
   table.insert(threads, thread)
end

local function split_tabs(line)
   local fields = {}
   local start = 1
   while true do
      local tab = string.find(line, "\t", start, true)
      if tab == nil then
         table.insert(fields, string.sub(line, start))
         return fields
      end
      table.insert(fields, string.sub(line, start, tab - 1))
      start = tab + 1
   end
end

local prepared = {}
local position = 0
reused = 0

function init(args)
   local file_name, token, thread_count = args[1], args[2], tonumber(args[3])
   local lines = {}
   for line in io.lines(file_name) do
      if line ~= "" then
         table.insert(lines, line)
      end
   end
   -- Fewer lines than threads (one request repeated): every thread sends all of them.
   local stride = #lines >= thread_count and thread_count or 1
   for number = index % stride + 1, #lines, stride do
      local fields = split_tabs(lines[number])
      local method, path, body = fields[1], fields[2], fields[3]
      local headers = { ["Authorization"] = "Bearer " .. token }
      if body == nil or body == "" then
         body = nil
      else
         headers["Content-Type"] = "application/json"
      end
      table.insert(prepared, wrk.format(method, path, headers, body))
   end
   if #prepared == 0 then
      error("no request for thread " .. index .. " in " .. file_name)
   end
end

function request()
   position = position + 1
   if position > #prepared then
      position = 1
      if #prepared > 1 then
         reused = reused + 1
      end
   elseif reused > 0 then
      reused = reused + 1
   end
   return prepared[position]
end

function done(summary, latency, _)
   local total_reused = 0
   for _, thread in ipairs(threads) do
      total_reused = total_reused + (thread:get("reused") or 0)
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, '
         .. '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, '
         .. '"latency_mean_us": %.1f, "latency_max_us": %d, "p50_us": %d, "p90_us": %d, '
         .. '"p99_us": %d, "reused": %d}\n',
      summary.requests, summary.duration, summary.bytes, errors.connect, errors.read, errors.write,
      errors.status, errors.timeout, latency.mean, latency.max, latency:percentile(50.0),
      latency:percentile(90.0), latency:percentile(99.0), total_reused
   ))
   -- The whole latency histogram (microseconds, count), so that runs can be merged.
   local histogram = os.getenv("WRK_HISTOGRAM")
   if histogram ~= nil and histogram ~= "" then
      local out = assert(io.open(histogram, "w"))
      for i = 1, #latency do
         local value, count = latency(i)
         out:write(string.format("%d %d\n", value, count))
      end
      out:close()
   end
end
