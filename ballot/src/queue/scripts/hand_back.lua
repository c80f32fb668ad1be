expect_type(KEYS[1], 'list')
expect_type(KEYS[2], 'list')
-- A live worker's heartbeat is a string that expires (SET ... PX, in one
-- command): one of another type, or without an expiry, was not written by
-- a live worker and must not keep its ballots from the queue forever.
if ARGV[1] == 'orphaned' and redis.call('TYPE', KEYS[3]).ok == 'string'
    and redis.call('PTTL', KEYS[3]) > 0 then
  return -1
end
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do
  moved = moved + 1
end
redis.call('DEL', KEYS[3])
return moved
