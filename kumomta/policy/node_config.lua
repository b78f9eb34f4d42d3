-- Node-level settings: only what a node must know before it can reach Redis,
-- or before any event runs (module load builds the memoize caches and the log
-- hook). Everything else the platform computes lives in the
-- `<key_prefix>settings` hash, so that changing it never needs a file edit on
-- every node. Each value can be set here or through the environment of the
-- kumod process (see kumomta/README.md).
--
-- Plain Lua, no `require`: a platform test reads the defaults below and
-- checks that those standing for a platform setting equal its default.

local function env(name, default)
  local value = os.getenv(name)
  if value == nil or value == '' then
    return default
  end
  return value
end

local function list(value)
  local items = {}
  for item in string.gmatch(value, '[^,%s]+') do
    table.insert(items, item)
  end
  return items
end

-- A bad value stops the policy from loading (kumod refuses to start, and
-- `kumod --validate` says why) rather than running with a guess.
local function positive_integer(name, default)
  local text = env(name, default)
  local value = math.tointeger(tonumber(text))
  if value == nil or value < 1 then
    error(string.format('%s must be a positive integer, not %q', name, text))
  end
  return value
end

local redis_url = env('TRUSTGATE_REDIS_URL', 'redis://127.0.0.1:6379/0')

return {
  -- The Redis the platform publishes to (its KUMO_REDIS_URL). Writes go here:
  -- cluster-wide throttles and connection limits, and the note of each
  -- accepted Message-ID.
  redis_url = redis_url,
  -- Where lookups read: a replica of the above on this node, which keeps
  -- answering with its last data when the primary is gone.
  redis_read_url = env('TRUSTGATE_REDIS_READ_URL', redis_url),
  -- Must match the platform's KUMO_REDIS_PREFIX.
  key_prefix = env('TRUSTGATE_KEY_PREFIX', 'kumo:'),
  -- How long each lookup (tenant's pool, pool, source, DKIM key, settings) is
  -- cached; the platform's KUMO_MEMOIZE_TTL says what the nodes use.
  memoize_ttl = env('TRUSTGATE_MEMOIZE_TTL', '5 seconds'),
  -- Log records per hook request; the platform's KUMO_HOOK_BATCH_SIZE.
  hook_batch_size = positive_integer('TRUSTGATE_HOOK_BATCH_SIZE', '500'),
  -- The platform's log hook endpoint (…/hooks/kumomta/) and the token it
  -- expects (the platform's KUMO_WEBHOOK_TOKEN). The URL is only ever taken
  -- from here, never from Redis: the token goes wherever it points.
  hook_url = env('TRUSTGATE_HOOK_URL', ''),
  hook_token = env('TRUSTGATE_HOOK_TOKEN', ''),
  -- Basic auth for HTTP injection from hosts outside http_trusted_hosts (the
  -- platform's KUMO_INJECT_USERNAME / KUMO_INJECT_PASSWORD); an empty
  -- password refuses Basic auth altogether.
  inject_username = env('TRUSTGATE_INJECT_USERNAME', ''),
  inject_password = env('TRUSTGATE_INJECT_PASSWORD', ''),
  -- The policy's shaping file (shaping.toml, installed beside this file).
  shaping_file = env('TRUSTGATE_SHAPING_FILE', '/opt/kumomta/etc/policy/shaping.toml'),
  -- The Traffic Shaping Automation daemon (http://host:8008); empty = none.
  tsa_url = (env('TRUSTGATE_TSA_URL', ''):gsub('/+$', '')),
  -- Domain that receives ISP feedback-loop (ARF) reports; empty = none.
  fbl_domain = string.lower(env('TRUSTGATE_FBL_DOMAIN', '')),
  -- Who may inject over SMTP / HTTP without credentials: the platform's
  -- application servers.
  relay_hosts = list(env('TRUSTGATE_RELAY_HOSTS', '127.0.0.1')),
  http_trusted_hosts = list(env('TRUSTGATE_HTTP_TRUSTED_HOSTS', '127.0.0.1')),
  esmtp_listen = env('TRUSTGATE_ESMTP_LISTEN', '0.0.0.0:25'),
  http_listen = env('TRUSTGATE_HTTP_LISTEN', '127.0.0.1:8000'),
  spool_dir = env('TRUSTGATE_SPOOL_DIR', '/var/spool/kumomta'),
  log_dir = env('TRUSTGATE_LOG_DIR', '/var/log/kumomta'),
  bounce_rules = env(
    'TRUSTGATE_BOUNCE_RULES',
    '/opt/kumomta/share/bounce_classifier/iana.toml'
  ),
}
