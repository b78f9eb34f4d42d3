-- TrustGate policy for KumoMTA. Python computes every number and map and
-- publishes them in Redis; this policy only reads them. See README.md.
local kumo = require 'kumo'
local node = require 'node_config'
local tenant = require 'tenant'
local dkim = require 'dkim'
local routing = require 'routing'
local shaping = require 'shaping'
local loghook = require 'loghook'

-- The log hook registers a get_queue_config handler for its own queue; ours
-- comes after it and answers for every other queue.
loghook.register()
routing.register()
shaping.register()

kumo.on('init', function()
  kumo.define_spool { name = 'data', path = node.spool_dir .. '/data' }
  kumo.define_spool { name = 'meta', path = node.spool_dir .. '/meta' }
  kumo.configure_local_logs { log_dir = node.log_dir, meta = tenant.META }
  kumo.configure_bounce_classifier { files = { node.bounce_rules } }
  -- Shaping limits are per node unless throttles are shared.
  kumo.configure_redis_throttles { node = node.redis_url }
  kumo.start_esmtp_listener {
    listen = node.esmtp_listen,
    relay_hosts = node.relay_hosts,
    -- The policy adds the supplemental header itself (tenant.lua), so that
    -- both injection paths carry the same one.
    trace_headers = { supplemental_header = false },
  }
  kumo.start_http_listener {
    listen = node.http_listen,
    trusted_hosts = node.http_trusted_hosts,
  }
end)

kumo.on('get_listener_domain', function(domain, listener, conn_meta)
  if node.fbl_domain ~= '' and string.lower(domain) == node.fbl_domain then
    return kumo.make_listener_domain { log_arf = 'LogThenDrop' }
  end
end)

local function received(msg)
  if tenant.is_feedback_report(msg) then
    return
  end
  tenant.accept(msg)
  dkim.sign(msg)
end

kumo.on('smtp_server_message_received', function(msg, conn_meta)
  received(msg)
end)

kumo.on('http_message_generated', function(msg, auth_info)
  received(msg)
end)
