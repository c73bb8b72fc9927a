#!lua
-- Let a lease go now if its newest token is ARGV[2] (KEYS as in acquire_lease).
local record = redis.call('HGET', KEYS[1], ARGV[1])
if record and string.match(record, '^(%d+) ') == ARGV[2] then
  redis.call('DEL', KEYS[2])
end
return 0
