#!lua flags=allow-oom
-- Start the feed if it is missing, and return the current sequence. The
-- entry without a key marks where the feed starts: a reader whose cursor is
-- older sees that it missed the changes before (they were never recorded).
local seq = redis.call('GET', KEYS[1])
if not seq then
  -- Start the sequence now, as bump would, so the first write follows on.
  local now = redis.call('TIME')
  seq = num(tonumber(now[1] .. string.format('%06d', tonumber(now[2]))))
  redis.call('SET', KEYS[1], seq)
end
if redis.call('EXISTS', KEYS[6]) == 0 then
  redis.call('XADD', KEYS[6], seq .. '-0', 'start', '1')
end
return seq
