"""What warm-up messages say: spintax, the template library, the warm-up code. Pure: standard
library only.

Warm-up messages go between customers' mailboxes (and the operator's seed mailboxes) and must
read like ordinary, varied business email: no marketing, no links, no attachments. Each one
carries a warm-up code twice: in the `WARMUP_HEADER` header and as the last line of its text
("Ref: RT2G-ZSKA"), so that the receiving side's engagement agent can recognise it (`find_code`)
and customers can filter warm-up mail out of their inboxes. The receiving agent replies in the
thread with some probability (`compose_reply`); a reply to a reply uses short "continuation"
templates.

Spintax (also meant for customers' campaign templates):

- `{a|b|c}` is replaced by one of its options, each equally likely: `{Hi|Hello|Hey} there`.
- Options may be empty (`I {|really }liked it`) and may hold further choices
  (`{Hi {there|all}|Hello}`), up to `MAX_DEPTH` levels deep.
- A backslash makes the next brace, bar or backslash literal: `\\{`, `\\}`, `\\|`, `\\\\`. A
  backslash before anything else is an ordinary character (`C:\\Users` stays as written).
- Refused, with the line and column of the culprit (`SpintaxError`): a `{` never closed, a `}`
  without its `{`, a `|` outside any `{...}`, an empty `{}`.

A text is parsed once into a tree (`compile_spintax`, cached) and expanded many times
(`Spintax.expand`); expansion only draws numbers from the `random.Random` it is given, so a
seeded generator always gives the same text.
"""

import html
import itertools
import random
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

# --- Spintax -------------------------------------------------------------------------------

MAX_DEPTH = 20  # choices inside choices; deeper text is refused rather than risk recursion
ESCAPABLE = frozenset("{}|\\")


class SpintaxError(ValueError):
    """Text that is not valid spintax. `str()` reads "line 2, column 14: a `{` is never
    closed"; `reason` is the part after the colon, `position` the 0-based character offset,
    `line` and `column` are 1-based."""

    def __init__(self, reason: str, position: int, line: int, column: int) -> None:
        super().__init__(reason, position, line, column)  # so that it pickles
        self.reason = reason
        self.position = position
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.reason}"

    @classmethod
    def at(cls, reason: str, text: str, position: int) -> "SpintaxError":
        """The error for `reason` at offset `position` of `text`."""
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return cls(reason, position, line, column)


@dataclass(frozen=True, slots=True)
class _Choice:
    options: tuple[tuple["str | _Choice", ...], ...]


_Part = str | _Choice
_Seq = tuple[_Part, ...]


def _expand(sequence: _Seq, draw: random.Random, out: list[str]) -> None:
    rnd = draw.random
    for part in sequence:
        if isinstance(part, str):
            out.append(part)
        else:
            options = part.options
            _expand(options[int(rnd() * len(options))], draw, out)


def _count(sequence: _Seq) -> int:
    total = 1
    for part in sequence:
        if isinstance(part, _Choice):
            total *= sum(_count(option) for option in part.options)
    return total


def _variants(sequence: _Seq) -> Iterator[str]:
    pools = [
        (part,)
        if isinstance(part, str)
        else tuple(text for option in part.options for text in _variants(option))
        for part in sequence
    ]
    for parts in itertools.product(*pools):
        yield "".join(parts)


@dataclass(frozen=True, slots=True)
class Spintax:
    """A parsed spintax text, ready to expand any number of times."""

    source: str
    tree: _Seq

    def expand(self, rng: random.Random) -> str:
        """One expansion: each choice picks one of its options, uniformly."""
        tree = self.tree
        if len(tree) == 1 and isinstance(tree[0], str):
            return tree[0]
        out: list[str] = []
        _expand(tree, rng, out)
        return "".join(out)

    @property
    def count(self) -> int:
        """How many ways the text can be expanded (distinct choices; two ways may still give
        the same text, as in `{a|a}`)."""
        return _count(self.tree)

    def variants(self) -> Iterator[str]:
        """Every expansion, in order (one per way; see `count` before listing a big one)."""
        return _variants(self.tree)


def _parse(text: str) -> _Seq:
    # Each open choice: the `{` position, the options finished so far, the current option.
    stack: list[tuple[int, list[_Seq], list[_Part]]] = []
    current: list[_Part] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            current.append("".join(literal))
            literal.clear()

    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char == "\\" and index + 1 < length and text[index + 1] in ESCAPABLE:
            literal.append(text[index + 1])
            index += 2
            continue
        if char == "{":
            if len(stack) >= MAX_DEPTH:
                raise SpintaxError.at(
                    f"choices are nested more than {MAX_DEPTH} levels deep", text, index
                )
            flush()
            stack.append((index, [], current))
            current = []
        elif char == "|":
            if not stack:
                raise SpintaxError.at(
                    "a `|` is outside any `{...}` (write `\\|` for a literal one)", text, index
                )
            flush()
            stack[-1][1].append(tuple(current))
            current = []
        elif char == "}":
            if not stack:
                raise SpintaxError.at(
                    "a `}` has no matching `{` (write `\\}` for a literal one)", text, index
                )
            flush()
            opened, options, outer = stack.pop()
            if not options and not current:
                raise SpintaxError.at("`{}` is empty: write at least one option", text, opened)
            options.append(tuple(current))
            outer.append(_Choice(tuple(options)))
            current = outer
        else:
            literal.append(char)
        index += 1
    if stack:
        raise SpintaxError.at(
            "a `{` is never closed (write `\\{` for a literal one)", text, stack[-1][0]
        )
    flush()
    return tuple(current)


@lru_cache(maxsize=4096)
def compile_spintax(text: str) -> Spintax:
    """`text` parsed (and cached); raises SpintaxError."""
    return Spintax(text, _parse(text))


def spintax_check(text: str) -> None:
    """Raise SpintaxError if `text` is not valid spintax."""
    compile_spintax(text)


def spin(text: str, rng: random.Random) -> str:
    """One expansion of `text`; raises SpintaxError if it is not valid spintax."""
    return compile_spintax(text).expand(rng)


# --- The warm-up code --------------------------------------------------------------------

# The header every warm-up message carries, its value the message's warm-up code. Customers
# filter on it; it is not one of the routing headers our MTA removes, so it reaches the
# recipient's server.
WARMUP_HEADER = "X-Warmup-Tag"
# Crockford's base 32: digits and capitals without I, L, O and U (no 1/I/L or 0/O confusion).
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8  # seven random characters and a check character, shown as "RT2G-ZSKA"
_CODE_VALUE = {char: value for value, char in enumerate(CODE_ALPHABET)}
_CODE_READ = str.maketrans({"O": "0", "I": "1", "L": "1"})
CODE_LABELS = ("Ref:", "Ref:", "Ref:", "Ref.", "Reference:", "Our ref:")
_CODE_IN_TEXT = re.compile(
    r"\b(?:our\s+)?ref(?:erence)?\b\s*[.:#]?\s*[:#]?\s*([0-9A-Z]{4})\s*[-\u2010-\u2013]?\s*([0-9A-Z]{4})\b",
    re.IGNORECASE,
)
_TAG = re.compile(r"<[A-Za-z/!][^<>]*>")  # "a < b" in plain text is not a tag
_QUOTE_MARKS = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.MULTILINE)


def _check_char(body: str) -> str:
    return CODE_ALPHABET[zlib.crc32(body.encode("ascii")) % len(CODE_ALPHABET)]


def warmup_code(rng: random.Random) -> str:
    """A new code: "RT2G-ZSKA" (the last character checks the others)."""
    body = "".join(rng.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH - 1))
    code = body + _check_char(body)
    return f"{code[:4]}-{code[4:]}"


def code_normalise(text: str) -> str | None:
    """`text` as a code in its usual form ("RT2G-ZSKA"), or None if it is not a valid one.
    Case, a missing dash and the look-alikes O (for 0) and I or L (for 1) are forgiven."""
    raw = re.sub(r"[\s\-\u2010-\u2013]", "", text).upper().translate(_CODE_READ)
    if len(raw) != CODE_LENGTH or any(char not in _CODE_VALUE for char in raw):
        return None
    if _check_char(raw[:-1]) != raw[-1]:
        return None
    return f"{raw[:4]}-{raw[4:]}"


def code_line(code: str, rng: random.Random) -> str:
    """The line that carries the code at the end of a message's own text."""
    return f"{rng.choice(CODE_LABELS)} {code}"


def warmup_headers(code: str) -> dict[str, str]:
    """The extra headers of a warm-up message (for `Outgoing.headers`)."""
    return {WARMUP_HEADER: code}


def _readable(body: str) -> str:
    """A received body (plain text or simple HTML) as plain text without quote marks."""
    if "<" in body:
        body = _TAG.sub(" ", body)
    if "&" in body:
        body = html.unescape(body)
    return _QUOTE_MARKS.sub("", body.replace("\r\n", "\n"))


def find_codes(body: str) -> list[str]:
    """Every valid warm-up code in a received body, in order of appearance, without repeats."""
    found: list[str] = []
    for match in _CODE_IN_TEXT.finditer(_readable(body)):
        code = code_normalise(match.group(1) + match.group(2))
        if code and code not in found:
            found.append(code)
    return found


def find_code(body: str) -> str | None:
    """The first warm-up code in a received plain-text or HTML body, or None. It tolerates
    quoting ("> Ref: ..."), HTML tags and entities, a code wrapped onto the next line, case and
    look-alike characters; a reply's own code comes before the text it quotes, so this is the
    reply's."""
    codes = find_codes(body)
    return codes[0] if codes else None


# --- Names -------------------------------------------------------------------------------

_TITLES = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "dr",
        "prof",
        "professor",
        "sir",
        "dame",
        "madam",
        "mister",
        "herr",
        "frau",
        "sr",
        "sra",
    ]
)
# Display names that name a function or a company rather than a person: greet neutrally.
_NOT_PERSONS = frozenset(
    [
        "team",
        "support",
        "info",
        "sales",
        "admin",
        "office",
        "contact",
        "hello",
        "noreply",
        "no-reply",
        "marketing",
        "billing",
        "accounts",
        "service",
        "services",
        "hr",
        "careers",
        "jobs",
        "news",
        "newsletter",
        "help",
        "desk",
        "helpdesk",
        "inc",
        "ltd",
        "llc",
        "gmbh",
        "company",
    ]
)
MAX_FIRST_NAME = 30


def _word_case(word: str) -> str:
    if word.isupper() or word.islower():
        return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))
    return word


def first_name(name: str) -> str:
    """The first name in a display name ("Dr. Jane Smith", "Smith, Jane", "JANE SMITH":
    "Jane"), or "" when there is none to use (empty, an address, a team or company name)."""
    name = " ".join(name.split())
    if not name or "@" in name:
        return ""
    if "," in name:
        last, _, rest = name.partition(",")
        name = rest if rest.strip() else last
    words = [word.strip(".'-").lower() for word in name.split()]
    if any(word in _NOT_PERSONS for word in words):
        return ""
    for token in name.split():
        if token.strip(".").lower() in _TITLES:
            continue
        cleaned = "".join(char for char in token if char.isalpha() or char in "'-").strip("'-")
        if not cleaned or not any(char.isalpha() for char in cleaned):
            continue
        if len(cleaned) > MAX_FIRST_NAME:
            return ""
        return _word_case(cleaned)
    return ""


def _display_name(name: str) -> str:
    kept = "".join(char if char.isalpha() or char in " .'-" else " " for char in name)
    return " ".join(kept.split())[:60]


# --- The template library ----------------------------------------------------------------

NAME = "@name"  # stands for the recipient's first name in openers
SELF = "@self"  # stands for the sender's first name in sign-offs


@dataclass(frozen=True)
class Topic:
    """Subjects and bodies that belong together."""

    name: str
    subjects: tuple[str, ...]
    bodies: tuple[str, ...]


TOPICS: tuple[Topic, ...] = (
    Topic(
        "scheduling",
        (
            "{Meeting|Catch-up|Call|Quick call} "
            "{next week|this week|on Thursday|on Tuesday|on Wednesday}",
            "{Finding|Picking} a time {to talk|for a call|to meet|for the review}",
            "{Quick|Small|Short} {scheduling|calendar} question",
            "{Moving|Rescheduling} {our|the} {call|meeting|catch-up}"
            "{| on Friday| on Monday| to next week}",
            "{Time|A time} for {the team meeting|our next check-in|a short call}?",
        ),
        (
            "Would you have {half an hour|thirty minutes|twenty minutes|a few minutes} "
            "{next week|later this week|on Thursday|early next week} to {go over|talk through|"
            "look at} {the plan|the next steps|where things stand}? {I'm fairly flexible|My "
            "calendar is fairly open|I'm mostly free} {in the mornings|after lunch|on Tuesday "
            "and Wednesday}{|, so pick whatever suits you}. {Let me know what works for you.|"
            "Just tell me a time that works.|Happy to work around your schedule.}",
            "{Something came up|A conflict came up|I've been pulled into another meeting} {on "
            "my side|this morning|at short notice}, so I {need to|would like to|have to} "
            "{move|push back|reschedule} our {call|catch-up|meeting}. {Would|Could} "
            "{Wednesday|Thursday|Friday} {morning|afternoon} {work|suit you} instead? {Sorry "
            "for the shuffle.|Apologies for the change.|Sorry about the short notice.}",
            "{Just confirming|A quick note to confirm} that we're still on for {Tuesday|"
            "Thursday|Monday} {at ten|at two|at half past eleven|after lunch}. I'll {call you|"
            "send a calendar invite|dial in} {a few minutes early|as planned}. {If anything "
            "changes, just let me know.|Shout if the time no longer works.|Let me know if you "
            "need to move it.}",
            "{I've|We've} been trying to {find|pin down} a {good|sensible} time for {the team|"
            "everyone} to {get together|meet|sit down}. The {best|likeliest} options {look "
            "like|are} {Tuesday afternoon or Thursday morning|Wednesday or Friday morning|"
            "Monday after lunch or Thursday}. {Which would you prefer?|Does either of those "
            "work for you?|Would one of those suit you?}",
        ),
    ),
    Topic(
        "project update",
        (
            "{Project|Quick|Short|Weekly} update",
            "Where we are {with|on} the {project|rollout|migration|redesign|new process}",
            "{Progress|Status} {this week|so far|before Friday|on the rollout}",
            "{Update on|News on|Latest on} the {timeline|schedule|plan|testing}",
            "{Phase one|The first phase|Testing} {is done|is finished|wrapped up}",
        ),
        (
            "{A quick update|Just a short update|A brief note} on {the project|where things "
            "stand|our progress}. {The first phase is done|We finished the first part|Most of "
            "the groundwork is in place} and {the rest is on track|we're on schedule|things "
            "look good so far}. {The next step is|Next up is} {testing|the review|a round of "
            "checks|the handover}, which {should take|will probably take} {about a week|a few "
            "days|until the end of the month}.",
            "{We hit a small snag|There was a small delay|We ran into a minor issue} with "
            "{the data|the setup|one of the suppliers|the test environment}, {but it's sorted "
            "now|but we found a way around it|which is now fixed}. {That|This} {moves|pushes} "
            "{the timeline|our dates} by {a day or two|a couple of days|less than a week}. "
            "{Nothing else has changed.|Everything else is as planned.|The rest of the plan "
            "stays the same.}",
            "{Good news|Some good news}: {the team|we} {wrapped up|finished|completed} {the "
            "review|the first draft|the testing|the last round of changes} {yesterday|this "
            "morning|on Monday}. {I'll|We'll} {write up|put together} {a short summary|the "
            "notes|a list of open points} {and share it|for everyone} {by Friday|later this "
            "week|early next week}.{| Thanks for your patience along the way.}",
            "{Here's|This is} {where we are|the state of play} {this week|as of today}. "
            "{Design is finished|The plan is agreed|Most of the work is done}, {two|three|a "
            "couple of} {items|questions|details} are still open, and {I'm|we're} {waiting "
            "on|chasing} {feedback|one answer|a decision} {from finance|from the other team|"
            "from the client}. {I'll keep you posted.|More once I hear back.|I'll update you "
            "when that comes in.}",
        ),
    ),
    Topic(
        "thanks",
        (
            "{Thank you|Thanks} {for today|for yesterday|for your help|for the call}",
            "{Thanks again|Many thanks|A quick thank you}",
            "{Really|Much} appreciated",
            "{Thanks for|Thank you for} {the help|the quick turnaround|your time|the introduction}",
            "{Thanks for|Thank you for} your {feedback|comments|notes} on {the draft|the plan}",
        ),
        (
            "{Thank you|Thanks|Many thanks} for {taking the time|making time} {to meet|to "
            "talk|to go through everything} {today|yesterday|earlier}. {It was really useful|"
            "It helped a lot|It cleared up a lot}{| on our side}. {I'll follow up on the "
            "points we discussed.|I'll get started on the next steps.|I'll let you know how "
            "it goes.}",
            "{Just wanted to say|I wanted to say} {thanks|thank you} for {your help|sorting "
            "that out|the quick turnaround} {last week|the other day|on Tuesday}. {It made a "
            "real difference|It saved us a lot of time|It came at exactly the right moment}. "
            "{Much appreciated.|I owe you one.|Really appreciated.}",
            "{Thanks so much|Thank you very much} for {the introduction|putting us in touch|"
            "connecting us}. {We've already|We have} {had a first call|arranged a meeting|"
            "exchanged a few notes} and it {looks promising|went well|seems like a good "
            "fit}. {I'll let you know how it goes.|I'll keep you in the loop.}",
            "{A quick thank you|Many thanks} for {your feedback|your comments|the notes} on "
            "{the draft|the proposal|the plan}. {Most of it is already in|I've worked "
            "through most of it|We've taken nearly all of it on board}, and {the rest|the "
            "remaining points} will {go in|follow} {this week|with the next version|shortly}.",
        ),
    ),
    Topic(
        "quick question",
        (
            "{Quick|Small|Short} question",
            "{A question|Question} about {the report|the plan|next week|the budget|the dates}",
            "{Do you know|Any idea} who {handles|looks after} "
            "{this|the contracts|the office move}?",
            "{Checking|Double-checking} {one thing|something|a detail} with you",
            "{Thursday|Monday|Weekly} {meeting|review} {still on|this week}?",
        ),
        (
            "{Quick|Small|Short} question: {do you know|would you know} who {handles|looks "
            "after|is in charge of} {the supplier contracts|the office move|the new starter "
            "setup|the quarterly figures} {now|these days|at the moment}? {I'd like to|I need "
            "to} {check a detail with them|ask them something|get their sign-off}. {Thanks in "
            "advance.|Thanks for any pointers.|No rush on this.}",
            "{Do you happen to remember|Can you remember} {when|whether} we {agreed|decided} "
            "{on the new dates|to change the format|to move the review}? {I've looked through "
            "my notes|I went back through my notes} but {can't find it|couldn't find it}. "
            "{No rush on this.|Whenever you have a moment is fine.}",
            "{One quick thing|A quick one}: is the {Thursday|Monday|weekly} "
            "{meeting|review|check-in} {still happening|going ahead|still on} "
            "{this week|next week}? {I wasn't sure after the last email.|I couldn't tell from "
            "the calendar.|I heard it might move.}",
            "{Could you|Would you be able to} {confirm|check} {the numbers for|the figures "
            "for|the dates for} {the second quarter|the last month|the spring plan} {when you "
            "get a chance|sometime this week}? {I want to|I'd like to} {make sure|be sure} "
            "{we're working from the same version|the summary is right} before {it goes "
            "out|I share it|Friday}.",
        ),
    ),
    Topic(
        "documents",
        (
            "{The draft|Draft|Latest draft} {for review|for your comments|is ready}",
            "{Notes|My notes|Short notes} from {the meeting|Tuesday|the call|the workshop}",
            "{Updated|Revised|New} {version|plan|proposal|summary}",
            "{The document|The summary|The report} we {talked about|discussed}",
            "{Final check|One last look} {before it goes out|on the figures|on the dates}",
        ),
        (
            "I've {put|saved} the {latest draft|updated version|revised plan} in {the shared "
            "folder|our usual folder|the team space}. {Could you|Would you} "
            "{have a look|take a look|read through it} {when you have a moment|before "
            "Thursday|by the end of the week}? {Comments in the margin are fine.|Any "
            "comments are welcome.|Short notes are plenty.}",
            "{Here are|These are} {the main points|my notes} from {the meeting|our call|"
            "Tuesday} {as promised|in short}: {we keep the current timeline|the timeline stays "
            "as it is}, {the budget needs one more look|the budget question is still open}, "
            "and {we meet again|we check in again} {in two weeks|next month|after the "
            "review}. {Let me know if I missed anything.|Add anything I've left out.}",
            "{I made|I've made} the {changes|edits} we {discussed|talked about} to the "
            "{proposal|summary|report}. {The main change is|Mostly it's} {in the second "
            "section|the new timeline|a shorter introduction}; {everything else|the rest} "
            "{is as before|hasn't changed}. I'll {share it in the folder|put it in the "
            "usual place} {this afternoon|by tomorrow}.",
            "{Before I send the final version|Before this goes out}, {could|would} you "
            "{check|look over} {the figures on the last page|the dates in the plan|the names "
            "in the summary}? {I think they're right|They should be right}, but {a second "
            "pair of eyes helps|I'd rather be sure}. {Thanks a lot.|Many thanks.}",
        ),
    ),
    Topic(
        "follow-up",
        (
            "Following up{| on our call| on last week| on the proposal}",
            "{Next steps|The next steps}{| after our meeting| from Tuesday}",
            "{Circling back|Coming back} {on this|to the question|to the timeline}",
            "{Any news|Any update} {on this|on the review|on the dates}?",
            "{Checking in|A gentle nudge} on {the review|the proposal|the dates}",
        ),
        (
            "{Just following up|Following up} on {our conversation|our call|last week's "
            "meeting}. {Have you had a chance|Did you get a chance} to {think it over|look at "
            "the plan|talk to the team}? {No pressure, I just want to plan the next few "
            "weeks.|There's no rush, I'm only planning ahead.}",
            "{As promised|As discussed}, {here are the next steps|this is what happens next}: "
            "{I'll|we'll} {prepare|draft} {a short plan|the schedule|an outline}, {you check it|"
            "your team adds comments}, and we {meet|talk} again {in a week|"
            "next Thursday|at the end of the month}. {Does that sound right?|Does that work "
            "for you?}",
            "{I'm|Just} {coming back|circling back} to {the question|the point} {you raised|"
            "from our last call} about {the timeline|staffing|the budget}. {I've checked|I "
            "asked around} and {we can|it looks like we can} {keep the current plan|make it "
            "work|manage that}. {I'll confirm|More details} {next week|once it's final}.",
            "{I haven't heard back|I haven't seen an answer} on {the review|the dates|the "
            "proposal} {yet|so far}, so {I thought I'd check in|a gentle nudge}. {If it's "
            "easier, we can talk it through on a call.|Happy to talk it over if that's "
            "easier.|No problem if it needs more time.}",
        ),
    ),
    Topic(
        "catch-up",
        (
            "{Catching up|Catch-up|A quick catch-up}",
            "{It's been a while|Long time|Been a while}",
            "{Coffee|Lunch} {next week|sometime soon|when you're around}?",
            "{Checking in|Saying hello|Hello from the team}",
            "{How are things|How's the new role|How did the move go}?",
        ),
        (
            "{It's been a while|It's been a few weeks} since we {last spoke|caught up|talked}. "
            "{How are things|How's everything} {on your side|with the new team|going}? "
            "{Would you be up for|Fancy} {a coffee|a quick call|lunch} {sometime next week|in "
            "the next couple of weeks}?",
            "{I was thinking about|I remembered} {our conversation|what you said} about {the "
            "new process|the team changes|the conference} {the other day|last month} and "
            "{wondered how it went|wanted to ask how it turned out}. {Things here are busy but "
            "good.|All is well here, if busy.|We've had a busy few weeks here.}",
            "{Just checking in|Checking in} to see how {things are going|you're getting on} "
            "{after the move|with the new role|since the launch}. {If there's anything I can "
            "help with, just say.|Let me know if I can help with anything.|I'd be glad to "
            "help if you need a hand.}",
            "{I'll be|We'll be} {in town|near your office|around your way} {next week|on "
            "Wednesday|later this month}. {If you're free|If you have time}, {it would be "
            "nice to catch up|shall we grab a coffee|we could have a quick lunch}. {No worries "
            "if not.|No problem if the week is full.}",
        ),
    ),
    Topic(
        "planning",
        (
            "{Planning|Plans} for {next quarter|the autumn|the new year|next month}",
            "{Ideas|Thoughts} for {the next phase|next quarter|the workshop}",
            "{Priorities|Our priorities} {for the coming weeks|for next month|for the quarter}",
            "{Draft plan|A rough plan} for {the offsite|the review|the launch}",
            "{What comes first|Order of work} {next quarter|for the new project}",
        ),
        (
            "{I've started|I'm starting} to {put together|sketch out} {the plan|a rough plan} "
            "for {next quarter|the coming months|the autumn}. {The main|My main} {goals|"
            "priorities} {so far|for now} are {simplifying the process and training the new "
            "starters|the handover and a tidier schedule|fewer meetings and clearer owners}. "
            "{What would you add?|Is there anything you'd add?|Let me know if I've missed "
            "something.}",
            "{Before we finalise|Before I finalise} {the plan|the schedule|the priorities}, "
            "{I'd like|it would help} to {hear|get} your {view|thoughts} on {the order of the "
            "work|what comes first|the timing}. {Could we|Shall we} {spend ten minutes on it|"
            "go over it briefly} {this week|at our next check-in}?",
            "{A few ideas|Some thoughts} for {the workshop|the offsite|the review day}: "
            "{start with a short recap|open with where we are}, {then split into small groups|"
            "then work through the open questions}, and {finish with clear next steps|end "
            "with a list of owners}. {Does that sound reasonable?|What do you think?|Happy to "
            "change any of it.}",
            "{We should|We'll need to} {decide|settle} {soon|in the next week or two} "
            "{which|what} {parts of the plan|items} {go first|we tackle first}. {My vote would "
            "be|I'd lean towards} {the smaller items|the reporting changes|the training sessions}, "
            "{since they're quick wins|because they unblock the rest}. {Open to other views, "
            "of course.|Let me know if you see it differently.}",
        ),
    ),
    Topic(
        "feedback",
        (
            "{Feedback|Some feedback} on {the draft|the presentation|the proposal}",
            "{Thoughts|A few thoughts} on {Tuesday|the workshop|the new process}",
            "{Comments|My comments} on {the plan|the report|the slides}",
            "{How did it go|How it went}{| yesterday| on Friday}",
            "{The session|The presentation} {yesterday|on Friday|this week}",
        ),
        (
            "{I read|I went through} {the draft|your proposal|the report} {last night|this "
            "morning|over the weekend}{| and liked it}. {It's clear and well organised|It "
            "reads well|The structure works well}. {My only suggestion|One small suggestion} "
            "{is to|would be to} {shorten the introduction|add a short summary at the top|"
            "move the timeline up front}.",
            "{The presentation|The session|The workshop} {went well|was a success|landed "
            "well} {yesterday|on Friday|this week}. {People|A few people} {mentioned|said} "
            "{it was useful|they liked the examples|the pace was right}. {Next time|For the "
            "next one} {we could|we might} {leave more time for questions|share the notes "
            "beforehand|keep it a little shorter}.",
            "{A few thoughts|Some quick thoughts} on {the new process|the changes} {after the "
            "first week|so far}: {it's working|it works} {well overall|mostly as planned}, "
            "{though|but} {the handover step|the reporting part|the approval step} {is still "
            "slow|takes longer than expected}. {Could we look at that together?|Maybe we can "
            "simplify that bit.|I have an idea or two for that.}",
            "{How did the meeting go|How was the review|How did the client call go} "
            "{on your side|in the end}? "
            "{I heard|Someone mentioned} {it went well|it was a good discussion}, but {I'd "
            "like|I wanted} to hear your {take|view} {before we plan the next steps|before "
            "Thursday}.",
        ),
    ),
    Topic(
        "logistics",
        (
            "{Room|Meeting room} for {Thursday|Friday|next week}",
            "{Details|Practical details} for {the visit|Tuesday|the workshop}",
            "{Travel|Travel plans} {next week|for the visit|on Monday}",
            "{Office|The office} {next week|on Friday|on Monday}",
            "{Visit|Your visit} {on Tuesday|next week|on the 14th}",
        ),
        (
            "I've {booked|reserved} {the small meeting room|the room on the second floor|the "
            "usual room} for {Thursday|Friday|Tuesday} {morning|afternoon}. {There's a "
            "screen, so we can go through the slides together.|It has a whiteboard, which "
            "should help.|It's quiet there, so we won't be disturbed.} {See you there.|Let me "
            "know if the time changes.}",
            "{A few practical details|Some details} for {your visit|the workshop|Tuesday}: "
            "{we start|we'll start} {at half past nine|at ten|right after lunch}, {reception|"
            "the front desk} will {have your name|give you a visitor badge}, and {lunch is "
            "covered|we'll order lunch in}. {Let me know if you have any dietary needs.|Tell "
            "me if you need anything else.}",
            "{I'll be travelling|I'm on the road} {on Monday and Tuesday|most of next week|"
            "for a couple of days}, so {I may be slow to reply|replies may take a little "
            "longer}. {If anything urgent comes up|For anything urgent}, {my colleagues can "
            "help|the team knows where things are}. {I'm back|I'll be back} {on Wednesday|at "
            "the end of the week}.",
            "{The office will be|The office is} closed {on Friday|next Monday} {for "
            "maintenance|because of the move|for the holiday}. {If you planned to come in|If "
            "you need to be on site}, {the other building is open|let me know and I'll sort "
            "something out}. {Everything else is as usual.|Sorry for the hassle.}",
        ),
    ),
    Topic(
        "numbers",
        (
            "{Figures|Numbers} for {last month|the quarter|the review}",
            "{Budget|The budget} {question|check|for the next phase}",
            "{Monthly|Quarterly} {summary|report|figures}",
            "{Estimate|Rough estimate|First estimate} for {the next phase|the work|the training}",
            "{Costs|The costs} {so far|this quarter|for the project}",
        ),
        (
            "{I've pulled together|I've put together} {the figures|the numbers} for {last "
            "month|the quarter|the review}. {Overall|In short}, {we're close to plan|we're a "
            "little ahead of plan|things are roughly where we expected}, with {one|a single} "
            "{exception|line} {in travel costs|in the software budget|in staffing}. {I'll "
            "explain it when we meet.|Happy to go through it on a call.}",
            "{Could you|Can you} {check|confirm} {whether|if} the {budget|estimate} for "
            "{the next phase|the training|the new tools} {includes|covers} {the extra "
            "days|the outside help|the setup work}? {It affects|That changes} {how we plan|"
            "the timing|the order of the work} {for the next month|this quarter}.",
            "{The monthly summary|This month's summary} is {ready|done}. {Most numbers are "
            "in line with last month|Nothing unusual this time|The trend is steady}; {the one "
            "thing to watch is|the only open point is} {the delivery times|the response "
            "times|the overtime}. {I'll share it at the next meeting.|It's in the shared "
            "folder.}",
            "{A rough estimate|My first estimate} for {the work|the next phase} is {two to "
            "three weeks|about a month|six weeks or so}, {depending on|assuming} {how quickly "
            "we get answers|the team is available|nothing big changes}. {I'll firm it up|I "
            "can give a better figure} {once the scope is agreed|after the kickoff|by next "
            "week}.",
        ),
    ),
    Topic(
        "handover",
        (
            "{Handover|Cover} {while I'm away|next week|for Friday}",
            "{Out of office|Away} {next week|on Friday|from Monday}",
            "{Who to contact|Contacts} while I'm {away|out}",
            "{Before I go|Before my leave|Before my time off}",
            "{Back in the office|I'm back}{| today| this week}",
        ),
        (
            "{I'll be away|I'm out of the office} {from Monday|next week|for a few days}. "
            "{My colleague will cover|The team will look after} {anything urgent|the open "
            "items|the day-to-day questions}, and {I've left notes|there are notes} {in the "
            "shared folder|on the usual page}. {Back on|I'm back on} {Thursday|the "
            "twentieth|the following Monday}.",
            "{Before I head off|Before my time off}, {here's|this is} {where things stand|a "
            "quick summary}: {the report is finished|the review is done}, {one question is "
            "still open with the client|we're waiting on one answer}, and {nothing else needs "
            "attention|the rest can wait until I'm back}. {Thanks for keeping an eye on "
            "it.|Thanks for covering.}",
            "{Would you be able to|Could you} {cover|look after} {the weekly check-in|the "
            "Tuesday meeting|incoming questions} {while I'm away|next week}? {It's usually "
            "quick|It rarely takes more than half an hour}, and {I'll brief you|I can walk "
            "you through it} {beforehand|on Friday}.",
            "{I got back|I'm back as of} {today|this morning|yesterday} and {I'm "
            "catching up on|I'm working through} {my inbox|the notes}. "
            "{Thanks for covering while I was away.|"
            "Thanks for holding the fort.} {Is there anything I should know about first?|"
            "Anything urgent I should look at first?}",
        ),
    ),
)

# Greeting lines: with the recipient's first name (`NAME`), or without a name.
OPENERS_NAMED = (
    "{Hi|Hello|Hey} @name,",
    "Hi @name,",
    "Hello @name,",
    "Good {morning|afternoon} @name,",
    "Dear @name,",
    "@name,",
    "Morning @name,",
    "{Hi|Hello} @name, {I hope you're well|hope all is well|hope your week is going well}.",
    "Hi @name, {hope you're doing well|I hope things are good on your side}.",
    "Hey @name, {hope all's well|hope the week's going well}.",
)
OPENERS_NEUTRAL = (
    "{Hi|Hello},",
    "Hi there,",
    "Hello there,",
    "Good {morning|afternoon},",
    "{Hi|Hello}, {I hope you're well|hope all is well}.",
    "",
)
# Closing lines: with the sender's first name (`SELF`), or without a name.
SIGNOFFS_NAMED = (
    "{Best|Best regards|Kind regards|Regards|Many thanks|Thanks|Thanks again|Cheers|All "
    "the best|Speak soon|Talk soon|Warm regards|Best wishes},\n@self",
    "{Thanks|Cheers}!\n@self",
    "{Thanks|Best},\n@self",
    "@self",
    "- @self",
)
SIGNOFFS_NEUTRAL = (
    "{Best|Best regards|Kind regards|Regards|Many thanks|Thanks|Cheers|All the best|Best wishes}",
    "{Thanks|Best wishes}",
    "{Speak soon|Talk soon}",
)

# Replies to a first message: short, and fitting any of the topics.
REPLIES = (
    "{Thanks|Thank you|Many thanks} for {the update|letting me know|the note}{|, much "
    "appreciated}. {That all sounds good to me.|All clear on my side.|Sounds good.}",
    "{Got it|Understood|Noted}, thanks. I'll {take a look|go through it|have a proper look} "
    "{later today|this afternoon|tomorrow morning} and {get back to you|come back to you|let "
    "you know what I think}.",
    "{That works for me.|That suits me fine.|Works for me.} {See you then.|Talk then.|Speak then.}",
    "{Thanks for checking.|Good question.} I think {we're fine|we're in good shape|we're on "
    "track} {for now|on that front}, but I'll {double-check|confirm} {and let you know|by the "
    "end of the day|tomorrow}.",
    "{Perfect|Great|Lovely}, thank you. {I'll pass this on to the team.|I'll share it with "
    "the others.|I'll let the team know.}",
    "{Thanks|Thank you}{|, this is really helpful}. {Let me|I'll} {check with the team|have "
    "a think|look at my calendar} and {come back to you|get back to you} {by Friday|"
    "tomorrow|early next week}.",
    "{Sounds good|Sounds great|That sounds sensible}. {Let's go with that.|Happy to go "
    "ahead.|Let's do it that way.}",
    "{Thanks for the reminder|Thanks for the nudge}{|, it had slipped my mind}. {I'll sort "
    "it out today.|I'll get to it this afternoon.|I'll deal with it tomorrow morning.}",
    "{Good to hear from you|Nice to hear from you}! {All good here, thanks.|Things are busy "
    "but good here.} {Let's catch up properly soon.|Let's find a time to talk soon.}",
    "{No problem at all|Not a problem|No worries at all}. {Whatever works best for you.|Just "
    "let me know what suits you.|Happy to fit around you.}",
    "{Thanks|Many thanks}, {that's|this is} {really useful|very helpful|exactly what I "
    "needed}. {I'll read it properly|I'll go through the details} {tonight|tomorrow|later "
    "this week}.",
    "{Yes|Yes, of course}, {happy to help|glad to help|I can do that}. {When do you need it "
    "by?|Is the end of the week soon enough?|Does Friday work?}",
    "{Thanks for sending this over|Thanks for sharing this}. {I've had a quick look|I had a "
    "first look} and {it looks good|it all makes sense|I have only small comments}. {More "
    "soon.|I'll send my notes shortly.}",
    "{Agreed|I agree}{|, completely}. {Let's keep it simple.|That seems like the right "
    "call.|I think that's the way to go.}",
    "{I'm not sure yet|I don't know yet}, {to be honest|honestly}. {Let me find out and get "
    "back to you.|I'll ask around and let you know.|I'll check and come back to you.}",
    "{Great news|That's great news}, {thanks for letting me know|thanks for the update}. "
    "{Well done to everyone.|Nice work all round.|Good to hear it went well.}",
    "{Thursday|Tuesday|Wednesday} {is fine|works} {for me|on my side}. {Morning or afternoon?|"
    "Any time after ten is good.|Shall we say two o'clock?}",
    "{Thanks|Thank you} for {the kind words|your note}{|, it means a lot}. {It was a team "
    "effort.|Glad it helped.|Happy it worked out.}",
    "{Sorry for the slow reply|Apologies for the delay}{|, it's been a busy week}. {That all "
    "looks fine to me.|No objections from me.|I'm happy with that.}",
    "{I'll be there.|Count me in.|I'll join.} {Thanks for organising it.|Thanks for arranging it.}",
    "{Good point|Fair point}. {Let's add it to the list for next time.|We should talk about "
    "that at the next meeting.|I'll make a note of it.}",
    "{Received|Got it}, thanks. {I'll confirm once I've read it.|I'll let you know if I have "
    "questions.|Nothing to add for now.}",
    "{Thanks|Thank you}, I {appreciate|really appreciate} the {heads-up|update|quick "
    "reply}. {Keep me posted.|Let me know if anything changes.}",
    "{That's fine|That's completely fine}, {no rush|there's no hurry}. {Next week is "
    "fine.|Whenever suits you.|Take the time you need.}",
    "{Happy to|Glad to} {meet|talk|have a call}. {I'm free most of|I'm fairly open on} "
    "{Tuesday|Wednesday|Thursday}, {so pick a time that suits you|just send over a time}.",
    "{Thanks for the summary|Thanks for writing this up}. {One small thing|One question}: "
    "{can we confirm the date|should we check the numbers once more|who takes the first "
    "step}? {Otherwise all good.|Everything else looks right.}",
    "{Lovely to hear|Glad to hear} {it went well|things are moving|you're settling in}. "
    "{Let me know if I can help.|Shout if you need anything.}",
    "{Yes|Yes, that's right}, {we agreed on that|that was the plan} {last time|at the last "
    "meeting}. {I'll double-check my notes to be sure.|I'm fairly sure of it.}",
)

# Replies to a reply: shorter still, closing the exchange or moving it on a little.
CONTINUATIONS = (
    "{Great|Perfect|Brilliant}, thanks{.|!}",
    "{Sounds good|Sounds great}, {talk soon|speak soon}.",
    "{Perfect|Great}. {See you then.|Talk then.|Speak then.}",
    "{No problem|No worries}{| at all}{|, thanks for getting back to me}.",
    "{Thanks|Many thanks}, {that helps|that's helpful|that's all I needed}.",
    "{Will do|I'll do that}{|, thanks}.",
    "{Thanks again|Thanks once more}{| for your help}.",
    "{Great|Good}, {I'll make a note of it|I'll update the plan|I'll let the others know}.",
    "{Understood|Makes sense}, thanks. {I'll wait to hear from you.|Speak soon.}",
    "{Lovely|Great}, {that works|that's settled} then.",
    "{Thanks for confirming|Thanks for the quick reply}.",
    "{Good to know|Good to hear}, thanks.",
    "{Perfect|That's perfect}{|, thank you}. {Have a good {weekend|week|evening}.|Enjoy the "
    "rest of your day.}",
    "{Agreed|Yes, agreed}. {Let's go with that.|Let's do that.}",
    "{Thanks|Thank you}, {I'll look out for it|I'll keep an eye out for it}.",
    "{Sure|Of course}, {no problem|happy to}.",
    "{Got it|Noted}. {Thanks for letting me know.|Appreciate it.}",
    "{Excellent|Great}, {looking forward to it|see you there}.",
    "{All sorted|All done} on my side{|, thanks}.",
    "{Fair enough|That's fair}. {We can revisit it next week.|Let's pick it up later.}",
)
REPLY_OPENERS_NAMED = ("{Hi|Hey} @name,", "@name,", "Hello @name,", "Hi @name!")
REPLY_SIGNOFFS_NAMED = ("@self", "- @self", "{Thanks|Best|Cheers},\n@self", "Thanks!\n@self")
REPLY_SIGNOFFS_NEUTRAL = ("{Thanks|Best}", "{Cheers|Best wishes}", "")
REPLY_GREETING_SHARE = 0.5  # replies greet by name this often (continuations half as often)
NO_SUBJECT = "(no subject)"
LOWERCASE_SUBJECT_SHARE = 0.15
MAX_QUOTED_LINES = 12

_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|antw|vs|odp)\s*(?:\[\d+\])?\s*:\s*)+", re.I)
_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" +([,.!?;:])")


def _compiled(templates: Sequence[str]) -> tuple[Spintax, ...]:
    return tuple(compile_spintax(template) for template in templates)


_TOPICS = tuple((_compiled(topic.subjects), _compiled(topic.bodies)) for topic in TOPICS)
_OPENERS_NAMED = _compiled(OPENERS_NAMED)
_OPENERS_NEUTRAL = _compiled(OPENERS_NEUTRAL)
_SIGNOFFS_NAMED = _compiled(SIGNOFFS_NAMED)
_SIGNOFFS_NEUTRAL = _compiled(SIGNOFFS_NEUTRAL)
_REPLIES = _compiled(REPLIES)
_CONTINUATIONS = _compiled(CONTINUATIONS)
_REPLY_OPENERS_NAMED = _compiled(REPLY_OPENERS_NAMED)
_REPLY_SIGNOFFS_NAMED = _compiled(REPLY_SIGNOFFS_NAMED)
_REPLY_SIGNOFFS_NEUTRAL = _compiled(REPLY_SIGNOFFS_NEUTRAL)


@dataclass(frozen=True)
class Draft:
    """A message's subject (one line) and plain-text body, ready for `sending.mime`."""

    subject: str
    text_body: str


def _pick(rng: random.Random, templates: Sequence[Spintax]) -> str:
    return templates[int(rng.random() * len(templates))].expand(rng)


def _tidy(text: str) -> str:
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _SPACES.sub(" ", text))
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def _with_name(text: str, marker: str, name: str) -> str:
    return text.replace(marker, name)


def _assemble(parts: Sequence[str]) -> str:
    return "\n\n".join(part for part in (_tidy(part) for part in parts) if part)


def _code_checked(code: str) -> str:
    normal = code_normalise(code)
    if normal is None:
        raise ValueError(f"{code!r} is not a warm-up code.")
    return normal


def compose(rng: random.Random, *, sender_name: str, recipient_name: str, code: str) -> Draft:
    """A first warm-up message: a subject and a body on one topic, a greeting (by first name
    when the recipient's name gives one), a sign-off (with the sender's first name when known)
    and the code on the last line."""
    code = _code_checked(code)
    subjects, bodies = _TOPICS[int(rng.random() * len(_TOPICS))]
    subject = _tidy(_pick(rng, subjects))
    if rng.random() < LOWERCASE_SUBJECT_SHARE:
        subject = subject.lower()  # as people in a hurry write them
    body = _pick(rng, bodies)
    recipient, sender = first_name(recipient_name), first_name(sender_name)
    opener = (
        _with_name(_pick(rng, _OPENERS_NAMED), NAME, recipient)
        if recipient
        else _pick(rng, _OPENERS_NEUTRAL)
    )
    signoff = (
        _with_name(_pick(rng, _SIGNOFFS_NAMED), SELF, sender)
        if sender
        else _pick(rng, _SIGNOFFS_NEUTRAL)
    )
    text = _assemble((opener, body, signoff, code_line(code, rng)))
    return Draft(subject=" ".join(subject.split()), text_body=text + "\n")


def reply_subject(original_subject: str) -> str:
    """ "Re: " and the original subject, without a second "Re:" (nor "AW:", "SV:"...)."""
    rest = _REPLY_PREFIX.sub("", " ".join(original_subject.split()))
    return f"Re: {rest or NO_SUBJECT}"


def _quoted(quote: str, author: str, quoted_on: datetime | None) -> str:
    lines: list[str] = []
    for line in quote.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if stripped.startswith(">") or (stripped.endswith("wrote:") and lines):
            break  # stop at the text the previous message quoted
        if find_codes(stripped):
            continue  # the previous message's code line
        lines.append(line.rstrip())
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        return ""
    lines = lines[:MAX_QUOTED_LINES]
    who = author or "you"
    if quoted_on:
        when = f"{quoted_on:%a}, {quoted_on.day} {quoted_on:%b %Y} at {quoted_on:%H:%M}"
        header = f"On {when}, {who} wrote:"
    else:
        header = f"{who[:1].upper()}{who[1:]} wrote:"
    return header + "\n" + "\n".join(f"> {line}" if line else ">" for line in lines)


def compose_reply(
    rng: random.Random,
    *,
    original_subject: str,
    sender_name: str,
    recipient_name: str,
    code: str,
    depth: int = 0,
    quote: str = "",
    quoted_on: datetime | None = None,
) -> Draft:
    """A reply in a warm-up thread, from `sender_name` to `recipient_name` (who wrote the
    message replied to). `depth` is the number of replies already in the thread: 0 answers the
    first message, 1 or more answers a reply (a shorter "continuation"). With `quote` (the text
    of the message replied to), its own part (not what it quoted itself, nor its code line) is
    quoted below the reply, at most `MAX_QUOTED_LINES` lines; `quoted_on` dates it."""
    if depth < 0:
        raise ValueError("depth must be 0 or more.")
    code = _code_checked(code)
    recipient, sender = first_name(recipient_name), first_name(sender_name)
    templates = _CONTINUATIONS if depth else _REPLIES
    share = REPLY_GREETING_SHARE / 2 if depth else REPLY_GREETING_SHARE
    greet = bool(recipient) and rng.random() < share
    opener = _with_name(_pick(rng, _REPLY_OPENERS_NAMED), NAME, recipient) if greet else ""
    body = _pick(rng, templates)
    signoff = (
        _with_name(_pick(rng, _REPLY_SIGNOFFS_NAMED), SELF, sender)
        if sender
        else _pick(rng, _REPLY_SIGNOFFS_NEUTRAL)
    )
    parts = [opener, body, signoff, code_line(code, rng)]
    if quote:
        parts.append(_quoted(quote, _display_name(recipient_name) or recipient, quoted_on))
    text = _assemble(parts)
    return Draft(subject=reply_subject(original_subject), text_body=text + "\n")
