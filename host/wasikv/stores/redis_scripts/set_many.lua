#!lua
-- ARGV: key1, value1, key2, value2, ..., change window; a later duplicate wins (higher version).
local n = #KEYS - 6
local first = bump(n) - n
for i = 1, n do
  put(KEYS[6 + i], ARGV[2 * i - 1], ARGV[2 * i], num(first + i))
end
return n
