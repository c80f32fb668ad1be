expect_type(KEYS[1], 'list')
expect_type(KEYS[2], 'list')
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local dropped = 0
if #ARGV > 1 then
  for i = 2, #ARGV, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  dropped = trim_dead(KEYS[2], ARGV[1])
end
redis.call('DEL', KEYS[1])
return dropped
