expect_type(KEYS[1], 'list')
expect_type(KEYS[2], 'list')
expect_type(KEYS[3], 'hash')
expect_type(KEYS[4], 'list')
local order = redis.call('HMGET', KEYS[3], 'cast_at', 'seq')
if redis.call('EXISTS', KEYS[3]) == 1 then
  expect_integer(KEYS[3], 'field cast_at', order[1])
  expect_integer(KEYS[3], 'field seq', order[2])
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local room = tonumber(ARGV[1]) - redis.call('LLEN', KEYS[2])
local oversized, clamped, dropped = {}, {}, 0
if room > 0 and not order[1] then
  -- No order yet (a new or emptied Redis): the worker sets it from
  -- Postgres first, so nothing taken sorts before what is stored.
  return {oversized, clamped, dropped, {}, 1, now}
end
if room > 0 then
  local place, seq = tonumber(order[1]), tonumber(order[2])
  local max_bytes, latest = tonumber(ARGV[2]), now + tonumber(ARGV[3])
  local budget = tonumber(ARGV[5])
  local taken = {}
  local function next_place()
    seq = seq + 1
    return '"cast_at":' .. string.format('%.0f', place) .. ',"queue_seq":' .. seq
  end
  -- Popped a few at a time: one call per entry costs a third of the
  -- throughput, a whole batch at once could hold many huge entries.
  while #taken < room and budget > 0 do
    local popped = redis.call('LPOP', KEYS[1], math.min(16, room - #taken))
    if not popped then break end
    for _, entry in ipairs(popped) do
      if #entry > max_bytes then
        budget = budget - #entry
        redis.call('RPUSH', KEYS[4], entry)
        oversized[#oversized + 1] = {#entry, string.sub(entry, 1, 120)}
      else
        local at = string.find(entry, '"cast_at"', 1, true)
        local cast_at = at and tonumber(string.match(entry, '^%s*:%s*(%-?%d+)%s*[,}]', at + 9))
        if cast_at and cast_at <= latest then
          if cast_at > place then place = cast_at end
        elseif cast_at then
          entry = string.gsub(entry, '"cast_at"%s*:%s*%-?%d+', next_place(), 1)
          clamped[#clamped + 1] = string.sub(entry, 1, 120)
        elseif string.find(entry, '^%s*{') then
          local ok, ballot = pcall(cjson.decode, entry)
          if ok and type(ballot) == 'table' and next(ballot) ~= nil and ballot.queue_seq == nil then
            -- The place goes first, where as_queued (reference.rs) finds it.
            entry = string.gsub(entry, '^(%s*{)', '%1' .. next_place() .. ',', 1)
          end
        end
        taken[#taken + 1] = entry
      end
    end
  end
  for i = 1, #taken, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(taken, i, math.min(i + 999, #taken)))
  end
  redis.call('HSET', KEYS[3], 'cast_at', string.format('%.0f', place), 'seq', seq)
  if #oversized > 0 then dropped = trim_dead(KEYS[4], ARGV[4]) end
end
return {oversized, clamped, dropped, redis.call('LRANGE', KEYS[2], 0, -1), 0, now}
