#!lua flags=no-writes
-- ARGV: key. Reply {value or nil, version as text}, read at one moment.
return {redis.call('GET', KEYS[7]), num(version_of(KEYS[7], ARGV[1]))}
