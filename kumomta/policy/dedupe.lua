-- Drops a re-send. When the platform loses the answer to a hand-over (a
-- timeout, a broken connection) it sends the same message again, with the same
-- Message-ID and the header `X-Resend: 1`; if this node (or another) already
-- accepted it, the copy is dropped instead of reaching the recipient twice.
--
-- Each accepted Message-ID is noted in Redis (`<prefix>accepted:<id>`, on the
-- primary, for the `accepted_ttl` setting) by the last step of reception, once
-- nothing can refuse the message any more. The note is looked up first, right
-- after the Message-ID is read, before any check that could refuse: a copy of
-- a message already accepted must be dropped (accepted, then discarded), never
-- refused, or the platform would take the first copy for refused too.
local kumo = require 'kumo'
local store = require 'store'

local M = {}

-- KumoMTA's discard queue: the message counts as accepted, then is dropped
-- without being delivered or logged.
M.DISCARD_QUEUE = 'null'

-- What a re-send gets when Redis cannot say whether its first copy was
-- accepted: accepting it could deliver it twice, refusing it for good could
-- lose it, so the platform tries again later.
M.UNCONFIRMED = '4.3.0 cannot confirm whether this re-sent message was accepted before; '
  .. 'try again later'

local function drop(msg, message_id, why)
  kumo.log_info(string.format('trustgate: dropping %s: %s', message_id, why))
  msg:set_meta('queue', M.DISCARD_QUEUE)
end

-- Without Redis a re-send cannot be recognised. A message the platform sent
-- once only is accepted (refusing would stop all mail for the length of the
-- outage); a re-send is refused for a retry.
local function unconfirmed(message_id, resend, failure)
  if resend then
    kumo.reject(451, M.UNCONFIRMED)
  end
  kumo.log_warn(
    string.format(
      'trustgate: accepting %s without the re-send check: %s',
      message_id,
      tostring(failure)
    )
  )
end

-- The first step after the Message-ID is read. Returns 'copy' when the
-- message was already accepted (it has been routed to the discard queue and
-- reception must stop there), 'new' when it was not, and 'unchecked' when
-- Redis could not say (only without X-Resend: with it, this refuses).
function M.check(msg, resend)
  local message_id = msg:get_meta 'message_id'
  local noted, failure = store.is_accepted(message_id)
  if noted == nil then
    unconfirmed(message_id, resend, failure)
    return 'unchecked'
  end
  if noted then
    drop(msg, message_id, 'a re-send of a message already accepted')
    return 'copy'
  end
  return 'new'
end

-- The last step of reception, after every check and DKIM signing: notes the
-- Message-ID. When another copy noted it in the meantime (two attempts
-- received at once), this one is dropped. Returns true when dropped.
function M.note(msg, resend)
  local message_id = msg:get_meta 'message_id'
  local ttl = store.setting('accepted_ttl', store.positive_integer)
  local first, failure = store.note_accepted(message_id, ttl)
  if first == nil then
    unconfirmed(message_id, resend, failure)
    return false
  end
  if first then
    return false
  end
  drop(msg, message_id, 'another copy of it was accepted at the same time')
  return true
end

return M
