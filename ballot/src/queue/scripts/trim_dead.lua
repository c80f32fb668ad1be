local function trim_dead(key, cap)
  local excess = redis.call('LLEN', key) - tonumber(cap)
  if excess > 0 then
    redis.call('LTRIM', key, excess, -1)
    return excess
  end
  return 0
end
