expect_type(KEYS[1], 'string')
expect_type(KEYS[2], 'list')
local last = redis.call('GET', KEYS[1])
if last then
  expect_integer(KEYS[1], 'the value', last)
  last = tonumber(last)
end
local time = redis.call('TIME')
local stamp = tonumber(time[1]) * 1000000 + tonumber(time[2])
if last and stamp <= last then
  stamp = last + 1
end
-- Lua shows numbers this large as 1.79e+15; '%.0f' is exact below 2^53.
local text = string.format('%.0f', stamp)
redis.call('SET', KEYS[1], text)
return redis.call('RPUSH', KEYS[2], ARGV[1] .. ',"cast_at":' .. text .. '}')
