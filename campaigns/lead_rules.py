"""Rules about a lead's address: its normal form, whether it reaches a role rather than a person,
the time zone its country suggests, and the provider hosting it (pure: no Django).
"""

from email_validator import EmailNotValidError, validate_email

# Local parts that reach a team or a machine, not a person (cold outreach to them converts badly
# and draws complaints). A `+tag` or trailing digits do not change that: info+eu@, sales2@.
ROLE_LOCAL_PARTS = frozenset(
    {
        "abuse",
        "account",
        "accounts",
        "admin",
        "administrator",
        "billing",
        "booking",
        "careers",
        "contact",
        "customerservice",
        "enquiries",
        "enquiry",
        "finance",
        "hello",
        "help",
        "hr",
        "info",
        "inquiries",
        "jobs",
        "legal",
        "mail",
        "marketing",
        "media",
        "no-reply",
        "noreply",
        "office",
        "orders",
        "postmaster",
        "press",
        "privacy",
        "reception",
        "recruiting",
        "sales",
        "security",
        "service",
        "support",
        "team",
        "webmaster",
    }
)

# Country-code top-level domains of countries that (mostly) keep one time zone.
_COUNTRY_ZONES = {
    "at": "Europe/Vienna",
    "be": "Europe/Brussels",
    "bg": "Europe/Sofia",
    "ch": "Europe/Zurich",
    "cz": "Europe/Prague",
    "de": "Europe/Berlin",
    "dk": "Europe/Copenhagen",
    "ee": "Europe/Tallinn",
    "es": "Europe/Madrid",
    "fi": "Europe/Helsinki",
    "fr": "Europe/Paris",
    "gr": "Europe/Athens",
    "hr": "Europe/Zagreb",
    "hu": "Europe/Budapest",
    "ie": "Europe/Dublin",
    "il": "Asia/Jerusalem",
    "in": "Asia/Kolkata",
    "it": "Europe/Rome",
    "jp": "Asia/Tokyo",
    "kr": "Asia/Seoul",
    "lt": "Europe/Vilnius",
    "lu": "Europe/Luxembourg",
    "lv": "Europe/Riga",
    "nl": "Europe/Amsterdam",
    "no": "Europe/Oslo",
    "nz": "Pacific/Auckland",
    "ph": "Asia/Manila",
    "pl": "Europe/Warsaw",
    "pt": "Europe/Lisbon",
    "ro": "Europe/Bucharest",
    "se": "Europe/Stockholm",
    "sg": "Asia/Singapore",
    "si": "Europe/Ljubljana",
    "sk": "Europe/Bratislava",
    "th": "Asia/Bangkok",
    "tr": "Europe/Istanbul",
    "tw": "Asia/Taipei",
    "ua": "Europe/Kyiv",
    "uk": "Europe/London",
    "za": "Africa/Johannesburg",
}

GOOGLE_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
MICROSOFT_DOMAINS = frozenset(
    {"outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk", "outlook.fr"}
)
_MICROSOFT_PREFIXES = ("hotmail.", "outlook.", "live.")


def address_normalize(text: str) -> str:
    """The address as the platform stores and sends it: lower-case, an international domain in
    punycode. Raises ValueError with a reason a person can act on."""
    candidate = text.strip()
    if not candidate:
        raise ValueError("The address is empty.")
    try:
        checked = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(str(error)) from error
    if not checked.ascii_email:
        raise ValueError("Addresses with non-ASCII characters before the @ are not supported.")
    return checked.ascii_email.lower()


def _local_base(address: str) -> str:
    local = address.rpartition("@")[0].lower().split("+", 1)[0]
    return local.rstrip("0123456789").replace(".", "").replace("_", "")


def is_role_address(address: str) -> bool:
    """Whether the address reaches a role (info@, sales@ ...), not a person."""
    base = _local_base(address)
    return base in ROLE_LOCAL_PARTS or base.replace("-", "") in ROLE_LOCAL_PARTS


def time_zone_guess(address: str) -> str | None:
    """The time zone the address's country-code domain suggests, or None (.com and the like)."""
    domain = address.rpartition("@")[2].lower().rstrip(".")
    return _COUNTRY_ZONES.get(domain.rpartition(".")[2])


def recipient_provider(address: str) -> str:
    """ "google", "microsoft" or "other", from the address's domain (consumer mail services)."""
    domain = address.rpartition("@")[2].lower()
    if domain in GOOGLE_DOMAINS:
        return "google"
    if domain in MICROSOFT_DOMAINS or domain.startswith(_MICROSOFT_PREFIXES):
        return "microsoft"
    return "other"
