-- Test stand-in for `policy-extras.log_hooks` (`log_hooks:new` only), built
-- from its documentation (docs/userguide/operation/webhooks.md): it configures
-- a named log hook, routes its records to the queue `<name>.log_hook`, whose
-- queue config delivers through the custom_lua constructor event
-- `make.<name>.log_hook`, calling `send` (or `send_batch` when batch_size > 1).
local kumo = require 'kumo'

local mod = { CONFIGURED = {} }

local OPTIONS = {
  name = true,
  log_parameters = true,
  queue_config = true,
  constructor = true,
  batch_size = true,
  min_batch_size = true,
  max_batch_latency = true,
  filter = true,
}

function mod:new(options)
  for key in pairs(options) do
    if not OPTIONS[key] then
      error(string.format('log_hooks:new: unknown option `%s`', key), 2)
    end
  end
  if type(options.name) ~= 'string' or type(options.constructor) ~= 'function' then
    error('log_hooks:new: `name` (string) and `constructor` (function) are required', 2)
  end
  if mod.CONFIGURED[options.name] then
    error(string.format("log_hook with name '%s' has already been configured", options.name), 2)
  end
  mod.CONFIGURED[options.name] = options

  local domain = options.name .. '.log_hook'
  local constructor_event = 'make.' .. domain

  kumo.on('pre_init', function()
    local params = { name = options.name }
    for key, value in pairs(options.log_parameters or {}) do
      params[key] = value
    end
    kumo.configure_log_hook(params)
  end)

  kumo.on('should_enqueue_log_record', function(msg, hook_name)
    if hook_name ~= options.name then
      return
    end
    -- Records about delivering records would loop forever.
    if msg:get_meta('log_record').reception_protocol == 'LogRecord' then
      return false
    end
    if options.filter and options.filter(msg, hook_name) then
      return false
    end
    msg:set_meta('queue', domain)
    return true
  end)

  local queue_config = { retry_interval = '1m', max_retry_interval = '20m' }
  for key, value in pairs(options.queue_config or {}) do
    queue_config[key] = value
  end
  queue_config.protocol = {
    custom_lua = {
      constructor = constructor_event,
      batch_size = options.batch_size or 1,
      min_batch_size = options.min_batch_size,
      max_batch_latency = options.max_batch_latency,
    },
  }

  kumo.on('get_queue_config', function(queue_domain)
    if queue_domain ~= domain then
      return
    end
    return kumo.make_queue_config(queue_config)
  end)

  kumo.on(constructor_event, options.constructor)
end

return mod
