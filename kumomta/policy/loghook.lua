-- Posts log records to the platform with a bearer token: one record per
-- request (batch size 1, `send`) or a JSON array (`send_batch`). KumoMTA queues
-- each record like a message, so an answer that asks for a retry must become a
-- transient failure here, or the record is lost.
local kumo = require 'kumo'
local log_hooks = require 'policy-extras.log_hooks'
local node = require 'node_config'
local tenant = require 'tenant'

local M = {}

-- Its queue is `trustgate.log_hook` (shaping.toml has its path settings).
M.NAME = 'trustgate'
local REQUEST_TIMEOUT = '30 seconds'
-- The records themselves are unacceptable: retrying the same batch cannot
-- succeed. Anything else that is not 2xx (429, 5xx, but also a wrong token or
-- URL) is an operator-fixable condition, so the records wait for the fix.
local PERMANENT = { [400] = true, [413] = true, [422] = true }

local function excerpt(text)
  text = tostring(text or '')
  if #text > 200 then
    return text:sub(1, 200) .. '...'
  end
  return text
end

-- Posts `body` (JSON); returns the disposition KumoMTA logs, or rejects.
local function post(client, body)
  -- Only ever the node's own setting: whoever could change it could send the
  -- bearer token elsewhere, so it is never read from Redis.
  local url = node.hook_url
  if url == '' then
    kumo.reject(451, '4.3.5 log hook URL is not configured')
  end
  local ok, response = pcall(function()
    return client
      :post(url)
      :header('Content-Type', 'application/json')
      :bearer_auth(node.hook_token)
      :body(body)
      :send()
  end)
  if not ok then
    kumo.reject(451, '4.4.1 log hook unreachable: ' .. excerpt(response))
  end

  local status = response:status_code()
  local text = excerpt(response:text())
  if status >= 200 and status < 300 then
    return string.format('%d %s', status, text)
  end
  if PERMANENT[status] then
    kumo.reject(550, string.format('5.6.0 log hook refused the records: %d %s', status, text))
  end
  kumo.reject(451, string.format('4.4.2 log hook answered %d %s', status, text))
end

function M.constructor(domain, tenant_id, campaign)
  local client = kumo.http.build_client { timeout = REQUEST_TIMEOUT }
  local connection = {}

  -- Batch size 1: one record, posted as a JSON object.
  function connection:send(msg)
    return post(client, kumo.serde.json_encode(msg:get_meta 'log_record'))
  end

  -- Larger batches: the records as a JSON array.
  function connection:send_batch(messages)
    local records = {}
    for _, msg in ipairs(messages) do
      table.insert(records, msg:get_meta 'log_record')
    end
    return post(client, kumo.serde.json_encode(records))
  end

  function connection:close()
    client:close()
  end

  return connection
end

function M.register()
  if node.hook_token == '' then
    kumo.log_warn 'trustgate: TRUSTGATE_HOOK_TOKEN is empty; the platform will refuse log records'
  end
  log_hooks:new {
    name = M.NAME,
    batch_size = node.hook_batch_size,
    log_parameters = { meta = tenant.META },
    constructor = M.constructor,
  }
end

return M
