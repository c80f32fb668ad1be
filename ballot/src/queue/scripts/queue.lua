-- Nothing changes before the RPUSH, which fails on a `votes` of the wrong
-- type; GET fails on a clock of the wrong type, and one that is not an
-- integer is refused here (see checks.lua, which this hot path does
-- without). Once the RPUSH has written, Redis lets the script's remaining
-- write through even out of memory, so an error reply still means the
-- ballot was not queued.
local last = redis.call('GET', KEYS[1])
if last and not (string.find(last, '^%d+$') and #last <= 16) then
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' is ' .. string.format('%q', string.sub(last, 1, 40)) .. ', not an integer')
end
local time = redis.call('TIME')
local stamp = tonumber(time[1]) * 1000000 + tonumber(time[2])
last = tonumber(last)
if last and stamp <= last then
  stamp = last + 1
end
-- Lua shows numbers this large as 1.79e+15; '%.0f' is exact below 2^53.
local text = string.format('%.0f', stamp)
local queued = redis.call('RPUSH', KEYS[2], ARGV[1] .. ',"cast_at":' .. text .. '}')
redis.call('SET', KEYS[1], text)
return queued
