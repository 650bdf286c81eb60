-- wrk script of benches/hostile_tokens.sh: `/auth` for `GET /api/x`, each request with a
-- bearer token drawn in turn from the file named by TOKENS (one a line), and counts the
-- answers whose status is not EXPECT (200 for valid users, 401 for the flood). Prints after
-- the run, all integers:
--   tollgate-tokens requests=N unexpected=N socket_errors=N
local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
end

function init(args)
   unexpected = 0
   tokens = {}
   for line in io.lines(os.getenv("TOKENS")) do
      tokens[#tokens + 1] = line
   end
   expect = tonumber(os.getenv("EXPECT") or "200")
   n = math.random(#tokens)
end

function request()
   n = n % #tokens + 1
   return wrk.format("GET", "/auth", {
      ["X-Original-URI"] = "/api/x",
      ["X-Original-Method"] = "GET",
      ["Authorization"] = "Bearer " .. tokens[n],
   })
end

function response(status, headers, body)
   if status ~= expect then
      unexpected = unexpected + 1
   end
end

function done(summary, latency, requests)
   local total = 0
   for _, thread in ipairs(threads) do
      total = total + thread:get("unexpected")
   end
   local e = summary.errors
   io.write(string.format("tollgate-tokens requests=%d unexpected=%d socket_errors=%d\n",
      summary.requests, total, e.connect + e.read + e.write + e.timeout))
end
