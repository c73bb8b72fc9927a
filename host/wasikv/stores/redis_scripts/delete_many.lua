#!lua flags=allow-oom
-- ARGV: tombstone window, key1, key2, ..., change window.
-- Each call prunes up to 2n+8 tombstones that aged out of the window, oldest
-- first: deletes add one tombstone each, so the set stays bounded without a
-- separate sweep. Deletes run when Redis is out of memory (as DEL does):
-- they free the values, which is how an operator gets out of that state.
local n = #KEYS - 6
local last = bump(n)
for i = 1, n do
  remove(KEYS[6 + i], ARGV[1 + i], num(last - n + i))
end
local cutoff = last - tonumber(ARGV[1])
local stale = redis.call('ZRANGE', KEYS[4], '-inf', '(' .. num(cutoff), 'BYSCORE',
  'LIMIT', 0, 2 * n + 8, 'WITHSCORES')
if #stale > 0 then
  for i = 1, #stale, 2 do
    redis.call('ZREM', KEYS[4], stale[i])
  end
  local newest = tonumber(stale[#stale])
  if newest > tonumber(redis.call('GET', KEYS[5]) or '0') then
    redis.call('SET', KEYS[5], num(newest))
  end
end
return n
