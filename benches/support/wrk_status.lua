-- wrk script of benches/nginx.sh: counts the answers outside 200–299 and prints one summary
-- line after the run, so the script can refuse a number that is not of admitted requests.
-- (wrk's own "Non-2xx or 3xx responses" counts only statuses from 400 up.)
--
-- Headers come from wrk's -H options. The line printed, all integers:
--   tollgate-bench requests=N duration_us=N p99_us=N non2xx=N socket_errors=N
--
-- Every wrk thread runs this file in its own Lua state, so each counts into its own global and
-- `done` adds the threads' counts up.

local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
end

function init(args)
   rejected = 0
end

function response(status, headers, body)
   if status < 200 or status >= 300 then
      rejected = rejected + 1
   end
end

function done(summary, latency, requests)
   local non2xx = 0
   for _, thread in ipairs(threads) do
      non2xx = non2xx + thread:get("rejected")
   end
   local errors = summary.errors
   io.write(string.format(
      "tollgate-bench requests=%d duration_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
      summary.requests, summary.duration, latency:percentile(99.0), non2xx,
      errors.connect + errors.read + errors.write + errors.timeout))
end
