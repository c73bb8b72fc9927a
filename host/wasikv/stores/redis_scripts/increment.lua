#!lua
-- ARGV: key, delta, change window. Reply {1, new value as text} or {0, Redis' error, current value}.
-- The new value is read back with GET: Lua numbers are doubles and would
-- round counters above 2**53.
local done = redis.pcall('INCRBY', KEYS[7], ARGV[2])
if type(done) == 'table' and done.err then
  local current = false
  if redis.call('TYPE', KEYS[7]).ok == 'string' then
    current = redis.call('GET', KEYS[7])
  end
  return {0, done.err, current}
end
local version = num(bump(1))
if redis.call('HSET', KEYS[2], ARGV[1], version) == 1 then
  redis.call('ZADD', KEYS[3], 0, ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
local value = redis.call('GET', KEYS[7])
record(ARGV[1], value, version)
return {1, value}
