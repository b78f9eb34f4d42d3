-- Basic auth for the HTTP listener (injection from platform servers outside
-- TRUSTGATE_HTTP_TRUSTED_HOSTS). KumoMTA's default ACL lets any authenticated
-- identity POST /api/inject/v1; the admin API stays for trusted hosts only.
local node = require 'node_config'

local M = {}

-- Compares every byte of the longer string whatever the first difference,
-- so the time taken says little about how much of a guess was right.
local function same(given, expected)
  if type(given) ~= 'string' then
    return false
  end
  local difference = #given ~ #expected
  for i = 1, math.max(#given, #expected) do
    difference = difference | ((given:byte(i) or 0) ~ (expected:byte(i) or 0))
  end
  return difference == 0
end

-- http_server_validate_auth_basic(user, password): true to let the request
-- through. With no password configured, Basic auth is refused altogether
-- (trusted hosts still need none).
function M.validate_basic(user, password)
  if node.inject_password == '' then
    return false
  end
  local user_ok = same(user, node.inject_username)
  local password_ok = same(password, node.inject_password)
  return user_ok and password_ok
end

return M
