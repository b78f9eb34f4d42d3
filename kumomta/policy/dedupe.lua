-- Drops a re-send. When the platform loses the answer to a hand-over (a
-- timeout, a broken connection) it sends the same message again, with the same
-- Message-ID; if this node (or another) already accepted it, the copy is
-- dropped instead of reaching the recipient twice.
--
-- Each accepted Message-ID is noted in Redis (`<prefix>accepted:<id>`, on the
-- primary, for the `accepted_ttl` setting). The platform deletes the note
-- itself when the MTA explicitly refused a recipient, so a refused message can
-- be sent again.
local kumo = require 'kumo'
local store = require 'store'

local M = {}

-- KumoMTA's discard queue: the message counts as accepted, then is dropped
-- without being delivered or logged.
M.DISCARD_QUEUE = 'null'

-- Returns true when the message is a re-send (and has been routed to the
-- discard queue). Runs after every check that can refuse the message, so that
-- a refused message is never noted.
function M.drop_if_resent(msg)
  local message_id = msg:get_meta 'message_id'
  local ttl = store.setting('accepted_ttl', store.positive_integer)
  local first, failure = store.note_accepted(message_id, ttl)
  if first == nil then
    -- Without Redis a re-send cannot be recognised; refusing would stop all
    -- mail for the length of the outage, a rare duplicate is the lesser harm.
    kumo.log_warn(
      string.format(
        'trustgate: accepting %s without the re-send check: %s',
        message_id,
        tostring(failure)
      )
    )
    return false
  end
  if first then
    return false
  end
  kumo.log_info(
    string.format('trustgate: dropping %s: a re-send of a message already accepted', message_id)
  )
  msg:set_meta('queue', M.DISCARD_QUEUE)
  return true
end

return M
