-- Redis does not undo a script that fails halfway: one that took entries
-- from a list and then met a key of the wrong type would lose them. So a
-- script checks every key it reads or writes before it changes any, and
-- refuses with an error naming the key and what is wrong with it.
local function refuse(key, problem)
  error({err = 'BADKEY ' .. key .. ' ' .. problem})
end

local function expect_type(key, wanted)
  local found = redis.call('TYPE', key).ok
  if found ~= wanted and found ~= 'none' then
    refuse(key, 'is a ' .. found .. ', not a ' .. wanted)
  end
end

-- An integer as the services write them: digits Lua holds exactly (below 2^53).
local function expect_integer(key, what, value)
  if not (value and string.find(value, '^%-?%d+$') and #value <= 16) then
    local seen = value and string.format('%q', string.sub(value, 1, 40)) or 'missing'
    refuse(key, what .. ' is ' .. seen .. ', not an integer')
  end
end
