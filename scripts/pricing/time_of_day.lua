-- Time of day: cheap at night (0-6 h UTC), dear at the evening peak (17-21 h), normal otherwise.
local night, normal, peak = 40, 100, 180
return function(ctx)
  local h = ctx.hour
  if h < 6 then return night end
  if h >= 17 and h < 21 then return peak end
  return normal
end
