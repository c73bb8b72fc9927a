-- Shared by every script (`load` puts them after the script's shebang line).
-- KEYS[1] seq, KEYS[2] versions, KEYS[3] index, KEYS[4] tombstones,
-- KEYS[5] watermark, KEYS[6] changes, KEYS[7...] the value keys the script
-- works on. Keys of the store (not Redis keys) travel in ARGV as UTF-8
-- bytes; write scripts take the change window as their last ARGV.

local function num(n)
  return string.format('%.0f', n)
end

-- Reserve n versions and return the last one. A missing sequence means a new
-- data set, or one Redis lost (a restart without persistence): it starts at
-- the server's clock in microseconds, above every version handed out before
-- (Redis cannot run a write per microsecond), so a handle pinned before the
-- loss never matches a version handed out after it.
local function bump(n)
  local last = redis.call('INCRBY', KEYS[1], n)
  if last == n then
    local now = redis.call('TIME')
    last = tonumber(now[1] .. string.format('%06d', tonumber(now[2]))) + n
    redis.call('SET', KEYS[1], num(last))
  end
  return last
end

-- Append a change to the feed, if anyone asked for a feed; value nil: a delete.
local feed = nil
local function record(key, value, version)
  if feed == nil then
    feed = redis.call('EXISTS', KEYS[6]) == 1
  end
  if not feed then
    return
  end
  if value then
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[#ARGV], version .. '-0', 'k', key, 'v', value)
  else
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[#ARGV], version .. '-0', 'k', key)
  end
end

local function put(vkey, key, value, version)
  redis.call('SET', vkey, value)
  if redis.call('HSET', KEYS[2], key, version) == 1 then
    redis.call('ZADD', KEYS[3], 0, key)
    redis.call('ZREM', KEYS[4], key)
  end
  record(key, value, version)
end

local function remove(vkey, key, version)
  redis.call('DEL', vkey)
  if redis.call('HDEL', KEYS[2], key) == 1 then
    redis.call('ZREM', KEYS[3], key)
  end
  redis.call('ZADD', KEYS[4], version, key)
  record(key, nil, version)
end

local function version_of(vkey, key)
  local version = redis.call('HGET', KEYS[2], key)
  if version then
    return tonumber(version)
  end
  if redis.call('EXISTS', vkey) == 1 then
    -- Created with raw Redis commands, never written through wasikv.
    return -1
  end
  version = redis.call('ZSCORE', KEYS[4], key)
  if version then
    return tonumber(version)
  end
  return tonumber(redis.call('GET', KEYS[5]) or '0')
end
