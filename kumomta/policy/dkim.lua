-- DKIM signing with the keys the platform publishes for verified domains
-- (`<prefix>dkim:<domain>`, fields `selector` and `key`).
local kumo = require 'kumo'
local store = require 'store'

local M = {}

-- Listing headers that may be absent is deliberate: signing their absence
-- stops a relay from adding them later without breaking the signature.
M.SIGNED_HEADERS = {
  'From',
  'To',
  'Cc',
  'Subject',
  'Date',
  'Message-ID',
  'Reply-To',
  'In-Reply-To',
  'References',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'List-Unsubscribe',
  'List-Unsubscribe-Post',
}

local function from_domain(msg)
  -- from_header() is nil without a From, and `.domain` raises for a list of
  -- addresses: neither has one signing domain.
  local ok, domain = pcall(function()
    local from = msg:from_header()
    return from and from.domain
  end)
  if ok and type(domain) == 'string' and domain ~= '' then
    return string.lower(domain)
  end
  return nil
end

-- The signer for the message's From domain, or nil when the domain has no
-- key (logged). Refuses with a temporary error when the keys cannot be read:
-- sending unsigned mail for a domain that has a key would hurt the tenant's
-- reputation, and a retry after the outage costs nothing.
function M.signer(msg)
  local domain = from_domain(msg)
  if domain == nil then
    kumo.log_warn 'trustgate: not DKIM-signing: no single From address'
    return nil
  end
  local key, state = store.dkim_key(domain)
  if state == 'unavailable' then
    kumo.reject(451, '4.3.0 DKIM keys unavailable, try again later')
  end
  if key == nil then
    kumo.log_info(
      string.format('trustgate: not DKIM-signing: no key for %s', domain)
    )
    return nil
  end
  return kumo.dkim.rsa_sha256_signer {
    domain = domain,
    selector = key.selector,
    headers = M.SIGNED_HEADERS,
    over_sign = true,
    key = { key_data = key.key },
  }
end

-- Must run last at reception: any header change after it would break the
-- signature.
function M.sign(msg, signer)
  if signer ~= nil then
    msg:dkim_sign(signer)
  end
end

return M
