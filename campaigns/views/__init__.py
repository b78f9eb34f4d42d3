"""HTML pages for campaigns, leads and suppressions, one module per area; each module lists its
workspace pages in `pages`, which `campaigns.urls` gathers."""
