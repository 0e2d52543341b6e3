-- Reserve price for auctions: never sell below cost, and raise the floor with demand.
-- ctx.demand_rate is demands per minute for this SKU.
local cost = 500
return function(ctx)
  local reserve = cost + math.min(ctx.demand_rate, 20) * 25
  return math.floor(reserve)
end
