if ARGV[1] == 'orphaned' and redis.call('EXISTS', KEYS[3]) == 1 then
  return -1
end
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do
  moved = moved + 1
end
redis.call('DEL', KEYS[3])
return moved
