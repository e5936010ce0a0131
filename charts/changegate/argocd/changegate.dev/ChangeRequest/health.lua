-- A changegate ChangeRequest (DESIGN §7): Healthy once approved and, where
-- its tenant requires, inside its window (and from then on); Progressing
-- while it awaits approval, its window or its release, or the operator;
-- Suspended while a draft; Degraded when rejected, expired, failed,
-- cancelled or refused. The message is the operator's: the next step.
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
  hs.message = "Waiting for the changegate operator to raise the change"
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
elseif ready.reason == "Draft" then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
hs.message = ready.message
return hs
