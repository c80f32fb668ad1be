expect_type(KEYS[1], 'hash')
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'cast_at', ARGV[1], 'seq', ARGV[2])
end
