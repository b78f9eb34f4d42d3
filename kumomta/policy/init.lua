-- TrustGate policy for KumoMTA. Python computes every number and map and
-- publishes them in Redis; this policy only reads them. See README.md.
--
-- kumod loads this file in every Lua context it creates (every few minutes,
-- and after each config epoch bump); the `init` event runs once per process.
-- The modules do no I/O while they load: Redis is read inside events only.
local kumo = require 'kumo'
local node = require 'node_config'
local tenant = require 'tenant'
local dkim = require 'dkim'
local dedupe = require 'dedupe'
local routing = require 'routing'
local shaping = require 'shaping'
local loghook = require 'loghook'
local http_auth = require 'http_auth'

-- get_queue_config has several handlers, asked in this order: the log hook's
-- and the shaping helper's (each answers for its own queue only), then ours
-- for tenants' mail.
loghook.register()
shaping.register()
routing.register()

kumo.on('init', function()
  kumo.define_spool { name = 'data', path = node.spool_dir .. '/data' }
  kumo.define_spool { name = 'meta', path = node.spool_dir .. '/meta' }
  kumo.configure_local_logs { log_dir = node.log_dir, meta = tenant.META }
  kumo.configure_bounce_classifier { files = { node.bounce_rules } }
  -- Shaping limits are per node unless throttles are shared (on the primary).
  kumo.configure_redis_throttles { node = node.redis_url }
  shaping.setup_publish()
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

kumo.on('http_server_validate_auth_basic', function(user, password)
  return http_auth.validate_basic(user, password)
end)

kumo.on('get_listener_domain', function(domain, listener, conn_meta)
  if node.fbl_domain ~= '' and string.lower(domain) == node.fbl_domain then
    -- ARF complaint reports become Feedback records, RFC 3464 bounce reports
    -- OOB records; both are then dropped. OOB records only come from
    -- whatever sends bounce reports to this domain: the platform's envelope
    -- senders are the tenants' own mailboxes, so ordinary bounce reports go
    -- there, not here (see README.md).
    return kumo.make_listener_domain {
      log_arf = 'LogThenDrop',
      log_oob = 'LogThenDrop',
    }
  end
end)

-- The order matters: the re-send check comes right after the Message-ID is
-- read, before anything that can refuse (a copy of a message already accepted
-- is dropped, never refused), and the note comes last, after DKIM signing,
-- once nothing can refuse any more (a refused message is never noted).
local function received(msg)
  if tenant.is_feedback_report(msg) then
    return
  end
  local headers = tenant.take_headers(msg)
  tenant.message_id(msg)
  local check = dedupe.check(msg, headers.resend)
  if check == 'copy' then
    return
  end
  tenant.accept(msg, headers)
  dkim.sign(msg, dkim.signer(msg))
  if check == 'new' then
    -- Not after a failed check: the primary just failed, and asking it again
    -- would double the wait for every message of the outage.
    dedupe.note(msg, headers.resend)
  end
end

kumo.on('smtp_server_message_received', function(msg, conn_meta)
  received(msg)
end)

kumo.on('http_message_generated', function(msg, auth_info)
  received(msg)
end)
