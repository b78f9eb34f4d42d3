-- Test stand-in for `policy-extras.shaping`, built from its documentation
-- (docs/userguide/trafficshaping/, docs/reference/kumo.shaping/): the part of
-- its API the policy uses. Shaping files (TOML, or a TSA daemon's
-- /get_config_v1/shaping.toml) are loaded and merged in Python
-- (kumo_standin.py, ShapingData); providers are matched by MX suffix against
-- the test's MX table. The TSA websocket subscriber and config monitor are
-- spawned as tasks (recorded, not run).
local kumo = require 'kumo'
local helpers = ...

local mod = {}

-- Where KumoMTA installs its own shaping file; the stand-in maps it to a small
-- fixture (stock_shaping.toml).
mod.STOCK_FILE = '/opt/kumomta/share/policy-extras/shaping.toml'

local OPTIONS = {
  publish = true,
  subscribe = true,
  extra_files = true,
  no_default_files = true,
  tsa_queue_config = true,
  back_pressure = true,
  load_validation_options = true,
  validation_options = true,
  pre_filter = true,
  skip_log_record_types = true,
  additional_skip_log_record_types = true,
  cache_ttl = true,
  retry_shaping_data_fetch_on_populate_timeout = true,
  shaping_data_populate_timeout = true,
  allow_stale_shaping_data = true,
  publish_timeout = true,
  publish_pool_idle_timeout = true,
  publish_connection_verbose = true,
}

-- Records that say nothing about a destination's answers.
local SKIPPED_BY_DEFAULT = {
  'AdminRebind', 'DeferredInjectionRebind', 'Delayed', 'Reception', 'Rejection', 'XferIn',
  'XferOut',
}

local function list_of(value, what)
  if value == nil then
    return {}
  end
  if type(value) ~= 'table' then
    error(string.format('shaping: `%s` must be a list', what), 3)
  end
  return value
end

function mod:setup(extra_files)
  return self:setup_with_automation({
    extra_files = extra_files,
    publish = {},
    subscribe = {},
  }).get_egress_path_config
end

function mod:setup_with_automation(options)
  if mod.CONFIGURED then
    error 'shaping module has already been configured'
  end
  for key in pairs(options) do
    if not OPTIONS[key] then
      error(string.format('shaping:setup_with_automation: unknown option `%s`', tostring(key)), 2)
    end
  end

  local skip = {}
  for _, record_type in ipairs(options.skip_log_record_types or SKIPPED_BY_DEFAULT) do
    skip[record_type] = true
  end
  local additional = options.additional_skip_log_record_types
  for _, record_type in ipairs(list_of(additional, 'additional_skip_log_record_types')) do
    skip[record_type] = true
  end

  local files = {}
  if not options.no_default_files then
    table.insert(files, mod.STOCK_FILE)
  end
  for _, name in ipairs(list_of(options.extra_files, 'extra_files')) do
    table.insert(files, name)
  end
  local subscribe = list_of(options.subscribe, 'subscribe')
  for _, url in ipairs(subscribe) do
    table.insert(files, url .. '/get_config_v1/shaping.toml')
  end

  -- The loaded data, memoized per process and refreshed on an epoch bump.
  local load = kumo.memoize(function(names)
    return helpers.load(names)
  end, {
    name = 'shaping_data',
    ttl = options.cache_ttl or '1 minute',
    capacity = 16,
    invalidate_with_epoch = true,
    allow_stale_reads = options.allow_stale_shaping_data or false,
  })

  local publish = {}
  for _, url in ipairs(list_of(options.publish, 'publish')) do
    local hook = url .. '.tsa.kumomta'
    publish[hook] = { url = url, constructor = 'make.' .. hook }
    kumo.on(publish[hook].constructor, function()
      local client = kumo.http.build_client { timeout = options.publish_timeout or '1 minute' }
      local connection = {}
      function connection:send(msg)
        local response = client
          :post(url .. '/publish_log_v1')
          :header('Content-Type', 'application/json')
          :body(msg:get_data())
          :send()
        local disposition = string.format('%d %s', response:status_code(), response:text())
        if response:status_code() >= 200 and response:status_code() < 300 then
          return disposition
        end
        kumo.reject(400, disposition)
      end
      return connection
    end)
  end

  kumo.on('get_queue_config', function(domain)
    local hook = publish[domain]
    if hook == nil then
      return
    end
    local params = { retry_interval = '1m', max_retry_interval = '20m' }
    for key, value in pairs(options.tsa_queue_config or {}) do
      params[key] = value
    end
    params.protocol = { custom_lua = { constructor = hook.constructor } }
    return kumo.make_queue_config(params)
  end)

  kumo.on('should_enqueue_log_record', function(msg, hook_name)
    if publish[hook_name] == nil then
      return
    end
    local record = msg:get_meta 'log_record'
    if record.reception_protocol == 'LogRecord' or publish[record.queue] or skip[record.type] then
      return false
    end
    if options.pre_filter ~= false and not helpers.matches(load(files).handle, record) then
      return false
    end
    msg:set_meta('queue', hook_name)
    return true
  end)

  local function setup_publish()
    local per_record = {}
    for record_type in pairs(skip) do
      per_record[record_type] = { enable = false }
    end
    for hook in pairs(publish) do
      kumo.configure_log_hook {
        name = hook,
        per_record = per_record,
        back_pressure = options.back_pressure,
      }
    end
    if #subscribe > 0 then
      for _, url in ipairs(subscribe) do
        kumo.spawn_task { event_name = 'kumo.tsa.suspension.subscriber', args = { url } }
      end
      kumo.spawn_task { event_name = 'kumo.tsa.config.monitor', args = {} }
    end
  end

  local function get_egress_path_config(domain, egress_source, site_name, skip_make)
    local data = load(files)
    local params = helpers.params(data.handle, domain, egress_source, site_name)
    if params.refresh_strategy == nil then
      params.refresh_strategy = 'Epoch'
    end
    if skip_make then
      return params
    end
    return kumo.make_egress_path(params)
  end

  mod.CONFIGURED = {
    _file_names = files,
    _options = options,
    load_shaping_data = function()
      return load(files)
    end,
    get_egress_path_config = get_egress_path_config,
    setup_publish = setup_publish,
  }
  return mod.CONFIGURED
end

return mod
