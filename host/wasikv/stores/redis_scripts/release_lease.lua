#!lua
-- Let a lease go now if its newest token is ARGV[2] (KEYS as in acquire_lease).
-- The holder is forgotten: the next one takes over from nobody, not from a
-- holder that vanished.
local record = redis.call('HGET', KEYS[1], ARGV[1])
if record then
  local token, claimed = string.match(record, '^(%d+) (%d+) ')
  if token == ARGV[2] then
    redis.call('HSET', KEYS[1], ARGV[1], token .. ' ' .. claimed .. ' ')
    redis.call('DEL', KEYS[2])
  end
end
return 0
