#!lua
-- Record a member alive, by the server's clock. KEYS[1] the group's sorted
-- set (member -> when it expires, in ms). ARGV: member, milliseconds. Reply
-- how many members are alive.
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], num(ms + tonumber(ARGV[2])), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(ms))
redis.call('PEXPIRE', KEYS[1], num(tonumber(ARGV[2]) * 2))
return redis.call('ZCARD', KEYS[1])
