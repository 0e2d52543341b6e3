-- Discount for returning buyers: 5 % per earlier purchase from this node, at most 25 %.
local list = 200
return function(ctx)
  local discount = math.min(ctx.requester_history * 5, 25)
  return list * (100 - discount) // 100
end
