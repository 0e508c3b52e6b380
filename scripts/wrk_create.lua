-- wrk script for scripts/load.sh: every request creates a task.
--   wrk -s scripts/wrk_create.lua -H "Authorization: Bearer $TOKEN" http://host:port/api/<user>/tasks
-- (headers given with -H are kept; this adds the method, the body and its content type).

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"Load test task","description":"Created by wrk","priority":"high"}'

-- The end-of-run report line, from the script next to this one.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_report.lua")
