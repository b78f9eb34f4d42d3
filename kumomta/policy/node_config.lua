-- Node-level settings: only what a node must know before it can reach Redis.
-- Everything the platform computes (TTLs, shaping numbers, hook batch size)
-- lives in the `<key_prefix>settings` hash instead, so that changing it never
-- needs a file edit on every node. Each value can be set here or through the
-- environment of the kumod process (see kumomta/README.md).

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

return {
  -- Where the platform publishes the pool map, DKIM keys and settings; also
  -- used for cluster-wide throttles and connection limits.
  redis_url = env('TRUSTGATE_REDIS_URL', 'redis://127.0.0.1:6379/0'),
  -- Must match the platform's KUMO_REDIS_PREFIX.
  key_prefix = env('TRUSTGATE_KEY_PREFIX', 'kumo:'),
  -- The platform's log hook endpoint (…/hooks/kumomta/) and the token it
  -- expects (the platform's KUMO_WEBHOOK_TOKEN). The `hook_url` field of the
  -- settings hash, when present, takes precedence over this URL.
  hook_url = env('TRUSTGATE_HOOK_URL', ''),
  hook_token = env('TRUSTGATE_HOOK_TOKEN', ''),
  -- Domain that receives ISP feedback-loop (ARF) reports; empty = none.
  fbl_domain = string.lower(env('TRUSTGATE_FBL_DOMAIN', '')),
  -- Who may inject over SMTP / HTTP: the platform's application servers.
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
