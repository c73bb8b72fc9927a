#!lua
-- Take a lease unless somebody holds it. KEYS[1] the leases hash (name ->
-- "token claimed holder", kept when the lease expires so that tokens only
-- grow), KEYS[2] the lease's own key, which lives exactly as long as the
-- lease. ARGV: name, holder, milliseconds. Reply {acquired, token, the
-- last holder, claimed}.
local token, claimed, holder = '0', '0', ''
local record = redis.call('HGET', KEYS[1], ARGV[1])
if record then
  token, claimed, holder = string.match(record, '^(%d+) (%d+) (.*)$')
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0, token, holder, claimed}
end
token = num(tonumber(token) + 1)
redis.call('HSET', KEYS[1], ARGV[1], token .. ' ' .. claimed .. ' ' .. ARGV[2])
redis.call('SET', KEYS[2], token, 'PX', ARGV[3])
return {1, token, holder, claimed}
