-- Reception: who is sending, and may they send at all.
local kumo = require 'kumo'
local node = require 'node_config'
local routing = require 'routing'

local M = {}

-- Meta the platform needs back in log records.
M.META = { 'tenant', 'campaign', 'kind', 'message_id' }

-- The supplemental trace header comes back inside complaint reports. It is
-- only base64, so recipients (and whoever they forward mail to) read it:
-- it carries just what ties a complaint to its message, nothing about how
-- the tenant runs its campaigns. KumoMTA adds the recipient itself.
local TRACE_HEADER = 'X-KumoRef'
M.TRACE_META = { 'tenant', 'message_id' }

-- KumoMTA names queues `campaign:tenant@domain`; a ':' or '@' inside an id
-- would make another tenant's queue name.
local SAFE_ID = '^[%w][%w._%-]*$'
local MAX_ID_LENGTH = 128
-- RFC 5322 keeps lines under 998 characters; the platform's ids are far
-- shorter, and the id becomes a Redis key (dedupe.lua).
local MAX_MESSAGE_ID_LENGTH = 255

-- The platform's ids travel in these headers; they are removed so recipients
-- never see them.
local function take_header(msg, name)
  local value = msg:get_first_named_header_value(name)
  msg:remove_all_named_headers(name)
  if value ~= nil then
    value = value:match '^%s*(.-)%s*$'
    if value == '' then
      value = nil
    end
  end
  return value
end

local function check_id(value, header)
  if value ~= nil and (#value > MAX_ID_LENGTH or not value:match(SAFE_ID)) then
    kumo.reject(550, string.format('5.7.1 malformed %s header', header))
  end
end

-- The Message-ID without its angle brackets, also set as the meta
-- `message_id`: the platform's handle on the message in every log record and
-- complaint, and the key that drops a re-send. Refused when missing,
-- repeated, empty, too long, or holding whitespace, control characters or
-- angle brackets.
function M.message_id(msg)
  local values = msg:get_all_named_header_values 'Message-ID'
  if #values == 0 then
    kumo.reject(550, '5.6.0 no Message-ID header: every message needs a unique one')
  end
  if #values > 1 then
    kumo.reject(550, '5.6.0 more than one Message-ID header')
  end
  local value = values[1]:match '^%s*(.-)%s*$'
  local id = value:match '^<(.*)>$' or value
  if id == '' or #id > MAX_MESSAGE_ID_LENGTH or id:find '[%c%s<>]' then
    kumo.reject(
      550,
      string.format(
        '5.6.0 malformed Message-ID header: expected <id> with at most %d characters and no '
          .. 'spaces or control characters',
        MAX_MESSAGE_ID_LENGTH
      )
    )
  end
  msg:set_meta('message_id', id)
  return id
end

-- ARF reports from mailbox providers come in over SMTP too, without a tenant;
-- the feedback-loop listener domain logs and drops them after this event.
function M.is_feedback_report(msg)
  if node.fbl_domain == '' then
    return false
  end
  local recipients = msg:recipient()
  if recipients == nil then
    return false
  end
  if recipients.domain ~= nil then
    recipients = { recipients }
  end
  for _, recipient in ipairs(recipients) do
    if string.lower(recipient.domain) ~= node.fbl_domain then
      return false
    end
  end
  return true
end

-- Reads and removes the platform's routing headers (X-Tenant, X-Campaign,
-- X-Kind, X-Resend) and any sender-supplied trace header; checks nothing, so
-- that the re-send check can run before any refusal. `resend` is true when
-- the platform says an earlier attempt of this message may have been
-- accepted (`X-Resend: 1`).
function M.take_headers(msg)
  local headers = {
    tenant = take_header(msg, 'X-Tenant'),
    campaign = take_header(msg, 'X-Campaign'),
    kind = take_header(msg, 'X-Kind'),
    resend = take_header(msg, 'X-Resend') ~= nil,
  }
  -- A sender-supplied trace header could pin its complaints on someone else.
  msg:remove_all_named_headers(TRACE_HEADER)
  return headers
end

-- The tenant checks: refuses mail without a tenant, with a malformed id, or
-- from a tenant that may not send; then sets the meta and adds the trace
-- header. `headers` comes from M.take_headers.
function M.accept(msg, headers)
  local tenant = headers.tenant
  if tenant == nil then
    kumo.reject(
      550,
      '5.7.1 no X-Tenant header: only the platform may inject mail here'
    )
  end
  check_id(tenant, 'X-Tenant')
  check_id(headers.campaign, 'X-Campaign')
  check_id(headers.kind, 'X-Kind')

  local pool, why = routing.pool_for_tenant(tenant)
  if pool == nil and why == 'unavailable' then
    -- Not a verdict on the tenant: the map cannot be read and this node never
    -- saw the tenant, so let the client retry instead of bouncing.
    kumo.reject(451, '4.3.0 tenant map unavailable, try again later')
  elseif pool == nil then
    kumo.reject(
      550,
      string.format('5.7.1 tenant %s is not allowed to send (unknown tenant)', tenant)
    )
  elseif pool == routing.HELD_POOL then
    kumo.reject(
      550,
      string.format('5.7.1 tenant %s is quarantined: sending is suspended', tenant)
    )
  end

  msg:set_meta('tenant', tenant)
  if headers.campaign ~= nil then
    msg:set_meta('campaign', headers.campaign)
  end
  if headers.kind ~= nil then
    msg:set_meta('kind', headers.kind)
  end

  -- Added here rather than by the listener so that SMTP and HTTP injection
  -- carry the same header: complaint reports quote it back (decoded into
  -- feedback_report.supplemental_trace), tying a complaint to the tenant and
  -- the message.
  kumo.apply_supplemental_trace_header(msg, {
    supplemental_header = true,
    header_name = TRACE_HEADER,
    include_meta_names = M.TRACE_META,
  })
end

return M
