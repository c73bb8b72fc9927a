#!lua
-- Extend a lease whose newest token is ARGV[2]. KEYS and ARGV as in
-- acquire_lease, with the token before the milliseconds. Reply 1, or 0 when
-- another holder took the lease since (nothing changes then).
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record or string.match(record, '^(%d+) ') ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
