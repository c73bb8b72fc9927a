#!lua
-- ARGV: key, expected version, value, change window. Reply 1 when swapped, 0 on conflict.
if version_of(KEYS[7], ARGV[1]) ~= tonumber(ARGV[2]) then
  return 0
end
put(KEYS[7], ARGV[1], ARGV[3], num(bump(1)))
return 1
