"""Sort keys for names (people, branches, accounts) in the order a Chinese reader expects.

Code point order scatters Han characters (张 U+5F20 comes before 李 U+674E and after 王
U+738B), so menus sorted that way read as random. The key here uses the GBK encoding instead:
GB2312's level-1 characters, the 3,755 common ones, are numbered in pinyin order (陈 < 李 < 王
< 张), homophones by stroke count. That is pinyin order without a pinyin table (pypinyin takes
0.6 s and 51 MiB to import in every worker).

Its limit: GB2312's 3,008 level-2 characters are numbered by radical and strokes, not by
pinyin, and come after every level-1 character. Few surnames are level-2, but given names
often hold one (婷, 昊, 鑫, 璐, 琪), so 王婷 sorts after 王伟 although ting comes before wei.
Han characters GB2312 lacks (traditional forms such as 張, rare ones such as 䶮) come after
both levels, by code point. Anything else (digits, Latin letters, signs) comes before Han:
Latin letters without case or accents (alice = Alice = Álice), the rest by code point.
"""

from __future__ import annotations

import functools
import unicodedata

# GB2312 as GBK encodes it: a lead byte B0-D7 is level 1, D8-F7 level 2; trail bytes A1-FE.
LEVEL_1_LEADS = range(0xB0, 0xD8)
LEVEL_2_LEADS = range(0xD8, 0xF8)
GB2312_TRAILS = range(0xA1, 0xFF)

# Ranks of a character's key: not Han, level-1 Han, level-2 Han, other Han.
NOT_HAN, LEVEL_1, LEVEL_2, OTHER_HAN = range(4)


# Kept per name: a page's menus sort the same people and branches on every request, and a
# key costs more to make than to look up. Bounded, since an import keys every account name.
@functools.lru_cache(maxsize=8_192)
def name_key(name: str) -> tuple:
    """A sort key for `name`: pinyin order for common Han characters, Latin letters without
    case (see the module's docstring for the order and its limits). Names that differ only
    in case, width or accents are then ordered by the name itself, so the order is total."""
    text = unicodedata.normalize("NFKC", name).strip()
    return tuple(character_key(character) for character in text), name


@functools.lru_cache(maxsize=16_384)
def character_key(character: str) -> tuple[int, int | str]:
    try:
        encoded = character.encode("gbk")
    except UnicodeEncodeError:
        encoded = b""
    if len(encoded) == 2 and encoded[1] in GB2312_TRAILS:
        if encoded[0] in LEVEL_1_LEADS:
            return LEVEL_1, int.from_bytes(encoded, "big")
        if encoded[0] in LEVEL_2_LEADS:
            return LEVEL_2, int.from_bytes(encoded, "big")
    if unicodedata.name(character, "").startswith(("CJK UNIFIED IDEOGRAPH",
                                                    "CJK COMPATIBILITY IDEOGRAPH")):
        return OTHER_HAN, ord(character)
    base = "".join(part for part in unicodedata.normalize("NFKD", character)
                   if not unicodedata.combining(part))
    return NOT_HAN, (base or character).casefold()


def person_order(person) -> tuple:
    """A person's (a user's) place in a menu or a picker: by name, then id."""
    return name_key(person.display_name), person.id


def branch_order(branch) -> tuple:
    """A branch's place in a menu, the same on a Chinese and an English page: by its Chinese
    name where it has one (its English name is mostly that name's pinyin), then id."""
    return name_key(branch.name_zh or branch.name), branch.id


def name_sort_bytes(name: str) -> bytes:
    """`name_key(name)` as bytes that sort the same way byte by byte, so that the database can
    order and pick the first names itself (SQLite's BLOB and PostgreSQL's bytea compare bytes).

    Each character's key is a rank byte (1-4, never 0) followed by the GBK code (2 bytes) or
    the code point (3 bytes) of a Han character, or by the code points of the folded text of
    any other character (each plus one, 3 bytes) and three zero bytes; a zero byte then
    separates the keys from the name itself (code points plus one, 3 bytes each) that breaks
    ties. A name whose keys begin another's sorts first, as in name_key.
    """
    keys, text = name_key(name)
    encoded = bytearray()
    for rank, value in keys:
        encoded.append(rank + 1)
        if rank == NOT_HAN:
            for character in value:
                encoded += (ord(character) + 1).to_bytes(3, "big")
            encoded += b"\0\0\0"
        else:
            encoded += value.to_bytes(2 if rank in (LEVEL_1, LEVEL_2) else 3, "big")
    encoded.append(0)
    for character in text:
        encoded += (ord(character) + 1).to_bytes(3, "big")
    return bytes(encoded)


def width_folded(name: str) -> str:
    """`name` as a search reads it (NFKC): full-width letters, digits and signs of a Chinese
    input method (ＡＢＣ１２３（）) as their ASCII forms, so that ABC finds ＡＢＣ科技 and ＡＢＣ
    finds ABC科技; stored beside a name so that the database compares the two forms."""
    return unicodedata.normalize("NFKC", name)
