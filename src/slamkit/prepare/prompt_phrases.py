"""Generated phone-menu and spelling phrases: words no packaged text source holds.

The training text (:mod:`slamkit.prepare.text`) is prose. Speech a recogniser meets on a phone line
also holds keypad instructions ("press the pound key"), telephony words (voicemail, keypad,
extension), spelled codes in the ICAO/NATO alphabet ("kilo seven zulu") and the names of keyboard
symbols read out of passwords and addresses ("tilde", "underscore", "backslash"). No package we
found holds running text with these words (docs/text-sources.md), so :func:`prompt_phrases`
generates them from small inventories written here: the full ICAO alphabet, the names of the 32
ASCII punctuation characters, digits, and generic voicemail/PBX vocabulary, combined by templates.

These phrases are generated, never read from evaluation transcripts; callers that train and
evaluate on phone prompts drop every phrase that overlaps an evaluation transcript
(:class:`slamkit.prepare.text.EvalGuard`), as they do for sentences.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from slamkit.prepare.phrases import number_words

# ICAO spelling alphabet in its usual English spelling (ICAO writes Alfa, Juliett); digit 9 is "niner" on the radio
NATO = ("Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliet", "Kilo",
        "Lima", "Mike", "November", "Oscar", "Papa", "Quebec", "Romeo", "Sierra", "Tango", "Uniform", "Victor",
        "Whiskey", "X-ray", "Yankee", "Zulu")
# spoken names of the 32 ASCII punctuation characters (US usage; alternatives where both are common)
SYMBOLS = {
    "!": ("exclamation point", "exclamation mark"), '"': ("quotation mark", "double quote"),
    "#": ("pound sign", "hash sign"), "$": ("dollar sign",), "%": ("percent sign",), "&": ("ampersand",),
    "'": ("apostrophe", "single quote"), "(": ("open parenthesis", "left parenthesis"),
    ")": ("close parenthesis", "right parenthesis"), "*": ("asterisk", "star"), "+": ("plus sign",),
    ",": ("comma",), "-": ("hyphen", "dash", "minus sign"), ".": ("period", "dot"), "/": ("slash", "forward slash"),
    ":": ("colon",), ";": ("semicolon",), "<": ("less than sign",), "=": ("equals sign",),
    ">": ("greater than sign",), "?": ("question mark",), "@": ("at sign",), "[": ("left bracket",),
    "\\": ("backslash",), "]": ("right bracket",), "^": ("caret",), "_": ("underscore",),
    "`": ("backtick", "grave accent"), "{": ("left brace",), "|": ("vertical bar", "pipe"),
    "}": ("right brace",), "~": ("tilde",),
}
KEYS = ("the star key", "the pound key", "star", "pound", "the hash key", "zero for the operator")
ACTIONS = ("listen to your messages", "record your greeting", "re-record your greeting", "delete this message",
           "undelete this message", "save this message", "forward this message", "reply to this message",
           "return the call", "repeat these options", "return to the main menu", "change your password",
           "change your greeting", "leave a voicemail", "mute your line", "unmute your line", "transfer the call",
           "join the conference", "hear the next message", "hear the previous message", "play back your recording",
           "cancel", "accept the call", "reject the call", "set up call forwarding", "turn on do not disturb",
           "reach the operator", "hear your account balance", "speak to a representative", "skip this message")
ENTRIES = ("your extension", "your mailbox number", "your PIN", "your password", "your account number",
           "the conference number", "the phone number", "your four digit code", "the area code", "your user ID")
NOUNS = ("voicemail", "the keypad", "your mailbox", "the extension", "the dial tone", "the speakerphone",
         "caller ID", "call forwarding", "call waiting", "the conference bridge", "the touch tone keypad",
         "the handset", "the intercom", "speed dial", "the answering machine", "the operator", "the main menu",
         "your voicemail greeting", "the hold music", "the ring tone", "the pager", "the queue")
PREDICATES = ("is not available", "has been turned on", "has been turned off", "is busy", "is full",
              "is ready", "was updated", "is not working", "has been reset", "is locked", "is muted",
              "has been unmuted", "is waiting", "was disconnected")


def _digit(rng: random.Random, radio: bool = False) -> str:
    """A digit in words; on the ``radio``, nine is mostly "niner"."""
    d = rng.randrange(10)
    return "niner" if radio and d == 9 and rng.random() < 0.7 else number_words(d)


def _spelling(rng: random.Random) -> str:
    """A spelled code ("Kilo seven Zulu niner") or a letter spelled out ("B as in Bravo")."""
    if rng.random() < 0.3:
        word = rng.choice(NATO)
        return f"{word[0]} as in {word}"
    return " ".join(rng.choice(NATO) if rng.random() < 0.65 else _digit(rng, radio=True)
                    for _ in range(rng.randrange(2, 6)))


def _symbol_name(rng: random.Random) -> str:
    """One spoken name of a random ASCII punctuation character."""
    return rng.choice(rng.choice(list(SYMBOLS.values())))


def _symbols(rng: random.Random) -> str:
    """A string read out character by character ("seven, tilde, Echo, underscore") or a symbol named."""
    roll = rng.random()
    if roll < 0.25:
        name = _symbol_name(rng)
        return rng.choice((f"type {'an' if name[0] in 'aeiou' else 'a'} {name}", f"the {name} key", f"then {name}"))
    parts = [_symbol_name(rng)]
    parts += [rng.choice((_symbol_name(rng), rng.choice(NATO), _digit(rng))) for _ in range(rng.randrange(1, 5))]
    rng.shuffle(parts)
    return ", ".join(parts)


def _keypad(rng: random.Random) -> str:
    """A menu instruction: "press four to delete this message", "enter your PIN followed by the pound key"."""
    roll = rng.random()
    if roll < 0.45:
        key = number_words(rng.randrange(10)) if rng.random() < 0.7 else rng.choice(KEYS[:4])
        return f"press {key} to {rng.choice(ACTIONS)}" if rng.random() < 0.8 else f"to {rng.choice(ACTIONS)}, press {key}"
    if roll < 0.7:
        end = rng.choice(("followed by the pound key", "then press pound", "followed by the hash key", "and press star"))
        return f"{rng.choice(('please enter', 'enter', 'dial', 'key in'))} {rng.choice(ENTRIES)} {end}"
    return f"{rng.choice(NOUNS)} {rng.choice(PREDICATES)}"


KINDS: dict[str, tuple[float, Callable[[random.Random], str]]] = {
    "spelling": (0.3, _spelling),
    "symbols": (0.3, _symbols),
    "keypad": (0.4, _keypad),
}


def prompt_phrases(count: int, seed: int = 0) -> list[str]:
    """``count`` generated phrases (spelled codes, symbol read-outs, keypad and telephony phrases), capital first.

    Reproducible for a given ``seed``; duplicates are allowed (different voices will speak them).
    """
    if count < 0:
        raise ValueError(f"prompt_phrases: count must be ≥ 0, got {count}")
    rng = random.Random(seed)
    names = list(KINDS)
    weights = [KINDS[n][0] for n in names]
    phrases = [KINDS[rng.choices(names, weights)[0]][1](rng) for _ in range(count)]
    return [p[0].upper() + p[1:] for p in phrases]
