-- Fallbacks for the fields of the settings hash (`<key_prefix>settings`), used
-- while a field is absent or malformed, or while Redis cannot be read. Each
-- equals the platform's default for the field it stands in for
-- (reputation/core/pool_map.py, policy_settings(); a platform test checks):
-- the platform decides the numbers, this only keeps a node sensible until it
-- hears them.
--
-- Plain Lua, no `require`, so that the platform's test can read it.
return {
  -- How long KumoMTA keeps a pool or source definition.
  pool_ttl = '1 minute',
  -- Seconds a Message-ID stays noted as accepted (re-sends are dropped).
  accepted_ttl = 604800,
  -- Per provider (KumoMTA's stock shaping names), per source IP and
  -- destination: connections, messages per hour, and the MX host suffixes
  -- that recognise the provider from a site name. `default` is everything
  -- else.
  shaping = {
    google = {
      mx_suffixes = { '.google.com', '.googlemail.com' },
      max_connections = 3,
      messages_per_hour = 300,
    },
    yahoo = {
      mx_suffixes = { '.yahoodns.net' },
      max_connections = 2,
      messages_per_hour = 200,
    },
    outlook = {
      mx_suffixes = { '.olc.protection.outlook.com' },
      max_connections = 2,
      messages_per_hour = 250,
    },
    office365 = {
      mx_suffixes = { '.mail.protection.outlook.com' },
      max_connections = 2,
      messages_per_hour = 250,
    },
    default = {
      max_connections = 5,
      messages_per_hour = 1000,
    },
  },
}
