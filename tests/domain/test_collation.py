"""Names sort as a Chinese reader expects: common Han characters in pinyin order."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from bidhub.domain.collation import LEVEL_1, LEVEL_2, NOT_HAN, OTHER_HAN, character_key, name_key


def ordered(names: list[str]) -> list[str]:
    return sorted(names, key=name_key)


def test_surnames_and_cities_sort_by_pinyin_not_by_code_point():
    names = ["陈静", "黄磊", "李娜", "刘洋", "王芳", "吴昊", "杨帆", "张伟", "赵敏", "周杰"]
    shuffled = random.Random(7).sample(names, len(names))
    assert ordered(shuffled) == names
    assert sorted(names) != names  # code point order: 刘 < 吴 < 周 < 张 < 李 < ...
    assert ordered(["上海", "北京", "广州", "深圳", "成都"]) == ["北京", "成都", "广州", "上海",
                                                             "深圳"]
    assert ordered(["王芳", "王", "王伟"]) == ["王", "王芳", "王伟"]  # a shorter name first


def test_latin_names_ignore_case_width_and_accents_and_come_before_han():
    assert ordered(["bob", "张伟", "Álvaro", "Alice", "ＡＢＣ", "阿里"]) == [
        "ＡＢＣ", "Alice", "Álvaro", "bob", "阿里", "张伟"]
    assert ordered(["b", "B", "a"]) == ["a", "B", "b"]  # the name itself breaks a tie
    assert name_key("  李娜 ") < name_key("刘洋")


def test_the_documented_limits_level_2_then_han_outside_gb2312():
    # 婷 is a level-2 character: after every level-1 one, although ting < wei in pinyin.
    assert character_key("婷")[0] == LEVEL_2 and character_key("伟")[0] == LEVEL_1
    assert ordered(["王婷", "王伟"]) == ["王伟", "王婷"]
    # 張 (traditional) is GBK but not GB2312; 䶮 and 𠀀 are outside GBK: Han, by code point.
    assert [character_key(han)[0] for han in "張䶮𠀀"] == [OTHER_HAN] * 3
    assert ordered(["𠀀", "張三", "䶮", "鑫", "周"]) == ["周", "鑫", "䶮", "張三", "𠀀"]
    # Signs GBK encodes outside GB2312's levels are not Han.
    assert character_key("·")[0] == NOT_HAN and character_key("€")[0] == NOT_HAN


@given(st.lists(st.text(max_size=6), max_size=12))
def test_the_key_orders_any_names_totally_and_consistently(names):
    once = ordered(names)
    assert ordered(list(reversed(names))) == once
    assert all(name_key(first) <= name_key(second) for first, second in zip(once, once[1:],
                                                                          strict=False))
