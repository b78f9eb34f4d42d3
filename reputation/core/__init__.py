"""The reputation core: window metrics, trust scores and tiers, and the pool map the MTA reads.

Below sending's services (which call it when a domain's status changes) and above models and
pure rules; it never imports sending's services or reputation's policy code."""
