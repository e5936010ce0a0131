-- A changegate MaintenanceWindow (DESIGN §7): Healthy once the server
-- holds it as the tenant's window (the message says whether it is open and
-- when it next opens); Progressing until then; Degraded when its spec is
-- refused.
local hs = {}
local function condition(name)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == name then
      return c
    end
  end
  return nil
end
local ready = condition("Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the changegate operator to write the window"
  return hs
end
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  local synced = condition("Synced")
  hs.status = "Progressing"
  if synced ~= nil and synced.status == "False" then
    hs.message = synced.message
  else
    hs.message = "Waiting for the changegate operator to send generation " .. generation .. " to the server"
  end
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
hs.message = ready.message
return hs
