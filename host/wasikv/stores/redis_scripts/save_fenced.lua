#!lua
-- Save a reader's position and claim, only for the newest token of its lease.
-- KEYS[1] the leases hash, KEYS[2] the positions hash. ARGV: name, token,
-- position, claimed. Reply 1 when saved, 0 when the token is stale.
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then
  return 0
end
local token, _, holder = string.match(record, '^(%d+) (%d+) (.*)$')
if token ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], token .. ' ' .. ARGV[4] .. ' ' .. holder)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
