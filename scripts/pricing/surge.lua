-- Surge on utilization: the base price until the SKU is half used, then up to 4x at full use.
-- ctx.utilization is 0.0 .. 1.0; the price is µNEST per unit; the quote holds 30 s.
local base = 100
return function(ctx)
  local u = ctx.utilization
  if u < 0 then u = 0 elseif u > 1 then u = 1 end
  local factor = 1
  if u > 0.5 then factor = 1 + (u - 0.5) * 6 end
  return math.floor(base * factor + 0.5), 30000
end
