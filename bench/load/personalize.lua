-- wrk script: GET /v1/personalize for visitors drawn uniformly from the first N ids the load tool
-- creates (anon-0 .. anon-N-1). Usage:
--   wrk -t1 -c8 -d10s -s bench/load/personalize.lua http://127.0.0.1:8080 -- <read-key> [N]
local key, n
function init(args)
  key = args[1] or "rk"
  n = tonumber(args[2] or "5000")
  math.randomseed(os.time())
end
function request()
  local id = math.random(0, n - 1)
  return wrk.format("GET", "/v1/personalize/anonymous_id:anon-" .. id,
                    { ["Authorization"] = "Bearer " .. key })
end
